import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadCatalog } from '../../src/catalog-file.js';
import type { AuditEvent } from '../../src/http/schemas/audit.js';
import type { Entitlement, ProductRequest } from '../../src/http/schemas/entitlement.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { problemOf, type Answer, type Client } from '../support/http.js';
import { identities } from '../support/identities.js';
import { startServer, type TestServer } from '../support/server.js';
import { DAY_MS, iso, START, TestClock } from '../support/time.js';

interface CatalogItem {
  code: string;
  name: string;
  description: string;
  requestable: boolean;
  trial_days: number | null;
  state?: string | null;
  trial_ends_at?: string | null;
  days_left?: number | null;
}
type RequestPage = {
  items: ProductRequest[];
  next_cursor: string | null;
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const NO_SUCH_TENANT = '7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11';
const PRODUCT_KEYS = ['code', 'description', 'name', 'requestable', 'trial_days'];

/** Oldest first by (created_at, id), the order the sales queue promises. */
const oldestFirst = (a: ProductRequest, b: ProductRequest) =>
  a.created_at === b.created_at ? (a.id < b.id ? -1 : 1) : a.created_at < b.created_at ? -1 : 1;

eachDriver('catalog', (driver) => {
  let server: TestServer;
  let api: Client;
  const clock = new TestClock();

  beforeAll(async () => {
    server = await startServer(driver, { clock: clock.now });
    api = server.api;
  });
  afterAll(() => server.close());
  beforeEach(() => clock.reset());

  const catalogOf = (tenantId: string, caller = api) => caller.get<{ items: CatalogItem[] }>(`/v1/catalog?tenant_id=${tenantId}`);
  const stateOf = async (tenantId: string, code: string) => {
    const answer = await catalogOf(tenantId);
    expect(answer.status).toBe(200);
    return answer.body.items.find((item) => item.code === code);
  };
  const entitlementOf = async (tenantId: string, product: string) => {
    const answer = await api.get<{ items: Entitlement[] }>(`/v1/entitlements?tenant_id=${tenantId}`);
    expect(answer.status).toBe(200);
    return answer.body.items.find((item) => item.product === product);
  };
  const askSales = (tenantId: string, product: string, extra: Record<string, unknown> = {}, caller = api) =>
    caller.post<ProductRequest>('/v1/catalog/request', { body: { tenant_id: tenantId, product, ...extra } });
  const startTrial = (tenantId: string, product: string, caller = api) =>
    caller.post<Entitlement>('/v1/catalog/trial-request', { body: { tenant_id: tenantId, product } });
  const grant = async (tenantId: string, product: string) => {
    const answer = await api.request<Entitlement>('PUT', `/v1/entitlements/${tenantId}/${product}`, { body: {} });
    expect(answer.status).toBe(200);
  };
  const revoke = async (tenantId: string, product: string) => {
    expect((await api.request('DELETE', `/v1/entitlements/${tenantId}/${product}`)).status).toBe(204);
  };
  const requests = (query: Record<string, string | number>) =>
    api.get<RequestPage>(`/v1/catalog/requests?${new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)])).toString()}`);
  const events = async (tenantId: string, action: string) => {
    const answer = await api.get<{ items: AuditEvent[] }>(`/v1/audit?tenant_id=${tenantId}&action=${action}&limit=200`);
    expect(answer.status).toBe(200);
    return answer.body.items;
  };
  // Counted in the database so that an event written to any chain, not just the tenant's, shows.
  const eventCount = async () => (await server.db.query<{ n: number }>('SELECT count(*) AS n FROM audit_log'))[0]!.n;
  const expectProblem = (answer: Answer, status: number, code: string) => {
    expect(answer.status).toBe(status);
    const problem = problemOf(answer);
    expect(problem.code).toBe(code);
    return problem;
  };

  describe('GET /v1/catalog', () => {
    it('lists every product of the catalog file, in its order, with exactly the product fields', async () => {
      const answer = await api.get<{ items: CatalogItem[] }>('/v1/catalog');
      expect(answer.status).toBe(200);
      expect(answer.body.items).toEqual((await loadCatalog()).products);
      expect(answer.body.items.map((item) => [item.code, item.requestable, item.trial_days])).toEqual([
        ['portal', false, null],
        ['compliance', true, 14],
        ['risk', true, 14],
        ['training', true, 30],
        ['api', true, null],
      ]);
      for (const item of answer.body.items) expect(Object.keys(item).sort()).toEqual(PRODUCT_KEYS);
    });

    it('answers the bare catalog to every authenticated caller, and 401 without a token', async () => {
      const tenant = await createTenant(api);
      const expected = (await api.get('/v1/catalog')).body;
      for (const claims of [identities.itAdmin(tenant.id), identities.member(tenant.id), identities.service()]) {
        const answer = await (await server.as(claims)).get('/v1/catalog');
        expect(answer.status).toBe(200);
        expect(answer.body).toEqual(expected);
      }
      const anonymous = await (await server.as(null)).get('/v1/catalog');
      expectProblem(anonymous, 401, 'unauthorized');
      expect(anonymous.headers.get('www-authenticate')).toBe('Bearer');
    });

    it('gives every product a null state for a tenant with no entitlements', async () => {
      const tenant = await createTenant(api);
      const answer = await catalogOf(tenant.id);
      expect(answer.status).toBe(200);
      expect(answer.body.items).toEqual(
        (await loadCatalog()).products.map((product) => ({ ...product, state: null, trial_ends_at: null, days_left: null })),
      );
    });

    it("shows each product's state for the tenant: entitled, trial, expired, requested or none", async () => {
      const tenant = await createTenant(api);
      expect((await startTrial(tenant.id, 'compliance')).status).toBe(201);
      clock.set(START + 20 * DAY_MS);
      expect((await startTrial(tenant.id, 'risk')).status).toBe(201);
      expect((await askSales(tenant.id, 'api')).status).toBe(202);
      await grant(tenant.id, 'portal');
      clock.set(START + 23 * DAY_MS);

      const answer = await catalogOf(tenant.id);
      expect(answer.status).toBe(200);
      const byCode = Object.fromEntries(answer.body.items.map(({ code, state, trial_ends_at, days_left }) => [code, { state, trial_ends_at, days_left }]));
      expect(byCode).toEqual({
        portal: { state: 'entitled', trial_ends_at: null, days_left: null },
        compliance: { state: 'expired', trial_ends_at: iso(START + 14 * DAY_MS), days_left: null },
        risk: { state: 'trial', trial_ends_at: iso(START + 34 * DAY_MS), days_left: 11 },
        training: { state: null, trial_ends_at: null, days_left: null },
        api: { state: 'requested', trial_ends_at: null, days_left: null },
      });
      expect((await catalogOf(tenant.id, await server.as(identities.member(tenant.id)))).body).toEqual(answer.body);

      await revoke(tenant.id, 'portal');
      expect(await stateOf(tenant.id, 'portal')).toMatchObject({ state: null, trial_ends_at: null, days_left: null });
    });

    it('answers 404 not_found for a tenant that does not exist', async () => {
      expectProblem(await catalogOf(NO_SUCH_TENANT), 404, 'not_found');
    });
  });

  describe('POST /v1/catalog/request', () => {
    it('opens a sales request (202) and shows the product as requested', async () => {
      const tenant = await createTenant(api);
      clock.set(START + 5_000);
      const answer = await askSales(tenant.id, 'compliance', { message: 'Please call us about pricing' });
      expect(answer.status).toBe(202);
      expect(answer.body).toEqual({
        id: expect.stringMatching(UUID) as string,
        tenant_id: tenant.id,
        product: 'compliance',
        message: 'Please call us about pricing',
        status: 'open',
        requested_by: 'olga.operator',
        created_at: iso(START + 5_000),
        closed_at: null,
        closed_reason: null,
      });
      expect(await entitlementOf(tenant.id, 'compliance')).toMatchObject({
        status: 'requested',
        source: 'sales_request',
        granted_at: null,
        trial_ends_at: null,
        days_left: null,
      });
      expect(await stateOf(tenant.id, 'compliance')).toMatchObject({ state: 'requested' });
      expect((await requests({ tenant_id: tenant.id })).body.items).toEqual([answer.body]);

      const [event, ...more] = await events(tenant.id, 'catalog.product_requested');
      expect(more).toEqual([]);
      expect(event).toMatchObject({
        tenant_id: tenant.id,
        crud: 'c',
        product: 'compliance',
        group: { id: tenant.id, name: tenant.name },
        actor: { id: 'operator-1', name: 'olga.operator' },
        target: { id: answer.body.id, type: 'product_request', name: 'compliance' },
        created: iso(START + 5_000),
      });
    });

    it('stores no message as null', async () => {
      const tenant = await createTenant(api);
      const answer = await askSales(tenant.id, 'training');
      expect(answer.status).toBe(202);
      expect(answer.body.message).toBeNull();
    });

    it('answers the open request again while it is open, writing nothing new', async () => {
      const tenant = await createTenant(api);
      const first = await askSales(tenant.id, 'risk', { message: 'first' });
      expect(first.status).toBe(202);
      clock.set(START + DAY_MS);
      const again = await askSales(tenant.id, 'risk', { message: 'second' });
      expect(again.status).toBe(202);
      expect(again.body).toEqual(first.body);
      expect((await requests({ tenant_id: tenant.id })).body.items.map((r) => r.id)).toEqual([first.body.id]);
      expect(await events(tenant.id, 'catalog.product_requested')).toHaveLength(1);
    });

    it('lets the IT_ADMIN of the tenant ask, naming them as requester and actor', async () => {
      const tenant = await createTenant(api);
      const itAdmin = await server.as(identities.itAdmin(tenant.id));
      const answer = await askSales(tenant.id, 'api', {}, itAdmin);
      expect(answer.status).toBe(202);
      expect(answer.body.requested_by).toBe('ivan.itadmin');
      const [event] = await events(tenant.id, 'catalog.product_requested');
      expect(event?.actor).toMatchObject({ id: `it-admin-${tenant.id}`, name: 'ivan.itadmin', fields: { kind: 'user', tenant_id: tenant.id } });
    });

    it('keeps a running trial as it is, and turns an expired one into a request', async () => {
      const tenant = await createTenant(api);
      expect((await startTrial(tenant.id, 'risk')).status).toBe(201);
      expect((await askSales(tenant.id, 'risk')).status).toBe(202);
      expect(await entitlementOf(tenant.id, 'risk')).toMatchObject({ status: 'trial', source: 'trial', days_left: 14 });

      const other = await createTenant(api);
      expect((await startTrial(other.id, 'risk')).status).toBe(201);
      clock.set(START + 14 * DAY_MS);
      expect((await askSales(other.id, 'risk')).status).toBe(202);
      expect(await entitlementOf(other.id, 'risk')).toMatchObject({ status: 'requested', source: 'sales_request' });
      expect(await stateOf(other.id, 'risk')).toMatchObject({ state: 'requested' });
    });

    it('opens a new request for a product that was granted and then revoked', async () => {
      const tenant = await createTenant(api);
      await grant(tenant.id, 'compliance');
      await revoke(tenant.id, 'compliance');
      const answer = await askSales(tenant.id, 'compliance');
      expect(answer.status).toBe(202);
      expect(answer.body.status).toBe('open');
      expect(await entitlementOf(tenant.id, 'compliance')).toMatchObject({ status: 'requested' });
    });

    it('shows the product as requested after a 202, also when an operator revoked the earlier request', async () => {
      const tenant = await createTenant(api);
      expect((await askSales(tenant.id, 'training')).status).toBe(202);
      await revoke(tenant.id, 'training');
      const again = await askSales(tenant.id, 'training');
      expect(again.status).toBe(202);
      expect((await requests({ tenant_id: tenant.id })).body.items.map((r) => r.id)).toEqual([again.body.id]);
      expect(await entitlementOf(tenant.id, 'training')).toMatchObject({ status: 'requested' });
    });

    it('refuses with 409 already_entitled for an active product, writing nothing', async () => {
      const tenant = await createTenant(api);
      await grant(tenant.id, 'compliance');
      const before = await eventCount();
      expectProblem(await askSales(tenant.id, 'compliance'), 409, 'already_entitled');
      expect(await eventCount()).toBe(before);
      expect((await requests({ tenant_id: tenant.id })).body.items).toEqual([]);
      expect(await entitlementOf(tenant.id, 'compliance')).toMatchObject({ status: 'active' });
    });

    it.each([
      ['an unknown product', 'quantum', null, 404, 'unknown_product'],
      ['portal, which sales does not sell', 'portal', null, 409, 'not_requestable'],
      ['an unknown tenant', 'risk', NO_SUCH_TENANT, 404, 'not_found'],
    ])('refuses %s, writing nothing', async (_case, product, otherTenant, status, code) => {
      const tenant = await createTenant(api);
      const before = await eventCount();
      expectProblem(await askSales(otherTenant ?? tenant.id, product), status, code);
      expect(await eventCount()).toBe(before);
      expect((await requests({ tenant_id: tenant.id })).body.items).toEqual([]);
      expect((await api.get<{ items: Entitlement[] }>(`/v1/entitlements?tenant_id=${tenant.id}`)).body.items).toEqual([]);
    });

    it('refuses a product code that is not one with 400 naming /product', async () => {
      const tenant = await createTenant(api);
      const answer = await askSales(tenant.id, 'Risk Register');
      expectProblem(answer, 400, 'validation_failed');
      expect(problemOf(answer).errors).toContainEqual(expect.objectContaining({ path: '/product', in: 'body' }));
    });

    it('makes one request of ten concurrent ones for the same tenant and product', async () => {
      const tenant = await createTenant(api);
      // Each product is one more race; a lost one shows as a second request or a 500.
      for (const product of ['compliance', 'risk', 'training', 'api']) {
        const answers = await Promise.all(Array.from({ length: 10 }, () => askSales(tenant.id, product)));
        expect(answers.map((a) => a.status)).toEqual(Array.from({ length: 10 }, () => 202));
        expect(new Set(answers.map((a) => a.body.id)).size).toBe(1);
        const open = (await requests({ status: 'open', limit: 200 })).body.items.filter((r) => r.tenant_id === tenant.id && r.product === product);
        expect(open.map((r) => r.id)).toEqual([answers[0]!.body.id]);
      }
      expect(await events(tenant.id, 'catalog.product_requested')).toHaveLength(4);
    });
  });

  describe('GET /v1/catalog/requests', () => {
    it('lists open requests oldest first, whatever order they were made in', async () => {
      const tenant = await createTenant(api);
      clock.set(START + 3_000);
      const late = await askSales(tenant.id, 'risk');
      clock.set(START + 1_000);
      const early = await askSales(tenant.id, 'training');
      clock.set(START + 2_000);
      const middle = await askSales(tenant.id, 'api');
      const answer = await requests({ tenant_id: tenant.id });
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ items: [early.body, middle.body, late.body], next_cursor: null });
    });

    it('filters by status (open by default) and by tenant', async () => {
      const [first, second] = [await createTenant(api), await createTenant(api)];
      const granted = await askSales(first.id, 'compliance');
      const waiting = await askSales(first.id, 'risk');
      const elsewhere = await askSales(second.id, 'compliance');
      clock.set(START + 60_000);
      await grant(first.id, 'compliance');

      expect((await requests({ tenant_id: first.id })).body.items).toEqual([waiting.body]);
      expect((await requests({ tenant_id: first.id, status: 'open' })).body.items).toEqual([waiting.body]);
      expect((await requests({ tenant_id: first.id, status: 'closed' })).body.items).toEqual([
        { ...granted.body, status: 'closed', closed_at: iso(START + 60_000), closed_reason: 'granted' },
      ]);
      expect((await requests({ tenant_id: second.id })).body.items).toEqual([elsewhere.body]);
      const everyOpen = (await requests({ limit: 200 })).body.items.map((r) => r.id);
      expect(everyOpen).toEqual(expect.arrayContaining([waiting.body.id, elsewhere.body.id]));
      expect(everyOpen).not.toContain(granted.body.id);
    });

    it('pages with limit and cursor through requests of many tenants, losing and repeating none', async () => {
      const tenants = [await createTenant(api), await createTenant(api), await createTenant(api)];
      const made: string[] = [];
      // Several requests share a time, so a page boundary falls between equal created_at values.
      for (const [i, product] of ['compliance', 'risk', 'training', 'api'].entries()) {
        clock.set(START + (i % 2) * 1_000);
        for (const tenant of tenants) made.push((await askSales(tenant.id, product)).body.id);
      }
      const whole = (await requests({ limit: 200 })).body;
      expect(whole.next_cursor).toBeNull();
      expect(whole.items).toEqual([...whole.items].sort(oldestFirst));
      expect(whole.items.map((r) => r.id)).toEqual(expect.arrayContaining(made));

      const paged: ProductRequest[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const answer: Answer<RequestPage> = await requests(cursor === null ? { limit: 5 } : { limit: 5, cursor });
        expect(answer.status).toBe(200);
        expect(answer.body.items.length).toBeLessThanOrEqual(5);
        paged.push(...answer.body.items);
        cursor = answer.body.next_cursor;
        pages += 1;
      } while (cursor !== null && pages < 100);
      expect(pages).toBe(Math.ceil(whole.items.length / 5));
      expect(paged).toEqual(whole.items);
    });

    it('pages within one tenant with the tenant filter kept', async () => {
      const tenant = await createTenant(api);
      const made = [];
      for (const product of ['compliance', 'risk', 'training', 'api']) made.push((await askSales(tenant.id, product)).body);
      const first = await requests({ tenant_id: tenant.id, limit: 3 });
      expect(first.body.items).toEqual([...made].sort(oldestFirst).slice(0, 3));
      expect(first.body.next_cursor).toEqual(expect.any(String));
      const second = await requests({ tenant_id: tenant.id, limit: 3, cursor: first.body.next_cursor! });
      expect(second.body).toEqual({ items: [...made].sort(oldestFirst).slice(3), next_cursor: null });
    });

    it.each([
      ['not base64 JSON', 'not-a-cursor'],
      ['the wrong shape', Buffer.from(JSON.stringify(['yesterday', 'nobody'])).toString('base64url')],
      ['a timestamp this service never writes', Buffer.from(JSON.stringify(['2026-11-27T10:00:00Z', randomUUID()])).toString('base64url')],
    ])('refuses a cursor with %s: 400 invalid_cursor', async (_case, cursor) => {
      const answer = await requests({ cursor });
      expectProblem(answer, 400, 'invalid_cursor');
      expect(problemOf(answer).errors).toContainEqual(expect.objectContaining({ path: '/cursor', in: 'querystring' }));
    });
  });

  describe('POST /v1/catalog/trial-request', () => {
    it.each([
      ['risk', 14],
      ['training', 30],
    ])('starts the %s trial for %i days from the clock (201)', async (product, days) => {
      const tenant = await createTenant(api);
      clock.set(START + 7_000);
      const answer = await startTrial(tenant.id, product);
      expect(answer.status).toBe(201);
      const endsAt = iso(START + 7_000 + days * DAY_MS);
      expect(answer.body).toEqual({
        tenant_id: tenant.id,
        product,
        status: 'trial',
        source: 'trial',
        trial_ends_at: endsAt,
        days_left: days,
        granted_at: null,
        config: {},
      });
      expect(await entitlementOf(tenant.id, product)).toEqual(answer.body);
      expect(await stateOf(tenant.id, product)).toMatchObject({ state: 'trial', trial_ends_at: endsAt, days_left: days });

      const [event, ...more] = await events(tenant.id, 'entitlement.trial_started');
      expect(more).toEqual([]);
      expect(event).toMatchObject({
        tenant_id: tenant.id,
        crud: 'c',
        product,
        actor: { id: 'operator-1', name: 'olga.operator' },
        target: { id: product, type: 'product', name: product },
        fields: { trial_ends_at: endsAt, trial_days: String(days) },
      });
    });

    it('lets the IT_ADMIN of the tenant start a trial, as the actor of its event', async () => {
      const tenant = await createTenant(api);
      const answer = await startTrial(tenant.id, 'compliance', await server.as(identities.itAdmin(tenant.id)));
      expect(answer.status).toBe(201);
      const [event] = await events(tenant.id, 'entitlement.trial_started');
      expect(event?.actor).toMatchObject({ id: `it-admin-${tenant.id}`, name: 'ivan.itadmin' });
    });

    it('starts a trial of a product the tenant has asked sales for', async () => {
      const tenant = await createTenant(api);
      expect((await askSales(tenant.id, 'risk')).status).toBe(202);
      const answer = await startTrial(tenant.id, 'risk');
      expect(answer.status).toBe(201);
      expect(answer.body).toMatchObject({ status: 'trial', source: 'trial' });
      const [event] = await events(tenant.id, 'entitlement.trial_started');
      expect(event?.crud).toBe('u');
    });

    it.each([
      ['while the trial runs', async () => {}],
      ['after the trial expired', async () => clock.set(START + 14 * DAY_MS)],
      ['long after the trial expired', async () => clock.set(START + 400 * DAY_MS)],
      ['after the trial was revoked', async (tenantId: string) => revoke(tenantId, 'risk')],
      ['after the expired trial became a sales request', async (tenantId: string) => {
        clock.set(START + 20 * DAY_MS);
        expect((await askSales(tenantId, 'risk')).status).toBe(202);
      }],
      ['after the product was granted and revoked', async (tenantId: string) => {
        await grant(tenantId, 'risk');
        await revoke(tenantId, 'risk');
      }],
    ])('refuses a second trial %s: 409 trial_used, writing nothing', async (_case, after) => {
      const tenant = await createTenant(api);
      expect((await startTrial(tenant.id, 'risk')).status).toBe(201);
      await after(tenant.id);
      const entitlement = await entitlementOf(tenant.id, 'risk');
      const before = await eventCount();
      expectProblem(await startTrial(tenant.id, 'risk'), 409, 'trial_used');
      expect(await eventCount()).toBe(before);
      expect(await entitlementOf(tenant.id, 'risk')).toEqual(entitlement);
    });

    it('refuses a trial of an active product with 409 already_entitled', async () => {
      const tenant = await createTenant(api);
      await grant(tenant.id, 'training');
      const before = await eventCount();
      expectProblem(await startTrial(tenant.id, 'training'), 409, 'already_entitled');
      expect(await eventCount()).toBe(before);
      expect(await entitlementOf(tenant.id, 'training')).toMatchObject({ status: 'active', trial_ends_at: null });
    });

    // A revocation is an operator's decision: the tenant cannot undo it with a self-serve trial,
    // also not by asking sales first (which turns the revoked row into a request).
    it.each([
      ['an operator revoked a grant the tenant never trialled', async (tenantId: string) => {
        await grant(tenantId, 'training');
        await revoke(tenantId, 'training');
      }],
      ['the tenant asked sales again after the revocation', async (tenantId: string) => {
        await grant(tenantId, 'training');
        await revoke(tenantId, 'training');
        expect((await askSales(tenantId, 'training')).status).toBe(202);
      }],
      ['an operator revoked the sales request', async (tenantId: string) => {
        expect((await askSales(tenantId, 'training')).status).toBe(202);
        await revoke(tenantId, 'training');
      }],
    ])('refuses a trial when %s: 409 product_revoked, writing nothing, the key still NOT_ENTITLED', async (_case, history) => {
      const tenant = await createTenant(api);
      const itAdmin = await server.as(identities.itAdmin(tenant.id));
      const created = await api.post<{ key: string }>('/v1/api-keys', { body: { tenant_id: tenant.id, name: 'headless' } });
      expect(created.status).toBe(201);
      const service = await server.as(identities.service());
      const verdict = async () => {
        const answer = await service.post<{ valid: boolean; code: string }>('/v1/internal/api-keys/verify', {
          body: { key: created.body.key, product: 'training' },
        });
        expect(answer.status).toBe(200);
        return answer.body;
      };
      await history(tenant.id);
      expect(await verdict()).toMatchObject({ valid: false, code: 'NOT_ENTITLED' });
      const row = async () => (await server.db.query('SELECT * FROM tenant_products WHERE tenant_id = $1', [tenant.id]))[0];
      const stored = await row();
      const before = await eventCount();

      for (const caller of [itAdmin, api]) {
        const problem = expectProblem(await startTrial(tenant.id, 'training', caller), 409, 'product_revoked');
        expect(problem.detail).toContain('training');
      }
      expect(await eventCount()).toBe(before);
      expect(await row()).toEqual(stored);
      expect(await verdict()).toMatchObject({ valid: false, code: 'NOT_ENTITLED' });
      expect(await stateOf(tenant.id, 'training')).toMatchObject({ trial_ends_at: null, days_left: null });
    });

    it('answers trial_used, not product_revoked, for a trial an operator revoked', async () => {
      const tenant = await createTenant(api);
      expect((await startTrial(tenant.id, 'training')).status).toBe(201);
      await revoke(tenant.id, 'training');
      expectProblem(await startTrial(tenant.id, 'training'), 409, 'trial_used');
    });

    it('answers already_entitled once an operator granted a revoked product back', async () => {
      const tenant = await createTenant(api);
      await grant(tenant.id, 'training');
      await revoke(tenant.id, 'training');
      await grant(tenant.id, 'training');
      expectProblem(await startTrial(tenant.id, 'training'), 409, 'already_entitled');
      expect(await entitlementOf(tenant.id, 'training')).toMatchObject({ status: 'active' });
    });

    it.each(['api', 'portal'])('refuses a trial of %s, which offers none: 409 trial_not_offered', async (product) => {
      const tenant = await createTenant(api);
      const before = await eventCount();
      expectProblem(await startTrial(tenant.id, product), 409, 'trial_not_offered');
      expect(await eventCount()).toBe(before);
      expect(await entitlementOf(tenant.id, product)).toBeUndefined();
    });

    it('refuses a trial for a frozen tenant with 409 tenant_inactive naming its status', async () => {
      const tenant = await createTenant(api);
      expect((await api.post<Tenant>(`/v1/tenants/${tenant.id}/cancel`)).body.status).toBe('frozen');
      const before = await eventCount();
      const problem = expectProblem(await startTrial(tenant.id, 'risk'), 409, 'tenant_inactive');
      expect(problem.current_status).toBe('frozen');
      expect(await eventCount()).toBe(before);
      expect(await entitlementOf(tenant.id, 'risk')).toBeUndefined();
    });

    it.each([
      ['an unknown product', 'quantum', null, 'unknown_product'],
      ['an unknown tenant', 'risk', NO_SUCH_TENANT, 'not_found'],
    ])('refuses %s with 404, writing nothing', async (_case, product, otherTenant, code) => {
      const tenant = await createTenant(api);
      const before = await eventCount();
      expectProblem(await startTrial(otherTenant ?? tenant.id, product), 404, code);
      expect(await eventCount()).toBe(before);
      expect((await api.get<{ items: Entitlement[] }>(`/v1/entitlements?tenant_id=${tenant.id}`)).body.items).toEqual([]);
    });

    it('starts exactly one trial of ten concurrent requests', async () => {
      const tenant = await createTenant(api);
      const answers = await Promise.all(Array.from({ length: 10 }, () => startTrial(tenant.id, 'compliance')));
      expect(answers.map((a) => a.status).sort()).toEqual([201, ...Array.from({ length: 9 }, () => 409)]);
      for (const answer of answers.filter((a) => a.status === 409)) expect(problemOf(answer).code).toBe('trial_used');
      expect(await events(tenant.id, 'entitlement.trial_started')).toHaveLength(1);
      expect(await entitlementOf(tenant.id, 'compliance')).toMatchObject({ status: 'trial', days_left: 14 });
    });
  });
});
