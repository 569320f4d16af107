// The access rules, in one place. Every route declares who may call it in its `config.access`;
// a route without a declaration cannot be registered. Three hooks enforce the declarations:
//   onRequest   authenticates the bearer token (401 before any body is even read)
//   preParsing  refuses a principal none of whose roles the route allows (403), still before
//               the body is read, parsed or validated: a caller cannot buy CPU with a body it
//               may not send. It runs after the rate limit, so refusals count against it.
//   preHandler  checks the tenant, once params, query and body are validated, because the
//               tenant a request concerns is named in them (or found through them, as a slug)
// A missing or bad token is 401 with WWW-Authenticate; a principal whose roles do not allow the
// route is 403; a tenant-scoped principal asking about another tenant gets 404, exactly what a
// tenant that does not exist would get, so existence is not leaked.
//
// A user belongs to a tenant through its token (the legacy tenant_id claim, or an organization
// id matching the tenant's keycloak_org_id) and administers it by the realm role IT_ADMIN with
// the legacy claim, or by the registry's own list of each tenant's admins (tenant_admins): a
// member of A who administers B gets B's admin routes and A's member routes, nothing more.
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, preParsingHookHandler } from 'fastify';
import type { Principal } from '../auth/principal.js';
import { InvalidTokenError, IssuerUnavailableError, type TokenVerifier } from '../auth/verifier.js';
import { isUuid } from '../domain/ids.js';
import { AppError, notFound } from '../problems.js';
import type { TenantStanding } from '../store/tenants.js';

/** The standing of a subject in a tenant (store/tenants.ts findTenantStanding); undefined: no such tenant. */
export type StandingOf = (tenantId: string, subject: string) => Promise<TenantStanding | undefined>;

/**
 * platform_admin: operators. service: registry_service accounts (any tenant). it_admin: the
 * IT_ADMIN of the tenant concerned. member: any user of the tenant concerned (IT_ADMIN included).
 */
export type Grant = 'platform_admin' | 'service' | 'it_admin' | 'member';

/**
 * The tenant a request concerns: its id; null when the named resource does not exist (404);
 * undefined when the request names no tenant, which a tenant-scoped principal may not make.
 */
export type TenantOf = (request: FastifyRequest) => string | null | undefined | Promise<string | null | undefined>;

export interface Rule {
  allow: readonly Grant[];
  tenant?: TenantOf;
  /** A request that names no tenant is open to every grant (e.g. the bare catalog). */
  tenantOptional?: boolean;
}

export type Access = { public: true } | Rule;

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
}

const unauthorized = (detail: string, tokenError: boolean) =>
  new AppError('unauthorized', {
    detail,
    headers: {
      'www-authenticate': tokenError ? 'Bearer error="invalid_token"' : 'Bearer',
    },
  });

export const forbidden = (detail: string) => new AppError('forbidden', { detail });

const BEARER = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i;

function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header === undefined) return undefined;
  const match = BEARER.exec(header.trim());
  if (!match) throw unauthorized('the Authorization header is not "Bearer <token>"', true);
  return match[1];
}

// Clients keep connections open and send the same Authorization header on each request (the
// portal, headless products). Remembering the last header and its principal per connection
// spares those requests the header parse and the token cache's hashing of a 500-character key.
const lastOnConnection = new WeakMap<object, { header: string; principal: Principal; expiresAt: number }>();

/** The principal this connection's previous request proved, when this one sends the same header. */
export function rememberedPrincipal(request: FastifyRequest): Principal | undefined {
  return rememberedOn(request.raw);
}

function rememberedOn(raw: IncomingMessage): Principal | undefined {
  const last = lastOnConnection.get(raw.socket);
  return last && last.header === raw.headers.authorization && last.expiresAt > Date.now() ? last.principal : undefined;
}

/**
 * The principal of a request whose token was proved before (by this connection's previous
 * request, or in the verifier's cache), found without verifying, awaiting or throwing anything;
 * undefined for every other request, which the route's own hooks then authenticate. For code
 * that serves a request before the router (http/verify-lane.ts).
 */
export function principalKnownNow(raw: IncomingMessage, verifier: TokenVerifier): Principal | undefined {
  const remembered = rememberedOn(raw);
  if (remembered) return remembered;
  const header = raw.headers.authorization;
  const token = header === undefined || !verifier.known ? undefined : BEARER.exec(header.trim())?.[1];
  const principal = token === undefined ? undefined : verifier.known!(token);
  if (principal) lastOnConnection.set(raw.socket, { header: header!, principal, expiresAt: principal.expiresAt });
  return principal;
}

/** Whether the principal's roles alone allow the rule, for any tenant: nothing to look up. */
export const allowedOutright = (principal: Principal, rule: Rule): boolean => grantOf(principal, rule.allow) === 'any';

async function authenticate(request: FastifyRequest, verifier: TokenVerifier): Promise<Principal> {
  const header = request.headers.authorization;
  const principal = await verifyBearer(request, verifier);
  if (header !== undefined) lastOnConnection.set(request.raw.socket, { header, principal, expiresAt: principal.expiresAt });
  return principal;
}

