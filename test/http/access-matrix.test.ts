// Who may call what: every route the app serves against every kind of caller, over real HTTP.
// The table below is the access policy written out; a route without a row fails the first test,
// so every new endpoint has to join the matrix.
//
// The server checks an audience here (tokens must carry aud=tenant-registry), so that a token
// for another client is one more caller of the matrix.
import { randomBytes, randomUUID } from 'node:crypto';
import { SignJWT, exportSPKI, generateKeyPair, importJWK, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discoveredKeys } from '../../src/auth/discovery.js';
import { createTokenVerifier, type TokenVerifier } from '../../src/auth/verifier.js';
import { servedRoutes } from '../../src/http/not-found.js';
import type { AuditEvent } from '../../src/http/schemas/audit.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant, randomSlug } from '../support/factories.js';
import { call, client, problemOf, type Answer, type Client } from '../support/http.js';
import { identities, ROLE_NAMES } from '../support/identities.js';
import { startServer, type TestServer } from '../support/server.js';

const AUDIENCE = 'tenant-registry';

/**
 * The status each kind of caller gets. "own": a member or IT_ADMIN of tenant A asking about A;
 * "other": the same caller asking about tenant B.
 */
interface Expected {
  platformAdmin: number;
  service: number;
  memberOwn: number;
  memberOther: number;
  itAdminOwn: number;
  itAdminOther: number;
  /** A signed-in user who belongs to no tenant and has no role. */
  noTenant: number;
}

const grid = (platformAdmin: number, service: number, memberOwn: number, memberOther: number,
              itAdminOwn: number, itAdminOther: number, noTenant: number): Expected =>
  ({ platformAdmin, service, memberOwn, memberOther, itAdminOwn, itAdminOther, noTenant });

interface BuiltRequest {
  path: string;
  body?: unknown;
  /** Writes only: whether the change was made. It must be made exactly when the call is allowed. */
  happened?: () => Promise<boolean>;
  /** Further checks of an allowed answer (not for HEAD, which has no body). */
  check?: (answer: Answer) => void;
}

interface Row {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';
  /** The route as registered (Fastify's :param syntax). */
  path: string;
  /** Each call gets a new trial tenant as its target, because an allowed call changes it. */
  freshTarget?: boolean;
  /**
   * Sets the target up before the call (e.g. gives it the entitlement a revoke needs); what it
   * returns (ids of what it made) reaches build().
   */
  prepare?: (target: Tenant, admin: Client) => Promise<Record<string, string> | void>;
  /** The concrete request about `target`; `admin` is a platform-admin client for the checks. */
  build: (target: Tenant, admin: Client, prepared: Record<string, string>) => BuiltRequest;
  /** 'public': answers everyone, whatever token they send or do not send. */
  expect: Expected | 'public';
}

const keysOf = async (admin: Client, tenantId: string) =>
  (await admin.get<{ items: Array<{ id: string; name: string }> }>(`/v1/api-keys?tenant_id=${tenantId}`)).body.items;
async function newKey(admin: Client, tenantId: string): Promise<{ id: string }> {
  const created = await admin.post<{ id: string }>('/v1/api-keys', { body: { tenant_id: tenantId, name: 'matrix key' } });
  expect(created.status).toBe(201);
  return { id: created.body.id };
}
const entitlementOf = async (admin: Client, tenantId: string, product: string) =>
  (await admin.get<{ items: Array<{ product: string; status: string }> }>(`/v1/entitlements?tenant_id=${tenantId}`)).body.items.find(
    (item) => item.product === product,
  );
const statusOf = async (admin: Client, id: string) => (await admin.get<Tenant>(`/v1/tenants/${id}`)).body.status;
const eventsIn = (answer: Answer) => (answer.body as unknown as { items: AuditEvent[] }).items;

function expectOnlyEventsOf(events: Array<{ tenant_id: string | null }>, target: Tenant): void {
  // Every tenant here has at least its tenant.created event.
  expect(events.length).toBeGreaterThan(0);
  expect(new Set(events.map((event) => event.tenant_id))).toEqual(new Set([target.id]));
}

