// The Keycloak Admin REST API client. It authenticates as a service account (client_credentials),
// reuses the token until shortly before it expires, and fetches a new one once when an admin call
// answers 401 (Keycloak gives this grant no refresh token). Each call has its own timeout and all
// of them share the caller's signal, so a hung Keycloak cannot hold a tenant creation.
import { keycloakCalls } from '../observability/metrics.js';
import {
  KeycloakError,
  namesTenant,
  organizationChanges,
  TENANT_ATTRIBUTE,
  type OrganizationState,
  type KeycloakAdapter,
  type KeycloakErrorType,
  type ProvisionRequest,
  type ProvisionStep,
} from './adapter.js';

export interface HttpAdapterOptions {
  baseUrl: string;
  realm: string;
  clientId: string;
  clientSecret: string;
  /** The realm role that makes a user its tenant's IT admin. */
  itAdminRole: string;
  /** How long the links in the invitation mail stay valid. */
  inviteLifespanSeconds: number;
  /** Per HTTP call. */
  callTimeoutMs: number;
}

// Fetch a new token this long before the old one expires, so no call goes out with a token that
// dies in flight.
const TOKEN_EARLY_REFRESH_MS = 30_000;

interface CallOptions {
  /** Relative to /admin instead of /admin/realms/{realm} (serverinfo). */
  outsideRealm?: boolean;
  query?: Record<string, string>;
  json?: unknown;
  /** Statuses that are answers, not failures (e.g. 409 "already exists" where that is fine). */
  accept?: number[];
}

function errorTypeFor(status: number): KeycloakErrorType {
  if (status === 401 || status === 403) return 'unauthorized';
  if (status === 409) return 'conflict';
  if (status >= 500) return 'unavailable';
  return 'bad_request';
}