async function verifyBearer(request: FastifyRequest, verifier: TokenVerifier): Promise<Principal> {
  const token = bearerToken(request);
  if (token === undefined) throw unauthorized('this endpoint needs a bearer token', false);
  try {
    return await verifier.verify(token);
  } catch (error) {
    if (error instanceof InvalidTokenError) throw unauthorized(`the token was refused: ${error.reason}`, true);
    if (error instanceof IssuerUnavailableError) {
      throw new AppError('unavailable', {
        // The message names what failed (a timeout, a status) without addresses or secrets.
        detail: `tokens cannot be verified right now: ${error.message}`,
        headers: { 'retry-after': '5' },
        cause: error,
      });
    }
    throw error;
  }
}

/** What the principal's roles alone say: allowed for any tenant, for its own tenant, or not at all. */
function grantOf(principal: Principal, allow: readonly Grant[]): 'any' | 'own' | 'none' {
  if (allow.includes('platform_admin') && principal.isPlatformAdmin) return 'any';
  if (allow.includes('service') && principal.isService) return 'any';
  const legacy = principal.tenantId !== null && ((allow.includes('it_admin') && principal.isItAdmin) || allow.includes('member'));
  // Whether an organization member administers the tenant is known only once it is looked up.
  const organizations = principal.organizations.length > 0 && (allow.includes('it_admin') || allow.includes('member'));
  return legacy || organizations ? 'own' : 'none';
}

const refusedByRoles = () => forbidden('your roles do not allow this');

/**
 * Settles the request's access: undefined when allowed outright, a promise when the tenant it
 * concerns must be looked up first; throws when refused. Most calls (operators, services) never
 * need the promise.
 */
function authorize(request: FastifyRequest, principal: Principal, access: Rule, standingOf: StandingOf): Promise<void> | undefined {
  const grant = grantOf(principal, access.allow);
  if (grant === 'any') return undefined;
  if (grant === 'none') throw refusedByRoles();
  return checkTenant(request, principal, access, standingOf);
}

async function checkTenant(request: FastifyRequest, principal: Principal, access: Rule, standingOf: StandingOf): Promise<void> {
  const named = access.tenant ? await access.tenant(request) : undefined;
  if (named === undefined) {
    if (access.tenantOptional) return;
    throw forbidden('name your tenant (tenant_id) to use this');
  }
  if (named === null) throw notFound('tenant');
  const tenant = named.toLowerCase();
  const member = access.allow.includes('member');
  const itAdmin = access.allow.includes('it_admin');
  if (tenant === principal.tenantId && (member || (itAdmin && principal.isItAdmin))) return;
  if (principal.organizations.length === 0 || !isUuid(tenant)) throw notFound('tenant');
  const standing = await standingOf(tenant, principal.sub);
  const organization = standing?.organizationId?.toLowerCase();
  // Not a member: the same 404 as a tenant that does not exist.
  if (organization === undefined || !principal.organizations.includes(organization)) throw notFound('tenant');
  if (member || (itAdmin && standing!.admin)) return;
  throw forbidden('you are a member of this tenant, not one of its IT admins');
}

export function registerAccessControl(app: FastifyInstance, verifier: TokenVerifier, standingOf: StandingOf): void {
  app.decorateRequest('principal', null);

  // The hooks are attached to each route that needs them, with its rule in their closure: public
  // routes (probes) run none, and no request pays for looking its rule up.
  app.addHook('onRoute', (route) => {
    const access = route.config?.access;
    if (!access) throw new Error(`route ${String(route.method)} ${route.url} declares no access rule`);
    if ('public' in access) return;
    // Callback style, settling synchronously when it can: a remembered principal and an operator
    // or service grant need no promise, and these hooks run on every request of the hot paths.
    const authenticateHook = (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) => {
      const remembered = rememberedPrincipal(request);
      if (remembered) {
        request.principal = remembered;
        return done();
      }
      authenticate(request, verifier).then((principal) => {
        request.principal = principal;
        done();
      }, done);
    };
    const rolesHook: preParsingHookHandler = (request, _reply, payload, done) => {
      if (grantOf(request.principal!, access.allow) === 'none') return done(refusedByRoles());
      done(null, payload);
    };
    const authorizeHook = (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) => {
      let pending: Promise<void> | undefined;
      try {
        pending = authorize(request, request.principal!, access, standingOf);
      } catch (error) {
        return done(error as Error);
      }
      if (!pending) return done();
      pending.then(() => done(), done);
    };
    route.onRequest = [authenticateHook, ...asArray(route.onRequest)];
    route.preParsing = [rolesHook, ...asArray(route.preParsing)];
    route.preHandler = [authorizeHook, ...asArray(route.preHandler)];
  });
}

const asArray = <T>(value: T | T[] | undefined): T[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

/** The tenant named by a route parameter, query field or body field. */
export const tenantFrom = {
  param: (name: string): TenantOf => (request) => (request.params as Record<string, string | undefined>)[name],
  query: (name: string): TenantOf => (request) => (request.query as Record<string, string | undefined>)[name],
  body: (name: string): TenantOf => (request) => (request.body as Record<string, string | undefined> | undefined)?.[name],
};