const ROUTES: Row[] = [
  //                                                                            platform service  member        it_admin       no
  //                                                                            admin             own    other  own    other  tenant
  { method: 'POST', path: '/v1/tenants',                           expect: grid(201,     403,     403,   403,   403,   403,   403),
    build: (_target, admin) => {
      const slug = randomSlug('matrix');
      return {
        path: '/v1/tenants',
        body: { slug, name: 'Matrix GmbH' },
        happened: async () => (await admin.get(`/v1/tenants/by-slug/${slug}`)).status === 200,
      };
    } },
  { method: 'GET',  path: '/v1/tenants/:id',                       expect: grid(200,     200,     200,   404,   200,   404,   403),
    build: (target) => ({
      path: `/v1/tenants/${target.id}`,
      check: (answer) => expect(answer.body).toMatchObject({ id: target.id, slug: target.slug }),
    }) },
  { method: 'GET',  path: '/v1/tenants/by-slug/:slug',             expect: grid(200,     200,     200,   404,   200,   404,   403),
    build: (target) => ({
      path: `/v1/tenants/by-slug/${target.slug}`,
      check: (answer) => expect(answer.body).toMatchObject({ id: target.id, slug: target.slug }),
    }) },
  { method: 'POST', path: '/v1/tenants/:id/activate',              expect: grid(200,     403,     403,   403,   403,   403,   403), freshTarget: true,
    build: (target, admin) => ({
      path: `/v1/tenants/${target.id}/activate`,
      happened: async () => (await statusOf(admin, target.id)) === 'active',
    }) },
  { method: 'POST', path: '/v1/tenants/:id/cancel',                expect: grid(200,     403,     403,   403,   403,   403,   403), freshTarget: true,
    build: (target, admin) => ({
      path: `/v1/tenants/${target.id}/cancel`,
      happened: async () => (await statusOf(admin, target.id)) === 'frozen',
    }) },
  { method: 'POST', path: '/v1/audit',                             expect: grid(201,     201,     403,   403,   403,   403,   403),
    build: (target, admin) => {
      const action = `matrix.probe_${randomBytes(6).toString('hex')}`;
      return {
        path: '/v1/audit',
        body: { action, crud: 'r', tenant_id: target.id, actor: { id: 'matrix-user' } },
        happened: async () => eventsIn(await admin.get(`/v1/audit?tenant_id=${target.id}&action=${action}`)).length === 1,
      };
    } },
  { method: 'GET',  path: '/v1/audit',                             expect: grid(200,     403,     403,   403,   200,   404,   403),
    build: (target) => ({
      path: `/v1/audit?tenant_id=${target.id}`,
      check: (answer) => expectOnlyEventsOf(eventsIn(answer), target),
    }) },
  { method: 'GET',  path: '/v1/audit/export',                      expect: grid(200,     403,     403,   403,   200,   404,   403),
    build: (target) => ({
      path: `/v1/audit/export?tenant_id=${target.id}&format=ndjson`,
      check: (answer) => {
        expect(answer.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
        const lines = answer.text.split('\n').filter((line) => line !== '');
        expectOnlyEventsOf(lines.map((line) => JSON.parse(line) as AuditEvent), target);
      },
    }) },
  { method: 'GET',  path: '/v1/audit/verify',                      expect: grid(200,     403,     403,   403,   200,   404,   403),
    build: (target) => ({
      path: `/v1/audit/verify?tenant_id=${target.id}`,
      check: (answer) => expect(answer.body).toMatchObject({ ok: true }),
    }) },
  { method: 'GET',  path: '/v1/catalog',                           expect: grid(200,     200,     200,   404,   200,   404,   403),
    build: (target) => ({
      path: `/v1/catalog?tenant_id=${target.id}`,
      check: (answer) => expect((answer.body.items as unknown[]).length).toBeGreaterThan(0),
    }) },
  { method: 'POST', path: '/v1/catalog/request',                   expect: grid(202,     403,     403,   403,   202,   404,   403), freshTarget: true,
    build: (target, admin) => ({
      path: '/v1/catalog/request',
      body: { tenant_id: target.id, product: 'api' },
      happened: async () => (await entitlementOf(admin, target.id, 'api'))?.status === 'requested',
    }) },
  { method: 'GET',  path: '/v1/catalog/requests',                  expect: grid(200,     403,     403,   403,   403,   403,   403),
    build: (target) => ({ path: `/v1/catalog/requests?tenant_id=${target.id}` }) },
  { method: 'POST', path: '/v1/catalog/trial-request',             expect: grid(201,     403,     403,   403,   201,   404,   403), freshTarget: true,
    build: (target, admin) => ({
      path: '/v1/catalog/trial-request',
      body: { tenant_id: target.id, product: 'risk' },
      happened: async () => (await entitlementOf(admin, target.id, 'risk'))?.status === 'trial',
    }) },
  { method: 'GET',  path: '/v1/entitlements',                      expect: grid(200,     200,     200,   404,   200,   404,   403),
    build: (target) => ({ path: `/v1/entitlements?tenant_id=${target.id}` }) },
  { method: 'PUT',  path: '/v1/entitlements/:tenant_id/:product',  expect: grid(200,     403,     403,   403,   403,   403,   403), freshTarget: true,
    build: (target, admin) => ({
      path: `/v1/entitlements/${target.id}/compliance`,
      body: {},
      happened: async () => (await entitlementOf(admin, target.id, 'compliance'))?.status === 'active',
    }) },
  { method: 'DELETE', path: '/v1/entitlements/:tenant_id/:product', expect: grid(204,    403,     403,   403,   403,   403,   403), freshTarget: true,
    prepare: async (target, admin) => {
      expect((await admin.request('PUT', `/v1/entitlements/${target.id}/compliance`, { body: {} })).status).toBe(200);
    },
    build: (target, admin) => ({
      path: `/v1/entitlements/${target.id}/compliance`,
      happened: async () => (await entitlementOf(admin, target.id, 'compliance'))?.status === 'revoked',
    }) },
  { method: 'POST', path: '/v1/api-keys',                          expect: grid(201,     403,     403,   403,   201,   404,   403),
    build: (target, admin) => {
      const name = `matrix key ${randomBytes(4).toString('hex')}`;
      return {
        path: '/v1/api-keys',
        body: { tenant_id: target.id, name },
        happened: async () => (await keysOf(admin, target.id)).some((key) => key.name === name),
      };
    } },
  { method: 'GET',  path: '/v1/api-keys',                          expect: grid(200,     403,     403,   403,   200,   404,   403),
    build: (target) => ({ path: `/v1/api-keys?tenant_id=${target.id}` }) },
  { method: 'GET',  path: '/v1/api-keys/:id',                      expect: grid(200,     403,     403,   403,   200,   404,   403), freshTarget: true,
    prepare: (target, admin) => newKey(admin, target.id),
    build: (_target, _admin, { id }) => ({
      path: `/v1/api-keys/${id}`,
      check: (answer) => expect(answer.body).toMatchObject({ id, name: 'matrix key' }),
    }) },
  { method: 'DELETE', path: '/v1/api-keys/:id',                    expect: grid(204,     403,     403,   403,   204,   404,   403), freshTarget: true,
    prepare: (target, admin) => newKey(admin, target.id),
    build: (target, admin, { id }) => ({
      path: `/v1/api-keys/${id}`,
      happened: async () => !(await keysOf(admin, target.id)).some((key) => key.id === id),
    }) },
  { method: 'POST', path: '/v1/api-keys/:id/rotate',               expect: grid(201,     403,     403,   403,   201,   404,   403), freshTarget: true,
    prepare: (target, admin) => newKey(admin, target.id),
    build: (target, admin, { id }) => ({
      path: `/v1/api-keys/${id}/rotate`,
      body: {},
      happened: async () => (await keysOf(admin, target.id)).length === 2,
    }) },
  { method: 'POST', path: '/v1/internal/api-keys/verify',          expect: grid(403,     200,     403,   403,   403,   403,   403),
    build: () => ({
      path: '/v1/internal/api-keys/verify',
      body: { key: 'bp_not-a-key' },
      check: (answer) => expect(answer.body).toEqual({ valid: false, code: 'MALFORMED' }),
    }) },
  { method: 'POST', path: '/v1/tenants/:id/keycloak/provision',    expect: grid(200,     403,     403,   403,   403,   403,   403), freshTarget: true,
    build: (target, admin) => ({
      path: `/v1/tenants/${target.id}/keycloak/provision`,
      body: { admin_email: 'it@matrix.example.com' },
      happened: async () => (await admin.get<Tenant>(`/v1/tenants/${target.id}`)).body.keycloak_provisioning === 'done',
    }) },
  { method: 'POST', path: '/v1/internal/keycloak/claims',           expect: grid(403,     200,     403,   403,   403,   403,   403),
    build: (target) => ({
      path: '/v1/internal/keycloak/claims',
      body: { tenant_id: target.id },
      check: (answer) => expect(answer.body).toMatchObject({ tenant_id: target.id, slug: target.slug }),
    }) },
  { method: 'GET',  path: '/v1/internal/keycloak/claims',           expect: grid(403,     200,     403,   403,   403,   403,   403),
    build: (target) => ({
      path: `/v1/internal/keycloak/claims?tenant_slug=${target.slug}&username=someone&client_id=portal`,
      check: (answer) => expect(answer.body).toMatchObject({ tenant_id: target.id, slug: target.slug }),
    }) },
  { method: 'GET',  path: '/healthz',                              expect: 'public', build: () => ({ path: '/healthz' }) },
  { method: 'GET',  path: '/readyz',                               expect: 'public', build: () => ({ path: '/readyz' }) },
  { method: 'GET',  path: '/metrics',                              expect: 'public', build: () => ({ path: '/metrics' }) },
  { method: 'GET',  path: '/openapi.yaml',                         expect: 'public', build: () => ({ path: '/openapi.yaml' }) },
];

// Fastify answers HEAD wherever it answers GET, through the same hooks: same rules, no body.
const ROWS: Row[] = ROUTES.flatMap((row) => (row.method === 'GET' ? [row, { ...row, method: 'HEAD' as const }] : [row]));

const PROBLEM_CODES: Record<number, string> = { 401: 'unauthorized', 403: 'forbidden', 404: 'not_found' };

type Column = keyof Expected | 'badToken';

interface Caller {
  name: string;
  column: Column;
  /** own: the caller belongs to the target tenant; other: to tenant A while the target is B. */
  side: 'own' | 'other';
  /** The token to send (none when undefined) for a caller whose tenant is `home`. */
  token: (home: string) => Promise<string | undefined>;
}

/**
 * One request, as http.ts's call() makes it, except that only JSON documents are parsed: the
 * export answers NDJSON, which is read line by line.
 */
async function send(baseUrl: string, method: string, path: string, token: string | undefined, body?: unknown): Promise<Answer> {
  const headers: Record<string, string> = token === undefined ? {} : { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(new URL(path, baseUrl), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  const isJson = /^application\/(problem\+)?json\b/.test(response.headers.get('content-type') ?? '');
  return { status: response.status, headers: response.headers, body: isJson && text !== '' ? (JSON.parse(text) as Record<string, unknown>) : {}, text };
}

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

eachDriver('access matrix', (driver) => {
  let server: TestServer;
  let admin: Client;
  let tenantA: Tenant;
  let tenantB: Tenant;
  let verifier: TokenVerifier | undefined;
  const forged = new Map<string, string | undefined>();

  const mint = (claims: JWTPayload) => server.issuer.mint(claims, { audience: AUDIENCE });
  const forgedToken = (name: string) => async () => forged.get(name);
  const NO_TENANT_USER: JWTPayload = { sub: 'drifter-1', preferred_username: 'dora.drifter', realm_access: { roles: ['offline_access'] } };

  // Every bad token carries a platform admin's claims: the token's defect is the only reason to refuse it.
  const BAD_TOKENS = [
    'no token',
    'an expired token',
    'a token not valid for two more minutes',
    'a token naming another issuer',
    'a token for another audience',
    'a token signed under a kid the issuer never published',
    "a token signed by another key under the issuer's kid",
    'an unsecured token (alg none)',
    "an HS256 token keyed with the issuer's public key",
    'a string that is not a JWT',
  ];
  const CALLERS: Caller[] = [
    ...BAD_TOKENS.map((name): Caller => ({ name, column: 'badToken', side: 'own', token: forgedToken(name) })),
    { name: 'a platform admin', column: 'platformAdmin', side: 'own', token: () => mint(identities.platformAdmin()) },
    { name: 'a service account', column: 'service', side: 'own', token: () => mint(identities.service()) },
    { name: 'a member of A on A', column: 'memberOwn', side: 'own', token: (home) => mint(identities.member(home)) },
    { name: 'a member of A on B', column: 'memberOther', side: 'other', token: (home) => mint(identities.member(home)) },
    { name: 'an IT_ADMIN of A on A', column: 'itAdminOwn', side: 'own', token: (home) => mint(identities.itAdmin(home)) },
    { name: 'an IT_ADMIN of A on B', column: 'itAdminOther', side: 'other', token: (home) => mint(identities.itAdmin(home)) },
    { name: 'a user of no tenant', column: 'noTenant', side: 'own', token: () => mint(NO_TENANT_USER) },
  ];

  async function forgeBadTokens(): Promise<void> {
    const issuer = server.issuer;
    const claims = { ...identities.platformAdmin(), iss: issuer.url, aud: AUDIENCE };
    const now = Math.floor(Date.now() / 1000);
    const { privateKey } = await generateKeyPair('RS256');
    const signForeign = (kid: string) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).setIssuedAt().setExpirationTime('10m').sign(privateKey);
    const publicJwk: JWK = issuer.publicJwk();
    const publicPem = await exportSPKI((await importJWK(publicJwk, 'RS256', { extractable: true })) as CryptoKey);
    const admin = identities.platformAdmin();
    const tokens: Array<string | undefined> = [
      undefined,
      await issuer.mint(admin, { audience: AUDIENCE, expiresIn: -120 }),
      await issuer.mint(admin, { audience: AUDIENCE, notBefore: 120, expiresIn: 600 }),
      await issuer.mint(admin, { audience: AUDIENCE, issuer: 'https://id.example.com/realms/other' }),
      await issuer.mint(admin, { audience: 'account' }),
      await signForeign(randomUUID()),
      await signForeign(publicJwk.kid!),
      `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ ...claims, iat: now, exp: now + 600 })}.`,
      await new SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256', kid: publicJwk.kid!, typ: 'JWT' })
        .setIssuedAt()
        .setExpirationTime('10m')
        .sign(new TextEncoder().encode(publicPem)),
      'not-a-jwt',
    ];
    BAD_TOKENS.forEach((name, i) => forged.set(name, tokens[i]));
  }

  beforeAll(async () => {
    // The issuer is made by startServer, so the verifier that checks the audience is bound to
    // it once the server is up; no request arrives before that.
    server = await startServer(driver, {
      auth: {
        verifier: { verify: (token) => (verifier ? verifier.verify(token) : Promise.reject(new Error('verifier not set'))) },
        devIssuer: null,
      },
    });
    verifier = createTokenVerifier({
      issuer: server.issuer.url,
      audience: AUDIENCE,
      roles: ROLE_NAMES,
      rolesClient: 'tenant-registry',
      keys: discoveredKeys(server.issuer.url, { cooldownMs: 0 }),
    });
    admin = client(server.url, await mint(identities.platformAdmin()));
    [tenantA, tenantB] = await Promise.all([createTenant(admin), createTenant(admin)]);
    await forgeBadTokens();
  });
  afterAll(() => server.close());

  it('has a row for every route the app serves, and none for a route it does not', () => {
    const served = servedRoutes(server.app).map((route) => `${route.method} ${route.url}`);
    const tabled = ROWS.map((row) => `${row.method} ${row.path}`);
    expect(served.filter((route) => !tabled.includes(route)), 'served routes missing from the matrix').toEqual([]);
    expect(tabled.filter((route) => !served.includes(route)), 'matrix rows for routes not served').toEqual([]);
    expect(served.filter((route) => route.includes(' /v1/')).length).toBeGreaterThanOrEqual(24);
  });

  for (const row of ROWS) {
    describe(`${row.method} ${row.path}`, () => {
      for (const caller of CALLERS) {
        const expected = row.expect === 'public' ? 200 : caller.column === 'badToken' ? 401 : row.expect[caller.column];
        it(`${caller.name}: ${expected}`, async () => {
          const target = row.freshTarget ? await createTenant(admin) : caller.side === 'own' ? tenantA : tenantB;
          const home = caller.side === 'own' ? target : tenantA;
          const prepared = (await row.prepare?.(target, admin)) ?? {};
          const request = row.build(target, admin, prepared);
          const token = await caller.token(home.id);
          const answer = await send(server.url, row.method, request.path, token, request.body);

          expect(answer.status, answer.text).toBe(expected);
          if (expected === 401) {
            const challenge = answer.headers.get('www-authenticate') ?? '';
            expect(challenge).toMatch(/^Bearer\b/);
            // RFC 6750 3.1: no error code when the request carried no token at all.
            if (token === undefined) expect(challenge).toBe('Bearer');
            else expect(challenge).toContain('error="invalid_token"');
          } else {
            expect(answer.headers.get('www-authenticate')).toBeNull();
          }
          if (row.method !== 'HEAD') {
            if (expected >= 400) expect(problemOf(answer)).toMatchObject({ status: expected, code: PROBLEM_CODES[expected] });
            else request.check?.(answer);
          }
          if (request.happened) expect(await request.happened(), 'the change was made').toBe(expected < 300);
        });
      }
    });
  }

  describe('around the matrix', () => {
    it("answers another tenant's resource exactly as one that does not exist", async () => {
      const member = client(server.url, await mint(identities.member(tenantA.id)));
      const itAdmin = client(server.url, await mint(identities.itAdmin(tenantA.id)));
      const missing = randomUUID();
      const pairs: Array<[Client, string, string]> = [
        [member, `/v1/tenants/${tenantB.id}`, `/v1/tenants/${missing}`],
        [member, `/v1/tenants/by-slug/${tenantB.slug}`, `/v1/tenants/by-slug/${randomSlug('missing')}`],
        [itAdmin, `/v1/audit?tenant_id=${tenantB.id}`, `/v1/audit?tenant_id=${missing}`],
        [itAdmin, `/v1/audit/verify?tenant_id=${tenantB.id}`, `/v1/audit/verify?tenant_id=${missing}`],
      ];
      for (const [caller, other, absent] of pairs) {
        const [a, b] = await Promise.all([caller.get(other), caller.get(absent)]);
        const { request_id: _a, ...otherProblem } = problemOf(a);
        const { request_id: _b, ...absentProblem } = problemOf(b);
        expect(a.status, other).toBe(404);
        expect(otherProblem, other).toEqual(absentProblem);
      }
    });

    it('makes an IT_ADMIN name the tenant to read the log, which a platform admin need not', async () => {
      const itAdmin = client(server.url, await mint(identities.itAdmin(tenantA.id)));
      for (const path of ['/v1/audit', '/v1/audit/export', '/v1/audit/verify']) {
        const answer = await send(server.url, 'GET', path, itAdmin.token);
        expect(answer.status, path).toBe(403);
        expect(problemOf(answer).code).toBe('forbidden');
        expect((await send(server.url, 'GET', path, admin.token)).status, path).toBe(200);
      }
    });

    it('treats an upper-case tenant id, in the path or in the token, as the same tenant', async () => {
      const upper = tenantA.id.toUpperCase();
      const member = client(server.url, await mint(identities.member(tenantA.id)));
      expect((await member.get<Tenant>(`/v1/tenants/${upper}`)).body.id).toBe(tenantA.id);
      const itAdmin = client(server.url, await mint(identities.itAdmin(upper)));
      const events = await itAdmin.get(`/v1/audit?tenant_id=${tenantA.id}`);
      expect(events.status).toBe(200);
      expectOnlyEventsOf(eventsIn(events), tenantA);
      expect((await itAdmin.get(`/v1/audit?tenant_id=${tenantB.id}`)).status).toBe(404);
    });

    it('grants nothing tenant-scoped for a tenant_id that is not a UUID', async () => {
      const itAdmin = client(server.url, await mint({ ...identities.itAdmin(tenantA.id), tenant_id: tenantA.slug }));
      for (const path of [`/v1/tenants/${tenantA.id}`, `/v1/audit?tenant_id=${tenantA.id}`]) {
        const answer = await itAdmin.get(path);
        expect(answer.status, path).toBe(403);
        expect(problemOf(answer).code).toBe('forbidden');
      }
    });

    it.each<[string, (token: string) => string, number]>([
      ['another scheme', (token: string) => `Basic ${token}`, 401],
      ['the scheme alone', () => 'Bearer', 401],
      ['two tokens', (token: string) => `Bearer ${token} ${token}`, 401],
      ['a lower-case scheme', (token: string) => `bearer ${token}`, 200],
      ['surrounding spaces', (token: string) => `  Bearer ${token}  `, 200],
    ])('reads an Authorization header with %s: %i', async (_case, header, expected) => {
      const token = await mint(identities.platformAdmin());
      const answer = await call(server.url, 'GET', `/v1/tenants/${tenantA.id}`, { headers: { authorization: header(token) } });
      expect(answer.status).toBe(expected);
      if (expected === 401) {
        expect(problemOf(answer).code).toBe('unauthorized');
        expect(answer.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
      }
    });

    it('refuses a missing token before reading the body, whatever the body is', async () => {
      const anonymous = client(server.url);
      for (const options of [
        { raw: '{not json', headers: { 'content-type': 'application/json' } },
        { raw: 'x'.repeat(128 * 1024), headers: { 'content-type': 'application/json' } },
        { raw: 'slug=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      ]) {
        const answer = await anonymous.post('/v1/tenants', options);
        expect(answer.status).toBe(401);
        expect(problemOf(answer).code).toBe('unauthorized');
      }
    });
  });

  describe('the audit actor of a tenant change is the principal', () => {
    async function actorsOf(tenant: Tenant): Promise<Record<string, AuditEvent['actor']>> {
      const events = eventsIn(await admin.get(`/v1/audit?tenant_id=${tenant.id}`));
      return Object.fromEntries(events.map((event) => [event.action, event.actor]));
    }

    it('a platform admin (a user) creates and activates', async () => {
      const tenant = await createTenant(admin);
      expect((await admin.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(200);
      const actor = { id: 'operator-1', name: 'olga.operator', href: null, fields: { kind: 'user' } };
      expect(await actorsOf(tenant)).toEqual({ 'tenant.created': actor, 'tenant.activated': actor });
    });

    it('a service account holding the platform admin role is recorded as a service', async () => {
      const automation = client(
        server.url,
        await mint({
          sub: 'f3c1a2b4-service-ops',
          preferred_username: 'service-account-ops-automation',
          client_id: 'ops-automation',
          realm_access: { roles: [ROLE_NAMES.platformAdmin] },
        }),
      );
      const tenant = await createTenant(automation);
      expect((await automation.post(`/v1/tenants/${tenant.id}/cancel`)).status).toBe(200);
      const actor = { id: 'f3c1a2b4-service-ops', name: 'service-account-ops-automation', href: null, fields: { kind: 'service' } };
      expect(await actorsOf(tenant)).toEqual({ 'tenant.created': actor, 'tenant.cancelled': actor });
    });

    it("a platform admin who belongs to a tenant is recorded with that tenant", async () => {
      const operator = client(server.url, await mint({ ...identities.platformAdmin(), tenant_id: tenantA.id.toUpperCase() }));
      const tenant = await createTenant(operator);
      expect((await actorsOf(tenant))['tenant.created']).toEqual({
        id: 'operator-1',
        name: 'olga.operator',
        href: null,
        fields: { kind: 'user', tenant_id: tenantA.id },
      });
    });

    it('a refused caller leaves no event', async () => {
      const tenant = await createTenant(admin);
      const itAdmin = client(server.url, await mint(identities.itAdmin(tenant.id)));
      expect((await itAdmin.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(403);
      expect(Object.keys(await actorsOf(tenant))).toEqual(['tenant.created']);
    });
  });
});
