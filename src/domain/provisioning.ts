// Where a tenant's Keycloak provisioning stands: none (no IT admin was given), pending (running),
// done, failed (retried with POST /v1/tenants/{id}/keycloak/provision). The enum type of the
// database (migrations/0007) holds the same words.

export const PROVISIONING_STATES = ['none', 'pending', 'done', 'failed'] as const;
export type ProvisioningState = (typeof PROVISIONING_STATES)[number];
