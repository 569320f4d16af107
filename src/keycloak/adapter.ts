// The seam between the registry and Keycloak: what provisioning a tenant asks of it. Three
// implementations: HttpAdapter speaks the Admin REST API; MockAdapter (dev without
// KEYCLOAK_ADMIN_URL) records what it was asked and answers deterministically, for dev and tests;
// DisabledAdapter (KEYCLOAK_PROVISIONING=off) refuses every provisioning.

export interface ProvisionRequest {
  tenantId: string;
  /** The organization alias; immutable in Keycloak once created. */
  slug: string;
  name: string;
  adminEmail: string;
  adminName: string | null;
}

export interface ProvisionResult {
  organizationId: string;
  userId: string;
  /** Only a mock can know a link; Keycloak mails it and never returns it. */
  inviteUrl: string | null;
}

/** Which step of provisioning failed; provisioning again resumes from there. */
export type ProvisionStep = 'token' | 'organization' | 'user' | 'membership' | 'role' | 'invite';
/** disabled: provisioning is turned off in this deployment, so nothing was asked of Keycloak. */
export type KeycloakErrorType = 'conflict' | 'unauthorized' | 'unavailable' | 'bad_request' | 'disabled';

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

export type KeycloakHealth = 'up' | 'down' | 'mock' | 'disabled';

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
