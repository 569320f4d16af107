// Keycloak for dev and tests without one: remembers every provisioning it was asked for and
// answers with ids derived from the request, so the same tenant always gets the same ids. Like
// the HTTP adapter, it adopts an organization it already made only for the tenant it was made
// for: another tenant asking for the same alias is a conflict at the organization step.
import { createHash } from 'node:crypto';
import {
  KeycloakError,
  organizationChanges,
  TENANT_ATTRIBUTE,
  type KeycloakAdapter,
  type OrganizationState,
  type ProvisionRequest,
  type ProvisionResult,
} from './adapter.js';

/** A UUID-shaped id from a name, stable across runs (like a v5 UUID, without the namespace fuss). */
function stableId(kind: string, name: string): string {
  const hex = createHash('sha256').update(`${kind}:${name}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

export class MockAdapter implements KeycloakAdapter {
  readonly kind = 'mock' as const;
  readonly provisioned: ProvisionRequest[] = [];
  /** The organizations made, by alias, with the tenant each names (Keycloak's tenant_id attribute). */
  readonly organizations = new Map<string, { id: string; tenantId: string }>();

  constructor(private readonly realmUrl: string) {}

  async provision(request: ProvisionRequest): Promise<ProvisionResult> {
    this.provisioned.push(request);
    const existing = this.organizations.get(request.slug);
    if (existing && existing.tenantId !== request.tenantId) {
      const reason = `the organization with this alias does not carry this tenant's ${TENANT_ATTRIBUTE}`;
      throw new KeycloakError('conflict', 'organization', reason, 409);
    }
    const organization = existing ?? { id: stableId('organization', request.slug), tenantId: request.tenantId };
    this.organizations.set(request.slug, organization);
    const userId = stableId('user', request.adminEmail.toLowerCase());
    return {
      organizationId: organization.id,
      userId,
      inviteUrl: `${this.realmUrl}/login-actions/action-token?mock=${userId}`,
    };
  }

  /** The organizations' state as synchronisation left it, by organization id. */
  readonly states = new Map<string, { name: string; enabled: boolean; attributes: Record<string, unknown> }>();

  async syncOrganization(organizationId: string, desired: OrganizationState) {
    const { changed, next } = organizationChanges(this.states.get(organizationId) ?? {}, desired);
    this.states.set(organizationId, next);
    return { changed };
  }

  async health() {
    return 'mock' as const;
  }
}
