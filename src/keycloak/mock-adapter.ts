// Keycloak for dev and tests without one: remembers every provisioning it was asked for and
// answers with ids derived from the request, so the same tenant always gets the same ids.
import { createHash } from 'node:crypto';
import type { KeycloakAdapter, ProvisionRequest, ProvisionResult } from './adapter.js';

/** A UUID-shaped id from a name, stable across runs (like a v5 UUID, without the namespace fuss). */
function stableId(kind: string, name: string): string {
  const hex = createHash('sha256').update(`${kind}:${name}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

export class MockAdapter implements KeycloakAdapter {
  readonly kind = 'mock' as const;
  readonly provisioned: ProvisionRequest[] = [];

  constructor(private readonly realmUrl: string) {}

  async provision(request: ProvisionRequest): Promise<ProvisionResult> {
    this.provisioned.push(request);
    const userId = stableId('user', request.adminEmail.toLowerCase());
    return {
      organizationId: stableId('organization', request.slug),
      userId,
      inviteUrl: `${this.realmUrl}/login-actions/action-token?mock=${userId}`,
    };
  }

  async health() {
    return 'mock' as const;
  }
}
