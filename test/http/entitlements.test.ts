import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/http/schemas/audit.js';
import type { Entitlement, ProductRequest } from '../../src/http/schemas/entitlement.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { recordExpiredTrials } from '../../src/jobs/trial-expiry.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { problemOf, type Answer, type Client } from '../support/http.js';
import { identities } from '../support/identities.js';
import { startServer, type TestServer } from '../support/server.js';
import { DAY_MS, iso, MINUTE_MS, START, TestClock } from '../support/time.js';

const NO_SUCH_TENANT = '7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11';
const ENTITLEMENT_KEYS = ['config', 'days_left', 'granted_at', 'product', 'source', 'status', 'tenant_id', 'trial_ends_at'];

eachDriver('entitlements', (driver) => {
  let server: TestServer;
  let api: Client;
  const clock = new TestClock();

  beforeAll(async () => {
    server = await startServer(driver, { clock: clock.now });
    api = server.api;
  });
  afterAll(() => server.close());
  beforeEach(() => clock.reset());

  const list = (tenantId: string, caller = api) => caller.get<{ items: Entitlement[] }>(`/v1/entitlements?tenant_id=${tenantId}`);
  const entitlementOf = async (tenantId: string, product: string) => {
    const answer = await list(tenantId);
    expect(answer.status).toBe(200);
    return answer.body.items.find((item) => item.product === product);
  };
  const put = (tenantId: string, product: string, body: unknown = {}) =>
    api.request<Entitlement>('PUT', `/v1/entitlements/${tenantId}/${product}`, { body });
  const remove = (tenantId: string, product: string) => api.request('DELETE', `/v1/entitlements/${tenantId}/${product}`);
  const askSales = async (tenantId: string, product: string, caller = api) => {
    const answer = await caller.post<ProductRequest>('/v1/catalog/request', { body: { tenant_id: tenantId, product } });
    expect(answer.status).toBe(202);
    return answer.body;
  };
  const startTrial = async (tenantId: string, product: string, caller = api) => {
    const answer = await caller.post<Entitlement>('/v1/catalog/trial-request', { body: { tenant_id: tenantId, product } });
    expect(answer.status).toBe(201);
    return answer.body;
  };
  const requestsOf = async (tenantId: string, status: 'open' | 'closed') => {
    const answer = await api.get<{ items: ProductRequest[] }>(`/v1/catalog/requests?tenant_id=${tenantId}&status=${status}`);
    expect(answer.status).toBe(200);
    return answer.body.items;
  };
  const events = async (tenantId: string, action?: string) => {
    const answer = await api.get<{ items: AuditEvent[] }>(`/v1/audit?tenant_id=${tenantId}&limit=200${action ? `&action=${action}` : ''}`);
    expect(answer.status).toBe(200);
    return answer.body.items;
  };
  const verify = async (tenantId: string) => {
    const answer = await api.get<{ ok: boolean; checked: number }>(`/v1/audit/verify?tenant_id=${tenantId}`);
    expect(answer.status).toBe(200);
    return answer.body;
  };
  // Counted in the database so that an event written to any chain, not just the tenant's, shows.
  const eventCount = async () => (await server.db.query<{ n: number }>('SELECT count(*) AS n FROM audit_log'))[0]!.n;
  const expectProblem = (answer: Answer, status: number, code: string) => {
    expect(answer.status).toBe(status);
    const problem = problemOf(answer);
    expect(problem.code).toBe(code);
    return problem;
  };

  describe('GET /v1/entitlements', () => {
    it("lists the tenant's entitlements with exactly the documented fields", async () => {
      const tenant = await createTenant(api);
      expect((await list(tenant.id)).body).toEqual({ items: [] });
      clock.set(START + 1_000);
      expect((await put(tenant.id, 'compliance', { config: { seats: 25 } })).status).toBe(200);
      const trial = await startTrial(tenant.id, 'risk');

      const answer = await list(tenant.id);
      expect(answer.status).toBe(200);
      expect(answer.body.items).toEqual([
        {
          tenant_id: tenant.id,
          product: 'compliance',
          status: 'active',
          source: 'operator',
          trial_ends_at: null,
          days_left: null,
          granted_at: iso(START + 1_000),
          config: { seats: 25 },
        },
        trial,
      ]);
      for (const item of answer.body.items) expect(Object.keys(item).sort()).toEqual(ENTITLEMENT_KEYS);
      for (const claims of [identities.member(tenant.id), identities.service()]) {
        expect((await list(tenant.id, await server.as(claims))).body).toEqual(answer.body);
      }
    });

    it('lists only the tenant asked about', async () => {
      const [mine, theirs] = [await createTenant(api), await createTenant(api)];
      expect((await put(theirs.id, 'api')).status).toBe(200);
      expect((await list(mine.id)).body.items).toEqual([]);
    });

    it('answers 400 naming /tenant_id without a tenant_id', async () => {
      const answer = await api.get('/v1/entitlements');
      expectProblem(answer, 400, 'validation_failed');
      expect(problemOf(answer).errors).toContainEqual(expect.objectContaining({ path: '/tenant_id', in: 'querystring' }));
    });

    it('answers 404 not_found for a tenant that does not exist', async () => {
      expectProblem(await list(NO_SUCH_TENANT), 404, 'not_found');
    });

    it('reads a trial as expired the instant it ends, with no job run', async () => {
      const tenant = await createTenant(api);
      const trial = await startTrial(tenant.id, 'risk');
      const end = START + 14 * DAY_MS;
      expect(trial.trial_ends_at).toBe(iso(end));

      clock.set(end - 1);
      expect(await entitlementOf(tenant.id, 'risk')).toMatchObject({ status: 'trial', days_left: 1, trial_ends_at: iso(end) });

      clock.set(end);
      expect(await entitlementOf(tenant.id, 'risk')).toMatchObject({ status: 'expired', days_left: null, trial_ends_at: iso(end), source: 'trial' });
      const catalog = await api.get<{ items: Array<{ code: string; state: string | null }> }>(`/v1/catalog?tenant_id=${tenant.id}`);
      expect(catalog.body.items.find((item) => item.code === 'risk')).toMatchObject({ state: 'expired', days_left: null });
      expect(await events(tenant.id, 'entitlement.trial_expired')).toEqual([]);

      // Reads compute from the clock: turned back, the same row reads as a running trial again.
      clock.set(end - DAY_MS);
      expect(await entitlementOf(tenant.id, 'risk')).toMatchObject({ status: 'trial', days_left: 1 });
    });

    it('counts days_left down in whole days, rounded up', async () => {
      const tenant = await createTenant(api);
      await startTrial(tenant.id, 'compliance');
      const cases: Array<[number, number]> = [
        [0, 14],
        [1, 14],
        [DAY_MS - 1, 14],
        [DAY_MS, 13],
        [11 * DAY_MS - 1, 4],
        [11 * DAY_MS, 3],
        [14 * DAY_MS - 1, 1],
      ];
      const seen: Array<[number, number | null | undefined]> = [];
      for (const [offset] of cases) {
        clock.set(START + offset);
        seen.push([offset, (await entitlementOf(tenant.id, 'compliance'))?.days_left]);
      }
      expect(seen).toEqual(cases);
    });
  });

  describe('PUT /v1/entitlements/{tenant_id}/{product}', () => {
    /** Brings the tenant's training entitlement (a 30-day trial) into a state, at START. */
    const setups: Array<[string, (tenantId: string) => Promise<void>]> = [
      ['none', async () => {}],
      ['requested', async (tenantId) => {
        await askSales(tenantId, 'training');
      }],
      ['trial', async (tenantId) => {
        await startTrial(tenantId, 'training');
      }],
      ['expired', async (tenantId) => {
        await startTrial(tenantId, 'training');
      }],
      ['revoked', async (tenantId) => {
        expect((await put(tenantId, 'training', { config: { seats: 1 } })).status).toBe(200);
        expect((await remove(tenantId, 'training')).status).toBe(204);
      }],
    ];

    it.each(setups)('makes the entitlement active from %s, as the operator, at the clock', async (from, setup) => {
      const tenant = await createTenant(api);
      await setup(tenant.id);
      // 20 days in, a training trial still runs; 31 days in, it has ended.
      clock.set(START + (from === 'expired' ? 31 : 20) * DAY_MS);
      expect((await entitlementOf(tenant.id, 'training'))?.status ?? 'none').toBe(from);
      const earlierGrants = (await events(tenant.id, 'entitlement.granted')).length;

      const answer = await put(tenant.id, 'training', { config: { seats: 40, sso: true } });
      expect(answer.status).toBe(200);
      expect(answer.body).toMatchObject({
        tenant_id: tenant.id,
        product: 'training',
        status: 'active',
        source: 'operator',
        days_left: null,
        granted_at: clock.now().toISOString(),
        config: { seats: 40, sso: true },
      });
      expect(Object.keys(answer.body).sort()).toEqual(ENTITLEMENT_KEYS);
      expect(await entitlementOf(tenant.id, 'training')).toEqual(answer.body);

      const [event, ...more] = await events(tenant.id, 'entitlement.granted');
      expect(more).toHaveLength(earlierGrants);
      expect(event).toMatchObject({
        tenant_id: tenant.id,
        crud: from === 'none' ? 'c' : 'u',
        product: 'training',
        actor: { id: 'operator-1', name: 'olga.operator' },
        target: { id: 'training', type: 'product', name: 'training' },
        fields: { from_status: from, requests_closed: from === 'requested' ? '1' : '0' },
        created: clock.now().toISOString(),
      });
    });

    it('stores the config, keeps it on a PUT without one, and replaces it on a PUT with one', async () => {
      const tenant = await createTenant(api);
      const config = { seats: 50, region: 'eu-central', features: { sso: true, exports: ['csv', 'pdf'] }, note: null };
      expect((await put(tenant.id, 'api', { config })).body.config).toEqual(config);
      expect((await entitlementOf(tenant.id, 'api'))?.config).toEqual(config);

      clock.set(START + DAY_MS);
      const kept = await put(tenant.id, 'api', {});
      expect(kept.status).toBe(200);
      expect(kept.body).toMatchObject({ config, granted_at: iso(START + DAY_MS) });
      expect((await entitlementOf(tenant.id, 'api'))?.config).toEqual(config);

      const replaced = await put(tenant.id, 'api', { config: { seats: 10 } });
      expect(replaced.body.config).toEqual({ seats: 10 });
      expect((await put(tenant.id, 'api', { config: {} })).body.config).toEqual({});
      expect((await entitlementOf(tenant.id, 'api'))?.config).toEqual({});
    });

    it('starts a new entitlement without config with an empty one', async () => {
      const tenant = await createTenant(api);
      const answer = await put(tenant.id, 'portal');
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({
        tenant_id: tenant.id,
        product: 'portal',
        status: 'active',
        source: 'operator',
        trial_ends_at: null,
        days_left: null,
        granted_at: iso(START),
        config: {},
      });
    });

    it("closes the product's open sales request, and no other", async () => {
      const tenant = await createTenant(api);
      const compliance = await askSales(tenant.id, 'compliance', await server.as(identities.itAdmin(tenant.id)));
      const risk = await askSales(tenant.id, 'risk');
      clock.set(START + 2 * DAY_MS);
      expect((await put(tenant.id, 'compliance')).status).toBe(200);

      expect(await requestsOf(tenant.id, 'open')).toEqual([risk]);
      expect(await requestsOf(tenant.id, 'closed')).toEqual([
        { ...compliance, status: 'closed', closed_at: iso(START + 2 * DAY_MS), closed_reason: 'granted', closed_by: 'olga.operator' },
      ]);
      const [event] = await events(tenant.id, 'entitlement.granted');
      expect(event?.fields).toEqual({ from_status: 'requested', requests_closed: '1' });

      // Granting again finds nothing left to close.
      clock.set(START + 3 * DAY_MS);
      expect((await put(tenant.id, 'compliance')).status).toBe(200);
      expect((await events(tenant.id, 'entitlement.granted'))[0]?.fields).toEqual({ from_status: 'active', requests_closed: '0' });
    });

    it.each([
      ['an unknown product', () => ({ product: 'quantum' }), 404, 'unknown_product'],
      ['an unknown tenant', () => ({ tenant: NO_SUCH_TENANT }), 404, 'not_found'],
      ['a product code that is not one', () => ({ product: 'Risk_Register' }), 400, 'validation_failed'],
      ['a config that is not an object', () => ({ body: { config: ['seats', 5] } }), 400, 'validation_failed'],
      ['an unknown body field', () => ({ body: { status: 'trial' } }), 400, 'validation_failed'],
    ])('refuses %s, writing nothing', async (_case, override, status, code) => {
      const tenant = await createTenant(api);
      const { tenant: tenantId = tenant.id, product = 'risk', body = {} }: { tenant?: string; product?: string; body?: unknown } = override();
      const before = await eventCount();
      expectProblem(await put(tenantId, product, body), status, code);
      expect(await eventCount()).toBe(before);
      expect((await list(tenant.id)).body.items).toEqual([]);
    });
  });

  describe('DELETE /v1/entitlements/{tenant_id}/{product}', () => {
    it('revokes (204) once: a second revoke answers 204 and writes nothing', async () => {
      const tenant = await createTenant(api);
      expect((await put(tenant.id, 'compliance', { config: { seats: 5 } })).status).toBe(200);
      clock.set(START + DAY_MS);
      const answer = await remove(tenant.id, 'compliance');
      expect(answer.status).toBe(204);
      expect(answer.text).toBe('');
      expect(await entitlementOf(tenant.id, 'compliance')).toMatchObject({ status: 'revoked', days_left: null, config: { seats: 5 } });

      const [event, ...more] = await events(tenant.id, 'entitlement.revoked');
      expect(more).toEqual([]);
      expect(event).toMatchObject({
        crud: 'd',
        product: 'compliance',
        actor: { id: 'operator-1', name: 'olga.operator' },
        target: { id: 'compliance', type: 'product', name: 'compliance' },
        fields: { from_status: 'active' },
        created: iso(START + DAY_MS),
      });

      const before = await eventCount();
      clock.set(START + 2 * DAY_MS);
      expect((await remove(tenant.id, 'compliance')).status).toBe(204);
      expect(await eventCount()).toBe(before);
      expect(await events(tenant.id, 'entitlement.revoked')).toHaveLength(1);
    });

    it('revokes a running trial, naming it in the event', async () => {
      const tenant = await createTenant(api);
      await startTrial(tenant.id, 'risk');
      expect((await remove(tenant.id, 'risk')).status).toBe(204);
      expect(await entitlementOf(tenant.id, 'risk')).toMatchObject({ status: 'revoked', days_left: null });
      expect((await events(tenant.id, 'entitlement.revoked'))[0]?.fields).toEqual({ from_status: 'trial' });
    });

    it.each([
      ['an entitlement the tenant never had', () => ({})],
      ['an unknown tenant', () => ({ tenant: NO_SUCH_TENANT })],
      ['a product not in the catalog', () => ({ product: 'quantum' })],
    ])('answers 404 not_found for %s, writing nothing', async (_case, override) => {
      const tenant = await createTenant(api);
      expect((await put(tenant.id, 'compliance')).status).toBe(200);
      const { tenant: tenantId = tenant.id, product = 'risk' }: { tenant?: string; product?: string } = override();
      const before = await eventCount();
      expectProblem(await remove(tenantId, product), 404, 'not_found');
      expect(await eventCount()).toBe(before);
      expect((await list(tenant.id)).body.items.map((e) => [e.product, e.status])).toEqual([['compliance', 'active']]);
    });
  });

  describe('tenant lifecycle', () => {
    it("keeps a tenant's entitlements through freeze and reactivation", async () => {
      const tenant = await createTenant(api);
      expect((await put(tenant.id, 'compliance', { config: { seats: 3 } })).status).toBe(200);
      await startTrial(tenant.id, 'risk');
      await askSales(tenant.id, 'api');
      const before = (await list(tenant.id)).body.items;
      expect(before.map((e) => [e.product, e.status])).toEqual([
        ['api', 'requested'],
        ['compliance', 'active'],
        ['risk', 'trial'],
      ]);

      expect((await api.post<Tenant>(`/v1/tenants/${tenant.id}/cancel`)).body.status).toBe('frozen');
      expect((await list(tenant.id)).body.items).toEqual(before);
      expect((await api.post<Tenant>(`/v1/tenants/${tenant.id}/activate`)).body.status).toBe('active');
      expect((await list(tenant.id)).body.items).toEqual(before);
    });
  });

  describe('audit trail', () => {
    it("records each change in the tenant's chain with its caller as actor; refusals add nothing", async () => {
      const tenant = await createTenant(api);
      const itAdmin = await server.as(identities.itAdmin(tenant.id));
      const asItAdmin = { id: `it-admin-${tenant.id}`, name: 'ivan.itadmin', href: null, fields: { kind: 'user', tenant_id: tenant.id } };
      const asOperator = { id: 'operator-1', name: 'olga.operator', href: null, fields: { kind: 'user' } };

      const tick = (minutes: number) => clock.set(START + minutes * MINUTE_MS);
      tick(1);
      const request = await askSales(tenant.id, 'compliance', itAdmin);
      tick(2);
      await startTrial(tenant.id, 'risk', itAdmin);
      tick(3);
      expect((await put(tenant.id, 'compliance')).status).toBe(200);
      tick(4);
      expect((await remove(tenant.id, 'risk')).status).toBe(204);

      const before = await eventCount();
      const refusals: Array<Promise<Answer>> = [
        itAdmin.post('/v1/catalog/request', { body: { tenant_id: tenant.id, product: 'compliance' } }),
        itAdmin.post('/v1/catalog/request', { body: { tenant_id: tenant.id, product: 'portal' } }),
        itAdmin.post('/v1/catalog/request', { body: { tenant_id: tenant.id, product: 'quantum' } }),
        itAdmin.post('/v1/catalog/trial-request', { body: { tenant_id: tenant.id, product: 'risk' } }),
        itAdmin.post('/v1/catalog/trial-request', { body: { tenant_id: tenant.id, product: 'compliance' } }),
        itAdmin.post('/v1/catalog/trial-request', { body: { tenant_id: tenant.id, product: 'api' } }),
        put(tenant.id, 'quantum'),
        remove(tenant.id, 'training'),
        remove(tenant.id, 'risk'),
      ];
      expect((await Promise.all(refusals)).map((a) => a.status)).toEqual([409, 409, 404, 409, 409, 409, 404, 404, 204]);
      expect(await eventCount()).toBe(before);

      const trail = (await events(tenant.id)).filter((e) => e.action !== 'tenant.created').reverse();
      expect(trail.map((e) => [e.action, e.actor, e.product, e.fields, e.created])).toEqual([
        ['catalog.product_requested', asItAdmin, 'compliance', null, iso(START + 60_000)],
        ['entitlement.trial_started', asItAdmin, 'risk', { trial_ends_at: iso(START + 120_000 + 14 * DAY_MS), trial_days: '14' }, iso(START + 120_000)],
        ['entitlement.granted', asOperator, 'compliance', { from_status: 'requested', requests_closed: '1' }, iso(START + 180_000)],
        ['entitlement.revoked', asOperator, 'risk', { from_status: 'trial' }, iso(START + 240_000)],
      ]);
      for (const event of trail) expect(event).toMatchObject({ tenant_id: tenant.id, group: { id: tenant.id, name: tenant.name } });
      expect(trail[0]?.target).toMatchObject({ id: request.id, type: 'product_request' });

      expect(await verify(tenant.id)).toEqual({ ok: true, checked: trail.length + 1 });
    });
  });

  describe('trial expiry job', () => {
    it('writes one entitlement.trial_expired event once the trial has ended, and none on later rounds', async () => {
      const tenant = await createTenant(api);
      const trial = await startTrial(tenant.id, 'training');
      const end = START + 30 * DAY_MS;
      const expired = () => events(tenant.id, 'entitlement.trial_expired');

      clock.set(end - 1);
      await recordExpiredTrials(server.db, clock.now());
      expect(await expired()).toEqual([]);

      clock.set(end);
      await recordExpiredTrials(server.db, clock.now());
      const [event, ...more] = await expired();
      expect(more).toEqual([]);
      expect(event).toMatchObject({
        tenant_id: tenant.id,
        crud: 'u',
        product: 'training',
        actor: { id: 'system', name: 'tenant-registry' },
        target: { id: 'training', type: 'product' },
        fields: { trial_ends_at: trial.trial_ends_at },
        created: iso(end),
      });

      clock.set(end + DAY_MS);
      await recordExpiredTrials(server.db, clock.now());
      expect(await recordExpiredTrials(server.db, clock.now())).toBe(0);
      expect(await expired()).toHaveLength(1);
      expect(await entitlementOf(tenant.id, 'training')).toMatchObject({ status: 'expired' });
      expect((await verify(tenant.id)).ok).toBe(true);
    });

    it('writes no expiry event for a trial revoked or granted before its end', async () => {
      const tenant = await createTenant(api);
      await startTrial(tenant.id, 'risk');
      await startTrial(tenant.id, 'compliance');
      clock.set(START + DAY_MS);
      expect((await remove(tenant.id, 'risk')).status).toBe(204);
      expect((await put(tenant.id, 'compliance')).status).toBe(200);
      clock.set(START + 15 * DAY_MS);
      await recordExpiredTrials(server.db, clock.now());
      expect(await events(tenant.id, 'entitlement.trial_expired')).toEqual([]);
    });

    it.each([
      ['the tenant asked sales for the product', async (tenantId: string) => {
        await askSales(tenantId, 'risk');
      }],
      ['an operator granted the product', async (tenantId: string) => {
        expect((await put(tenantId, 'risk')).status).toBe(200);
      }],
      ['an operator revoked the product', async (tenantId: string) => {
        expect((await remove(tenantId, 'risk')).status).toBe(204);
      }],
    ])('writes the expiry event of a trial that had ended before %s', async (_case, change) => {
      const tenant = await createTenant(api);
      await startTrial(tenant.id, 'risk');
      // The trial ends, and the change comes before the job's next round.
      clock.set(START + 14 * DAY_MS + 1_000);
      await change(tenant.id);
      await recordExpiredTrials(server.db, clock.now());
      expect((await events(tenant.id, 'entitlement.trial_expired')).map((e) => e.fields)).toEqual([
        { trial_ends_at: iso(START + 14 * DAY_MS) },
      ]);
    });
  });
});
