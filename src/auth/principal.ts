// Who is calling, as read from a verified token. Keycloak puts realm roles in
// realm_access.roles and client roles in resource_access.<client>.roles. The tenants a user
// belongs to come from either of two shapes (keycloak/README.md shows the mappers):
//   organization  Keycloak's organization membership mapper with "add organization id":
//                 {"<alias>": {"id": "<organization id>", ...}}; each id is matched to a tenant's
//                 keycloak_org_id, and the registry's own list says whether the user administers it
//   tenant_id     a user-attribute mapper naming one tenant; with the realm role IT_ADMIN the
//                 user administers it (the older shape, kept for realms set up that way)
import { isUuid } from '../domain/ids.js';

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
  /** The tenant of the legacy tenant_id claim, when it names one. */
  tenantId: string | null;
  /** Keycloak organization ids from the organization claim (at most MAX_ORGANIZATIONS). */
  organizations: readonly string[];
  isPlatformAdmin: boolean;
  isItAdmin: boolean;
  isService: boolean;
  /** When the token it came from expires (ms since the epoch); nothing may trust it after that. */
  expiresAt: number;
}


/**
 * The longest subject accepted: OpenID Connect Core (section 2) bounds `sub` to 255 ASCII
 * characters. It keys each caller's rate-limit bucket and idempotency namespace and is the
 * actor id of every audit event, so an unbounded one would be carried into all three.
 */
export const SUBJECT_MAX_LENGTH = 255;
/** Display names are cut here; Keycloak's own usernames are at most 255 characters too. */
export const NAME_MAX_LENGTH = 255;
/**
 * Organizations read from one token; the rest are ignored. Access checks look an id up in this
 * list per request, and a token is remembered per connection, so its size is bounded.
 */
export const MAX_ORGANIZATIONS = 100;
const ORGANIZATION_ID_MAX_LENGTH = 255;

// Control characters and unpaired surrogates: PostgreSQL cannot store U+0000, and the others
// would be written to logs and hashed audit events as something other than what was received.
const UNPRINTABLE = /[\p{Cc}\p{Cs}]/u;

/** A token whose claims name nobody the service can hold to account. */
export class UnusableClaimsError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'UnusableClaimsError';
  }
}

/** Why `sub` cannot name a caller, or null when it can. */
export function subjectProblem(sub: unknown): string | null {
  if (typeof sub !== 'string') return '"sub" claim must be a string';
  if (sub === '') return '"sub" claim must not be empty';
  if (sub.length > SUBJECT_MAX_LENGTH) return `"sub" claim is longer than ${SUBJECT_MAX_LENGTH} characters`;
  if (UNPRINTABLE.test(sub)) return '"sub" claim holds a control character or an unpaired surrogate';
  return null;
}

const strings = (value: unknown): string[] =>
  Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];

const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);

/** A claim usable as a display name: printable text, cut to NAME_MAX_LENGTH code points. */
function displayName(value: unknown): string | undefined {
  const name = text(value);
  if (name === undefined || UNPRINTABLE.test(name)) return undefined;
  return name.length <= NAME_MAX_LENGTH ? name : Array.from(name).slice(0, NAME_MAX_LENGTH).join('');
}

/**
 * The organization ids of Keycloak's organization claim. Only entries with an id count: the
 * mapper's plain form (an array of aliases) names organizations by alias, which the registry does
 * not match. Several mappers writing one claim make Keycloak emit an array of their values, so
 * objects inside an array are read too.
 */
export function organizationIdsOf(claim: unknown): string[] {
  const ids: string[] = [];
  for (const part of Array.isArray(claim) ? claim : [claim]) {
    if (typeof part !== 'object' || part === null || Array.isArray(part)) continue;
    for (const entry of Object.values(part as Record<string, unknown>)) {
      if (ids.length >= MAX_ORGANIZATIONS) return ids;
      const id = (entry as { id?: unknown } | null)?.id;
      if (typeof id === 'string' && id !== '' && id.length <= ORGANIZATION_ID_MAX_LENGTH && !UNPRINTABLE.test(id)) {
        ids.push(id.toLowerCase());
      }
    }
  }
  return ids;
}

function rolesOf(claims: Record<string, unknown>, client: string): Set<string> {
  const realm = (claims.realm_access as { roles?: unknown } | undefined)?.roles;
  const clients = claims.resource_access as Record<string, { roles?: unknown }> | undefined;
  return new Set([...strings(realm), ...strings(clients?.[client]?.roles)]);
}

/**
 * The principal of verified claims. Throws UnusableClaimsError for a `sub` that is missing, not
 * a non-empty string, too long or unprintable: every such caller would otherwise share one
 * identity (one rate-limit bucket, one idempotency namespace, one audit actor).
 */
export function principalFromClaims(claims: Record<string, unknown>, settings: PrincipalSettings): Principal {
  const problem = subjectProblem(claims.sub);
  if (problem !== null) throw new UnusableClaimsError(problem);
  const sub = claims.sub as string;
  const roles = rolesOf(claims, settings.rolesClient);
  const clientId = text(claims.client_id) ?? text(claims.clientId);
  const username = text(claims.preferred_username);
  const isService = roles.has(settings.roles.service);
  // Keycloak names a client's service-account user "service-account-<client>".
  const kind = isService || clientId !== undefined || username?.startsWith('service-account-') ? 'service' : 'user';
  const tenant = text(claims.tenant_id);
  return {
    sub,
    name: displayName(username) ?? displayName(claims.name) ?? displayName(clientId) ?? displayName(claims.azp) ?? sub,
    kind,
    client: text(claims.azp) ?? clientId ?? null,
    // A malformed tenant claim grants nothing rather than matching some tenant by accident.
    tenantId: tenant !== undefined && isUuid(tenant) ? tenant.toLowerCase() : null,
    organizations: organizationIdsOf(claims.organization),
    isPlatformAdmin: roles.has(settings.roles.platformAdmin),
    isItAdmin: roles.has(settings.roles.itAdmin),
    isService,
    expiresAt: typeof claims.exp === 'number' ? claims.exp * 1000 : 0,
  };
}