/** Keycloak's own words for a failure ({errorMessage} or {error}); they never hold our secrets. */
async function reasonOf(response: Response): Promise<string> {
  try {
    const body = (await response.json()) as { errorMessage?: unknown; error?: unknown; error_description?: unknown };
    const reason = body.errorMessage ?? body.error_description ?? body.error;
    return typeof reason === 'string' ? reason.slice(0, 200) : `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

const idFromLocation = (response: Response, step: ProvisionStep): string => {
  const id = response.headers.get('location')?.split('/').pop();
  if (!id) throw new KeycloakError('unavailable', step, 'Keycloak answered 201 without a Location');
  return id;
};

/** A user as Keycloak's search answers it: what adoption looks at. */
interface FoundUser {
  id: string;
  email?: string;
  emailVerified?: boolean;
  attributes?: unknown;
}

export class HttpAdapter implements KeycloakAdapter {
  readonly kind = 'http' as const;
  private token: { value: string; refreshAt: number } | undefined;
  private readonly adminRoot: string;
  private readonly realmBase: string;

  constructor(private readonly options: HttpAdapterOptions) {
    this.adminRoot = `${options.baseUrl.replace(/\/$/, '')}/admin`;
    this.realmBase = `${this.adminRoot}/realms/${encodeURIComponent(options.realm)}`;
  }

  private signalFor(signal: AbortSignal): AbortSignal {
    return AbortSignal.any([signal, AbortSignal.timeout(this.options.callTimeoutMs)]);
  }

  private async fetchToken(signal: AbortSignal): Promise<string> {
    const { baseUrl, realm, clientId, clientSecret } = this.options;
    let response: Response;
    try {
      response = await fetch(`${baseUrl.replace(/\/$/, '')}/realms/${encodeURIComponent(realm)}/protocol/openid-connect/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret }),
        signal: this.signalFor(signal),
      });
    } catch {
      throw new KeycloakError('unavailable', 'token', 'Keycloak did not answer the token request');
    }
    if (!response.ok) throw new KeycloakError(errorTypeFor(response.status), 'token', await reasonOf(response), response.status);
    let body: { access_token?: unknown; expires_in?: unknown };
    try {
      body = (await response.json()) as typeof body;
    } catch {
      throw new KeycloakError('unavailable', 'token', 'Keycloak answered the token request with malformed JSON');
    }
    if (typeof body.access_token !== 'string') throw new KeycloakError('unavailable', 'token', 'Keycloak answered without an access token');
    const lifetimeMs = (typeof body.expires_in === 'number' ? body.expires_in : 60) * 1000;
    this.token = { value: body.access_token, refreshAt: Date.now() + Math.max(lifetimeMs - TOKEN_EARLY_REFRESH_MS, lifetimeMs / 2) };
    return body.access_token;
  }

  private async accessToken(signal: AbortSignal): Promise<string> {
    if (this.token && this.token.refreshAt > Date.now()) return this.token.value;
    return this.fetchToken(signal);
  }

  /** One admin call; a 401 fetches a new token and tries once more. */
  private async call(step: ProvisionStep, method: string, path: string, signal: AbortSignal, options: CallOptions = {}): Promise<Response> {
    const url = new URL(`${options.outsideRealm ? this.adminRoot : this.realmBase}${path}`);
    for (const [name, value] of Object.entries(options.query ?? {})) url.searchParams.set(name, value);
    for (let attempt = 0; ; attempt += 1) {
      const token = attempt === 0 ? await this.accessToken(signal) : await this.fetchToken(signal);
      let response: Response;
      try {
        response = await fetch(url, {
          method,
          headers: {
            authorization: `Bearer ${token}`,
            ...(options.json !== undefined ? { 'content-type': 'application/json' } : {}),
          },
          ...(options.json !== undefined ? { body: JSON.stringify(options.json) } : {}),
          signal: this.signalFor(signal),
        });
      } catch {
        keycloakCalls.inc({ step, outcome: 'unavailable' });
        throw new KeycloakError('unavailable', step, `Keycloak did not answer ${method} ${path.split('?')[0]}`);
      }
      if (response.status === 401 && attempt === 0) {
        keycloakCalls.inc({ step, outcome: 'token_refresh' });
        await response.body?.cancel();
        continue;
      }
      if (response.ok || options.accept?.includes(response.status)) {
        keycloakCalls.inc({ step, outcome: 'ok' });
        return response;
      }
      keycloakCalls.inc({ step, outcome: errorTypeFor(response.status) });
      throw new KeycloakError(errorTypeFor(response.status), step, await reasonOf(response), response.status);
    }
  }

  private async json<T>(step: ProvisionStep, response: Response): Promise<T> {
    try {
      return (await response.json()) as T;
    } catch {
      throw new KeycloakError('unavailable', step, 'Keycloak answered with malformed JSON');
    }
  }

  private async organizationId(request: ProvisionRequest, signal: AbortSignal): Promise<string> {
    const created = await this.call('organization', 'POST', '/organizations', signal, {
      json: { name: request.name, alias: request.slug, enabled: true, attributes: { [TENANT_ATTRIBUTE]: [request.tenantId] } },
      accept: [409],
    });
    if (created.status !== 409) return idFromLocation(created, 'organization');
    await created.body?.cancel();
    // The name or alias exists already. An earlier, interrupted run for this tenant made it, and
    // then it carries this tenant's id; any other organization is not adopted, or this tenant's
    // admin would join someone else's organization. Searches answer brief representations by
    // default, which leave the attributes out.
    const found = await this.json<Array<{ id: string; alias?: string; attributes?: unknown }>>(
      'organization',
      await this.call('organization', 'GET', '/organizations', signal, {
        query: { q: `alias:${request.slug}`, exact: 'true', briefRepresentation: 'false' },
      }),
    );
    const organization = found.find((candidate) => candidate.alias === request.slug);
    if (!organization) throw new KeycloakError('conflict', 'organization', 'another organization has this name', 409);
    // One this registry recorded for the tenant predates the tag, and is the tenant's own.
    if (organization.id !== request.knownOrganizationId && !namesTenant(organization.attributes, request.tenantId)) {
      throw new KeycloakError('conflict', 'organization', `the organization with this alias does not carry this tenant's ${TENANT_ATTRIBUTE}`, 409);
    }
    return organization.id;
  }

  private async findUser(email: string, signal: AbortSignal): Promise<FoundUser | undefined> {
    const users = await this.json<FoundUser[]>('user', await this.call('user', 'GET', '/users', signal, { query: { email, exact: 'true' } }));
    return users.find((user) => user.email?.toLowerCase() === email.toLowerCase());
  }

  /**
   * An existing user is made the admin only when the address is proven theirs (verified), or when
   * an earlier run for this very tenant created it. Anyone can type any address into their account
   * before an operator creates the tenant; adopting them would hand the tenant to them.
   */
  private adoptable(user: FoundUser, request: ProvisionRequest): string {
    if (user.emailVerified === true || namesTenant(user.attributes, request.tenantId)) return user.id;
    throw new KeycloakError('conflict', 'user', 'a user with this email exists and has not verified it; it is not made the admin', 409);
  }

  /** The admin's user: found by email, or created naming this tenant in its tenant_id attribute. */
  private async userId(request: ProvisionRequest, signal: AbortSignal): Promise<{ id: string; created: boolean }> {
    const existing = await this.findUser(request.adminEmail, signal);
    if (existing) return { id: this.adoptable(existing, request), created: false };
    const [firstName, ...rest] = (request.adminName ?? '').trim().split(/\s+/);
    const created = await this.call('user', 'POST', '/users', signal, {
      json: {
        username: request.adminEmail,
        email: request.adminEmail,
        firstName: firstName || undefined,
        lastName: rest.join(' ') || undefined,
        enabled: true,
        emailVerified: false,
        attributes: { [TENANT_ATTRIBUTE]: [request.tenantId] },
      },
      accept: [409],
    });
    if (created.status !== 409) return { id: idFromLocation(created, 'user'), created: true };
    await created.body?.cancel();
    // Created meanwhile, or the username is taken by a user with another email.
    const raced = await this.findUser(request.adminEmail, signal);
    if (!raced) throw new KeycloakError('conflict', 'user', 'a user with this username exists with another email', 409);
    return { id: this.adoptable(raced, request), created: false };
  }

  /**
   * The tenant of the user's tenant_id attribute (the legacy token shape), set to this tenant when
   * it names none. A user who belongs to another tenant keeps it: the attribute holds one tenant,
   * and rights over this one come from the organization and the registry's admin list instead.
   */
  private async attributeTenant(userPath: string, tenantId: string, signal: AbortSignal): Promise<string | undefined> {
    const user = await this.json<{ attributes?: Record<string, unknown> } & Record<string, unknown>>(
      'user',
      await this.call('user', 'GET', userPath, signal),
    );
    const named = user.attributes?.[TENANT_ATTRIBUTE];
    if (Array.isArray(named) && typeof named[0] === 'string' && named[0] !== '') return named[0].toLowerCase();
    // Keycloak replaces the whole representation on PUT: send back what it answered, plus the attribute.
    const attributes = { ...(user.attributes ?? {}), [TENANT_ATTRIBUTE]: [tenantId] };
    await (await this.call('user', 'PUT', userPath, signal, { json: { ...user, attributes } })).body?.cancel();
    return tenantId.toLowerCase();
  }

  private async hasCredentials(userPath: string, signal: AbortSignal): Promise<boolean> {
    const credentials = await this.json<unknown>('invite', await this.call('invite', 'GET', `${userPath}/credentials`, signal));
    return Array.isArray(credentials) && credentials.length > 0;
  }

  async provision(request: ProvisionRequest, signal: AbortSignal) {
    const organizationId = await this.organizationId(request, signal);
    const user = await this.userId(request, signal);
    const org = `/organizations/${encodeURIComponent(organizationId)}`;
    // Already a member answers 409, which is what a re-run wants.
    await (await this.call('membership', 'POST', `${org}/members`, signal, { json: user.id, accept: [409] })).body?.cancel();
    const userPath = `/users/${encodeURIComponent(user.id)}`;
    // The realm role IT_ADMIN means "admin of the tenant in my tenant_id attribute": granted only
    // when that attribute names this tenant, or a member of tenant A invited to administer B
    // would become an admin of A.
    if ((await this.attributeTenant(userPath, request.tenantId, signal)) === request.tenantId.toLowerCase()) {
      const role = await this.json<{ id: string; name: string }>(
        'role',
        await this.call('role', 'GET', `/roles/${encodeURIComponent(this.options.itAdminRole)}`, signal),
      );
      await (await this.call('role', 'POST', `${userPath}/role-mappings/realm`, signal, { json: [{ id: role.id, name: role.name }] })).body?.cancel();
    }
    // A user who can already sign in needs no password; one who cannot is sent the link that
    // verifies the address and sets one (again, when an earlier mail was lost).
    if (user.created || !(await this.hasCredentials(userPath, signal))) {
      await (
        await this.call('invite', 'PUT', `${userPath}/execute-actions-email`, signal, {
          query: { lifespan: String(this.options.inviteLifespanSeconds) },
          json: ['VERIFY_EMAIL', 'UPDATE_PASSWORD'],
        })
      ).body?.cancel();
    }
    return { organizationId, userId: user.id, inviteUrl: null };
  }

  async syncOrganization(organizationId: string, desired: OrganizationState, signal: AbortSignal) {
    const path = `/organizations/${encodeURIComponent(organizationId)}`;
    const current = await this.json<Record<string, unknown> & { name?: unknown; enabled?: unknown; attributes?: unknown }>(
      'sync',
      await this.call('sync', 'GET', path, signal),
    );
    const changes = organizationChanges(current, desired);
    if (changes.changed.length > 0) {
      // PUT replaces the organization: send back what Keycloak answered, with the owned parts set.
      await (await this.call('sync', 'PUT', path, signal, { json: { ...current, ...changes.next } })).body?.cancel();
    }
    return { changed: changes.changed };
  }

  async health() {
    try {
      const response = await this.call('token', 'GET', '/serverinfo', AbortSignal.timeout(this.options.callTimeoutMs), {
        outsideRealm: true,
      });
      await response.body?.cancel();
      return 'up' as const;
    } catch {
      return 'down' as const;
    }
  }
}
