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

/**
 * What a tenant's organization should be: its name, whether its members may use it, and the
 * attributes the registry owns on it (tenant_id, status, plan, products), which Keycloak's
 * organization mapper puts into tokens. Attributes the registry does not own are left alone.
 */
export interface OrganizationState {
  name: string;
  enabled: boolean;
  attributes: Record<string, string[]>;
}

/** The attributes the registry writes on an organization; any other attribute is someone else's. */
export const OWNED_ATTRIBUTES = [TENANT_ATTRIBUTE, 'status', 'plan', 'products'] as const;

/** Which step of provisioning or synchronisation failed; doing it again resumes from there. */
export const PROVISION_STEPS = ['token', 'organization', 'user', 'membership', 'role', 'invite', 'sync'] as const;
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

const sameValues = (a: unknown, b: readonly string[]) =>
  Array.isArray(a) && a.length === b.length && a.every((value, i) => value === b[i]);

/**
 * What must change for an organization as Keycloak answered it to match `desired`: the names of
 * the changed parts (name, enabled, attributes.<key>) and the fields to send. Owned attributes
 * absent from `desired` are removed; the others are kept as they are.
 */
export function organizationChanges(
  current: { name?: unknown; enabled?: unknown; attributes?: unknown },
  desired: OrganizationState,
): { changed: string[]; next: { name: string; enabled: boolean; attributes: Record<string, unknown> } } {
  const changed: string[] = [];
  if (current.name !== desired.name) changed.push('name');
  if (current.enabled !== desired.enabled) changed.push('enabled');
  const have = typeof current.attributes === 'object' && current.attributes !== null ? (current.attributes as Record<string, unknown>) : {};
  const attributes: Record<string, unknown> = {};
  for (const [key, values] of Object.entries(have)) if (!(OWNED_ATTRIBUTES as readonly string[]).includes(key)) attributes[key] = values;
  for (const key of OWNED_ATTRIBUTES) {
    const wanted = desired.attributes[key];
    if (wanted !== undefined && wanted.length > 0) attributes[key] = wanted;
    const now = have[key];
    if (wanted === undefined || wanted.length === 0 ? now !== undefined : !sameValues(now, wanted)) changed.push(`attributes.${key}`);
  }
  return { changed, next: { name: desired.name, enabled: desired.enabled, attributes } };
}

export interface KeycloakAdapter {
  readonly kind: 'http' | 'mock' | 'disabled';
  /**
   * Creates (or finds) the organization, the IT admin user and its membership and role, then
   * sends the verify-email + set-password mail. Every step is idempotent, so calling it again
   * completes what a failed call left. Gives up when `signal` aborts.
   */
  provision(request: ProvisionRequest, signal: AbortSignal): Promise<ProvisionResult>;
  /**
   * Brings the organization to `desired` and says what it had to change (empty: it was in step
   * already). Idempotent: asking again changes nothing more.
   */
  syncOrganization(organizationId: string, desired: OrganizationState, signal: AbortSignal): Promise<{ changed: string[] }>;
  health(): Promise<KeycloakHealth>;
}
