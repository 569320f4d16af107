// Keycloak provisioning turned off (KEYCLOAK_PROVISIONING=off): for a deployment that has no
// Keycloak Admin API to call. Every provisioning is refused, so a tenant created with an
// admin_email is recorded as failed with the reason (keycloak.provision_failed, error_type
// disabled) and nothing claims an invitation was sent. Turning provisioning on and running
// POST /v1/tenants/{id}/keycloak/provision later completes it from the admin kept on the tenant.
import { KeycloakError, type KeycloakAdapter, type ProvisionResult } from './adapter.js';

export class DisabledAdapter implements KeycloakAdapter {
  readonly kind = 'disabled' as const;

  async provision(): Promise<ProvisionResult> {
    // Refused before the first step: no organization, user or mail was made.
    throw new KeycloakError(
      'disabled',
      'organization',
      'Keycloak provisioning is turned off in this deployment (KEYCLOAK_PROVISIONING=off); nothing was sent',
    );
  }

  async syncOrganization(): Promise<{ changed: string[] }> {
    throw new KeycloakError('disabled', 'sync', 'Keycloak provisioning is turned off in this deployment (KEYCLOAK_PROVISIONING=off)');
  }

  async health() {
    return 'disabled' as const;
  }
}
