// The seam between the registry and Keycloak: what provisioning a tenant asks of it. Three
// implementations: HttpAdapter speaks the Admin REST API; MockAdapter (dev without
// KEYCLOAK_ADMIN_URL) records what it was asked and answers deterministically, for dev and tests;
// DisabledAdapter (KEYCLOAK_PROVISIONING=off) refuses every provisioning.

/**
 * The organization attribute naming the tenant an organization was made for. Provisioning sets
 * it on the organizations it creates and adopts an existing organization only when it names
 * the tenant being provisioned: an alias alone proves nothing, anyone with manage-realm (or a
 * tenant deleted and its slug taken again) can have made an organization with it.
 */
export const TENANT_ATTRIBUTE = 'tenant_id';

/** Whether Keycloak attributes ({key: [values]}) name exactly this tenant, and only it. */
export function namesTenant(attributes: unknown, tenantId: string): boolean {
  if (typeof attributes !== 'object' || attributes === null) return false;
  const values = (attributes as Record<string, unknown>)[TENANT_ATTRIBUTE];
  if (!Array.isArray(values) || values.length !== 1) return false;
  const [value] = values as unknown[];
  return typeof value === 'string' && value.toLowerCase() === tenantId.toLowerCase();
}

export interface ProvisionRequest {
  tenantId: string;
  /** The organization alias; immutable in Keycloak once created. */
  slug: string;
  name: string;
  adminEmail: string;
  adminName: string | null;
  /**
   * The organization an earlier provisioning of this tenant made, as the registry recorded it.
   * Organizations made before they were tagged with tenant_id are adopted by this id instead.
   */
  knownOrganizationId: string | null;
}

export interface ProvisionResult {
  organizationId: string;
  userId: string;
  /** Only a mock can know a link; Keycloak mails it and never returns it. */
  inviteUrl: string | null;
}

/** Which step of provisioning failed; provisioning again resumes from there. */
export const PROVISION_STEPS = ['token', 'organization', 'user', 'membership', 'role', 'invite'] as const;
export type ProvisionStep = (typeof PROVISION_STEPS)[number];
/** disabled: provisioning is turned off in this deployment, so nothing was asked of Keycloak. */
export const KEYCLOAK_ERROR_TYPES = ['conflict', 'unauthorized', 'unavailable', 'bad_request', 'disabled'] as const;
export type KeycloakErrorType = (typeof KEYCLOAK_ERROR_TYPES)[number];

/** A failure with its kind and step, and a message that never holds a secret. */
export class KeycloakError extends Error {
  constructor(
    readonly type: KeycloakErrorType,
    readonly step: ProvisionStep,
    message: string,
    readonly status: number | null = null,
  ) {
    super(message);
    this.name = 'KeycloakError';
  }
}

export const KEYCLOAK_HEALTH = ['up', 'down', 'mock', 'disabled'] as const;
export type KeycloakHealth = (typeof KEYCLOAK_HEALTH)[number];

export interface KeycloakAdapter {
  readonly kind: 'http' | 'mock' | 'disabled';
  /**
   * Creates (or finds) the organization, the IT admin user and its membership and role, then
   * sends the verify-email + set-password mail. Every step is idempotent, so calling it again
   * completes what a failed call left. Gives up when `signal` aborts.
   */
  provision(request: ProvisionRequest, signal: AbortSignal): Promise<ProvisionResult>;
  health(): Promise<KeycloakHealth>;
}
