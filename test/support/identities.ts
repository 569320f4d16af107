// The callers the access rules know, as token claims for the test issuer.
import type { JWTPayload } from 'jose';

export const ROLE_NAMES = { platformAdmin: 'platform_admin', itAdmin: 'IT_ADMIN', service: 'registry_service' };

export const identities = {
  platformAdmin: (): JWTPayload => ({
    sub: 'operator-1',
    preferred_username: 'olga.operator',
    realm_access: { roles: [ROLE_NAMES.platformAdmin] },
  }),
  itAdmin: (tenantId: string): JWTPayload => ({
    sub: `it-admin-${tenantId}`,
    preferred_username: 'ivan.itadmin',
    tenant_id: tenantId,
    realm_access: { roles: [ROLE_NAMES.itAdmin] },
  }),
  member: (tenantId: string): JWTPayload => ({
    sub: `member-${tenantId}`,
    preferred_username: 'mia.member',
    tenant_id: tenantId,
    realm_access: { roles: ['offline_access'] },
  }),
  service: (): JWTPayload => ({
    sub: 'service-account-portal',
    preferred_username: 'service-account-portal',
    client_id: 'portal',
    resource_access: { 'tenant-registry': { roles: [ROLE_NAMES.service] } },
  }),
};
