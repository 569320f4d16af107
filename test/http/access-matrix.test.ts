// Who may call what: every route the app serves against every kind of caller, over real HTTP.
// The table below is the access policy written out; a route without a row fails the first test,
// so every new endpoint has to join the matrix.
//
// The server checks an audience here (tokens must carry aud=tenant-registry), so that a token
// for another client is one more caller of the matrix.
// (access-principals.test.ts: what lies around the matrix, on the same server.)
import { randomBytes, randomUUID } from 'node:crypto';
import { SignJWT, exportSPKI, generateKeyPair, importJWK, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { servedRoutes } from '../../src/http/not-found.js';
import type { AuditEvent } from '../../src/http/schemas/audit.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant, randomSlug } from '../support/factories.js';
import { problemOf, type Answer, type Client } from '../support/http.js';
import { identities } from '../support/identities.js';
import { audienceCheckedServer, AUDIENCE, eventsIn, expectOnlyEventsOf, send } from './access-harness.js';

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
  headers?: Record<string, string>;
  /** Writes only: whether the change was made. It must be made exactly when the call is allowed. */
  happened?: () => Promise<boolean>;
  /** Further checks of an allowed answer (not for HEAD, which has no body). */
  check?: (answer: Answer) => void;
}

interface Row {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
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
async function openRequest(admin: Client, tenantId: string): Promise<{ id: string }> {
  const asked = await admin.post<{ id: string }>('/v1/catalog/request', { body: { tenant_id: tenantId, product: 'training' } });
  expect(asked.status).toBe(202);
  return { id: asked.body.id };
}
const requestOf = async (admin: Client, tenantId: string, status: 'open' | 'closed', id: string) =>
  (await admin.get<{ items: Array<{ id: string; sales_owner: string | null }> }>(`/v1/catalog/requests?tenant_id=${tenantId}&status=${status}`)).body.items.find(
    (item) => item.id === id,
  );
const entitlementOf = async (admin: Client, tenantId: string, product: string) =>
  (await admin.get<{ items: Array<{ product: string; status: string }> }>(`/v1/entitlements?tenant_id=${tenantId}`)).body.items.find(
    (item) => item.product === product,
  );
const statusOf = async (admin: Client, id: string) => (await admin.get<Tenant>(`/v1/tenants/${id}`)).body.status;

// Webhooks of the matrix point at a closed port on loopback (the harness allows 127.0.0.1): a
// test ping is refused at once. Each row gets a webhook of its own; the ones earlier rows made
// are deleted first, so the registry stays under its cap of 100.
const MATRIX_HOOK_URL = 'http://127.0.0.1:9/matrix';
const webhooksOf = async (admin: Client) =>
  (await admin.get<{ items: Array<{ id: string; description: string | null }> }>('/v1/webhooks')).body.items;
async function matrixWebhook(_target: Tenant, admin: Client): Promise<{ id: string }> {
  for (const hook of await webhooksOf(admin)) {
    if (hook.description === 'matrix fixture') await admin.request('DELETE', `/v1/webhooks/${hook.id}`);
  }
  const created = await admin.post<{ id: string }>('/v1/webhooks', { body: { url: MATRIX_HOOK_URL, description: 'matrix fixture' } });
  expect(created.status).toBe(201);
  return { id: created.body.id };
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
  { method: 'GET',  path: '/v1/tenants',                           expect: grid(200,     200,     403,   403,   403,   403,   403),
    build: (target) => ({
      path: `/v1/tenants?q=${target.slug}`,
      check: (answer) => expect((answer.body as { items: Tenant[] }).items.map((tenant) => tenant.id)).toEqual([target.id]),
    }) },
  { method: 'GET',  path: '/v1/tenants/transitions',               expect: grid(200,     200,     403,   403,   403,   403,   403),
    build: (target) => ({
      path: `/v1/tenants/transitions?before=${encodeURIComponent(target.trial_ends_at!)}`,
      check: (answer) => expect((answer.body as { items: Array<{ tenant_id: string }> }).items.map((move) => move.tenant_id)).toContain(target.id),
    }) },
  { method: 'PATCH', path: '/v1/tenants/:id',                      expect: grid(200,     403,     403,   403,   403,   403,   403), freshTarget: true,
    build: (target, admin) => ({
      path: `/v1/tenants/${target.id}`,
      body: { plan: 'matrix-plan' },
      headers: { 'if-match': '*' },
      happened: async () => (await admin.get<Tenant>(`/v1/tenants/${target.id}`)).body.plan === 'matrix-plan',
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
  { method: 'POST', path: '/v1/tenants/:id/archive',               expect: grid(200,     403,     403,   403,   403,   403,   403), freshTarget: true,
    prepare: async (target, admin) => {
      expect((await admin.post(`/v1/tenants/${target.id}/cancel`)).status).toBe(200);
    },
    build: (target, admin) => ({
      path: `/v1/tenants/${target.id}/archive`,
      body: { reason: 'matrix' },
      happened: async () => (await statusOf(admin, target.id)) === 'archived',
    }) },
  { method: 'GET',  path: '/v1/tenants/:id/export',                expect: grid(200,     403,     403,   403,   200,   404,   403),
    build: (target) => ({
      path: `/v1/tenants/${target.id}/export`,
      check: (answer) => {
        expect(answer.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
        const [first] = answer.text.split('\n');
        expect(JSON.parse(first!)).toMatchObject({ type: 'tenant', data: { id: target.id } });
      },
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
  { method: 'GET',  path: '/v1/events',                            expect: grid(200,     200,     403,   403,   200,   404,   403),
    build: (target) => ({
      path: `/v1/events?tenant_id=${target.id}`,
      check: (answer) => {
        const items = answer.body.items as Array<{ tenant_id: string }>;
        expect(items.length).toBeGreaterThan(0);
        expect(items.every((event) => event.tenant_id === target.id)).toBe(true);
      },
    }) },
  { method: 'GET',  path: '/v1/events/stream',                     expect: grid(200,     200,     403,   403,   200,   404,   403),
    build: (target) => ({
      path: `/v1/events/stream?tenant_id=${target.id}&after=0`,
      check: (answer) => {
        expect(answer.headers.get('content-type')).toMatch(/^text\/event-stream/);
        expect(answer.text).toMatch(/^retry: \d+\n\n/);
      },
    }) },
  { method: 'POST', path: '/v1/webhooks',                          expect: grid(201,     403,     403,   403,   403,   403,   403),
    build: (_target, admin) => {
      const description = `matrix ${randomBytes(6).toString('hex')}`;
      return {
        path: '/v1/webhooks',
        body: { url: MATRIX_HOOK_URL, description },
        happened: async () => (await webhooksOf(admin)).some((hook) => hook.description === description),
        check: (answer) => expect(answer.body.secret).toMatch(/^whsec_/),
      };
    } },
  { method: 'GET',  path: '/v1/webhooks',                          expect: grid(200,     403,     403,   403,   403,   403,   403), prepare: matrixWebhook,
    build: (_target, _admin, { id }) => ({
      path: '/v1/webhooks',
      check: (answer) => expect((answer.body.items as Array<{ id: string }>).map((hook) => hook.id)).toContain(id),
    }) },
  { method: 'GET',  path: '/v1/webhooks/:id',                      expect: grid(200,     403,     403,   403,   403,   403,   403), prepare: matrixWebhook,
    build: (_target, _admin, { id }) => ({ path: `/v1/webhooks/${id}`, check: (answer) => expect(answer.body).toMatchObject({ id }) }) },
  { method: 'PATCH', path: '/v1/webhooks/:id',                     expect: grid(200,     403,     403,   403,   403,   403,   403), prepare: matrixWebhook,
    build: (_target, admin, { id }) => ({
      path: `/v1/webhooks/${id}`,
      body: { enabled: false },
      happened: async () => (await admin.get<{ enabled: boolean }>(`/v1/webhooks/${id}`)).body.enabled === false,
    }) },
  { method: 'DELETE', path: '/v1/webhooks/:id',                    expect: grid(204,     403,     403,   403,   403,   403,   403), prepare: matrixWebhook,
    build: (_target, admin, { id }) => ({
      path: `/v1/webhooks/${id}`,
      happened: async () => (await admin.get(`/v1/webhooks/${id}`)).status === 404,
    }) },
  { method: 'POST', path: '/v1/webhooks/:id/rotate-secret',        expect: grid(200,     403,     403,   403,   403,   403,   403), prepare: matrixWebhook,
    build: (_target, admin, { id }) => ({
      path: `/v1/webhooks/${id}/rotate-secret`,
      happened: async () => (await admin.get<{ previous_secret_valid_until: string | null }>(`/v1/webhooks/${id}`)).body.previous_secret_valid_until !== null,
      check: (answer) => expect(answer.body.secret).toMatch(/^whsec_/),
    }) },
  { method: 'GET',  path: '/v1/webhooks/:id/deliveries',           expect: grid(200,     403,     403,   403,   403,   403,   403), prepare: matrixWebhook,
    build: (_target, _admin, { id }) => ({ path: `/v1/webhooks/${id}/deliveries`, check: (answer) => expect(answer.body).toEqual({ items: [], next_cursor: null }) }) },
  { method: 'POST', path: '/v1/webhooks/:id/replay',               expect: grid(200,     403,     403,   403,   403,   403,   403), prepare: matrixWebhook,
    build: (_target, admin, { id }) => ({
      path: `/v1/webhooks/${id}/replay`,
      body: { from_seq: 1 },
      happened: async () => (await admin.get<{ last_seq: number }>(`/v1/webhooks/${id}`)).body.last_seq === 0,
    }) },
  { method: 'POST', path: '/v1/webhooks/:id/test',                 expect: grid(200,     403,     403,   403,   403,   403,   403), prepare: matrixWebhook,
    build: (_target, admin, { id }) => ({
      path: `/v1/webhooks/${id}/test`,
      happened: async () => (await admin.get<{ items: unknown[] }>(`/v1/webhooks/${id}/deliveries`)).body.items.length === 1,
      check: (answer) => expect(answer.body).toMatchObject({ outcome: 'failed', error: 'connection_refused' }),
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
  { method: 'POST', path: '/v1/catalog/requests/:id/decline',      expect: grid(200,     403,     403,   403,   403,   403,   403), freshTarget: true,
    prepare: (target, admin) => openRequest(admin, target.id),
    build: (target, admin, { id }) => ({
      path: `/v1/catalog/requests/${id}/decline`,
      body: { reason: 'matrix says no' },
      happened: async () => (await requestOf(admin, target.id, 'closed', id!)) !== undefined,
    }) },
  { method: 'POST', path: '/v1/catalog/requests/:id/assign',       expect: grid(200,     403,     403,   403,   403,   403,   403), freshTarget: true,
    prepare: (target, admin) => openRequest(admin, target.id),
    build: (target, admin, { id }) => ({
      path: `/v1/catalog/requests/${id}/assign`,
      body: { sales_owner: 'matrix.sales' },
      happened: async () => (await requestOf(admin, target.id, 'open', id!))?.sales_owner === 'matrix.sales',
    }) },
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
  { method: 'PATCH', path: '/v1/api-keys/:id',                     expect: grid(200,     403,     403,   403,   200,   404,   403), freshTarget: true,
    prepare: (target, admin) => newKey(admin, target.id),
    build: (target, admin, { id }) => ({
      path: `/v1/api-keys/${id}`,
      body: { name: 'matrix key, renamed' },
      happened: async () => (await keysOf(admin, target.id)).some((key) => key.id === id && key.name === 'matrix key, renamed'),
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

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

eachDriver('access matrix', (driver) => {
  const h = audienceCheckedServer(driver);
  const { mint } = h;
  const forged = new Map<string, string | undefined>();

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
    const issuer = h.server.issuer;
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

  beforeAll(forgeBadTokens);

  it('has a row for every route the app serves, and none for a route it does not', () => {
    const served = servedRoutes(h.server.app).map((route) => `${route.method} ${route.url}`);
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
          const target = row.freshTarget ? await createTenant(h.admin) : caller.side === 'own' ? h.tenantA : h.tenantB;
          const home = caller.side === 'own' ? target : h.tenantA;
          const prepared = (await row.prepare?.(target, h.admin)) ?? {};
          const request = row.build(target, h.admin, prepared);
          const token = await caller.token(home.id);
          const answer = await send(h.server.url, row.method, request.path, token, request.body, request.headers);

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
});
