// Who is calling, as read from a verified token. Keycloak puts realm roles in
// realm_access.roles and client roles in resource_access.<client>.roles; the tenant a user
// belongs to comes from a tenant_id claim (a protocol mapper of the realm adds it).

export interface RoleNames {
  platformAdmin: string;
  itAdmin: string;
  service: string;
}

export interface PrincipalSettings {
  roles: RoleNames;
  /** The client whose resource_access roles count, besides the realm roles. */
  rolesClient: string;
}

export interface Principal {
  /** The token's subject: a user id, or the service account's user id. */
  sub: string;
  /** Something a person reading the audit log recognizes: username, name or client id. */
  name: string;
  kind: 'user' | 'service';
  /** The OAuth client the token was issued to (azp, else client_id), where it names one. */
  client: string | null;
  tenantId: string | null;
  isPlatformAdmin: boolean;
  isItAdmin: boolean;
  isService: boolean;
  /** When the token it came from expires (ms since the epoch); nothing may trust it after that. */
  expiresAt: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const strings = (value: unknown): string[] =>
  Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];

const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);

function rolesOf(claims: Record<string, unknown>, client: string): Set<string> {
  const realm = (claims.realm_access as { roles?: unknown } | undefined)?.roles;
  const clients = claims.resource_access as Record<string, { roles?: unknown }> | undefined;
  return new Set([...strings(realm), ...strings(clients?.[client]?.roles)]);
}

export function principalFromClaims(claims: Record<string, unknown>, settings: PrincipalSettings): Principal {
  const roles = rolesOf(claims, settings.rolesClient);
  const clientId = text(claims.client_id) ?? text(claims.clientId);
  const username = text(claims.preferred_username);
  const isService = roles.has(settings.roles.service);
  // Keycloak names a client's service-account user "service-account-<client>".
  const kind = isService || clientId !== undefined || username?.startsWith('service-account-') ? 'service' : 'user';
  const tenant = text(claims.tenant_id);
  return {
    sub: text(claims.sub) ?? 'unknown',
    name: username ?? text(claims.name) ?? clientId ?? text(claims.azp) ?? text(claims.sub) ?? 'unknown',
    kind,
    client: text(claims.azp) ?? clientId ?? null,
    // A malformed tenant claim grants nothing rather than matching some tenant by accident.
    tenantId: tenant !== undefined && UUID.test(tenant) ? tenant.toLowerCase() : null,
    isPlatformAdmin: roles.has(settings.roles.platformAdmin),
    isItAdmin: roles.has(settings.roles.itAdmin),
    isService,
    expiresAt: typeof claims.exp === 'number' ? claims.exp * 1000 : 0,
  };
}
