// What GET /v1/catalog shows (the catalog file's products, and for a tenant each product's state,
// trial end and days left) and the self-service trials of POST /v1/catalog/trial-request: one per
// tenant and product (also under concurrency), refused for what the tenant has, had or may not.
import { describe, expect, it } from 'vitest';
import { loadCatalog } from '../../src/catalog-file.js';
import type { Entitlement } from '../../src/http/schemas/entitlement.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { problemOf } from '../support/http.js';
import { identities } from '../support/identities.js';
import { DAY_MS, iso, START } from '../support/time.js';
import { catalogApi, NO_SUCH_TENANT, PRODUCT_KEYS, type CatalogItem } from './catalog-harness.js';

eachDriver('catalog: products and trials', (driver) => {
  const h = catalogApi(driver);
  const { clock, catalogOf, stateOf, entitlementOf, askSales, startTrial, grant, revoke, events, eventCount, expectProblem } = h;
  // A customer past its own 14-day trial is frozen; the tests that run the clock beyond it are
  // about product trials, so their tenant has signed.
  const signedTenant = async () => {
    const tenant = await createTenant(h.api);
    expect((await h.api.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(200);
    return tenant;
  };

  describe('GET /v1/catalog', () => {
    it('lists every product of the catalog file, in its order, with exactly the product fields', async () => {
      const answer = await h.api.get<{ items: CatalogItem[] }>('/v1/catalog');
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
      const tenant = await createTenant(h.api);
      const expected = (await h.api.get('/v1/catalog')).body;
      for (const claims of [identities.itAdmin(tenant.id), identities.member(tenant.id), identities.service()]) {
        const answer = await (await h.server.as(claims)).get('/v1/catalog');
        expect(answer.status).toBe(200);
        expect(answer.body).toEqual(expected);
      }
      const anonymous = await (await h.server.as(null)).get('/v1/catalog');
      expectProblem(anonymous, 401, 'unauthorized');
      expect(anonymous.headers.get('www-authenticate')).toBe('Bearer');
    });

    it('gives every product a null state for a tenant with no entitlements', async () => {
      const tenant = await createTenant(h.api);
      const answer = await catalogOf(tenant.id);
      expect(answer.status).toBe(200);
      expect(answer.body.items).toEqual(
        (await loadCatalog()).products.map((product) => ({ ...product, state: null, trial_ends_at: null, days_left: null })),
      );
    });

    it("shows each product's state for the tenant: entitled, trial, expired, requested or none", async () => {
      const tenant = await signedTenant();
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
      expect((await catalogOf(tenant.id, await h.server.as(identities.member(tenant.id)))).body).toEqual(answer.body);

      await revoke(tenant.id, 'portal');
      expect(await stateOf(tenant.id, 'portal')).toMatchObject({ state: null, trial_ends_at: null, days_left: null });
    });

    it('answers 404 not_found for a tenant that does not exist', async () => {
      expectProblem(await catalogOf(NO_SUCH_TENANT), 404, 'not_found');
    });
  });

  describe('POST /v1/catalog/trial-request', () => {
    it.each([
      ['risk', 14],
      ['training', 30],
    ])('starts the %s trial for %i days from the clock (201)', async (product, days) => {
      const tenant = await createTenant(h.api);
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
      const tenant = await createTenant(h.api);
      const answer = await startTrial(tenant.id, 'compliance', await h.server.as(identities.itAdmin(tenant.id)));
      expect(answer.status).toBe(201);
      const [event] = await events(tenant.id, 'entitlement.trial_started');
      expect(event?.actor).toMatchObject({ id: `it-admin-${tenant.id}`, name: 'ivan.itadmin' });
    });

    it('starts a trial of a product the tenant has asked sales for', async () => {
      const tenant = await createTenant(h.api);
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
      const tenant = await signedTenant();
      expect((await startTrial(tenant.id, 'risk')).status).toBe(201);
      await after(tenant.id);
      const entitlement = await entitlementOf(tenant.id, 'risk');
      const before = await eventCount();
      expectProblem(await startTrial(tenant.id, 'risk'), 409, 'trial_used');
      expect(await eventCount()).toBe(before);
      expect(await entitlementOf(tenant.id, 'risk')).toEqual(entitlement);
    });

    it('refuses a trial of an active product with 409 already_entitled', async () => {
      const tenant = await createTenant(h.api);
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
      const tenant = await createTenant(h.api);
      const itAdmin = await h.server.as(identities.itAdmin(tenant.id));
      const created = await h.api.post<{ key: string }>('/v1/api-keys', { body: { tenant_id: tenant.id, name: 'headless' } });
      expect(created.status).toBe(201);
      const service = await h.server.as(identities.service());
      const verdict = async () => {
        const answer = await service.post<{ valid: boolean; code: string }>('/v1/internal/api-keys/verify', {
          body: { key: created.body.key, product: 'training' },
        });
        expect(answer.status).toBe(200);
        return answer.body;
      };
      await history(tenant.id);
      expect(await verdict()).toMatchObject({ valid: false, code: 'NOT_ENTITLED' });
      const row = async () => (await h.server.db.query('SELECT * FROM tenant_products WHERE tenant_id = $1', [tenant.id]))[0];
      const stored = await row();
      const before = await eventCount();

      for (const caller of [itAdmin, h.api]) {
        const problem = expectProblem(await startTrial(tenant.id, 'training', caller), 409, 'product_revoked');
        expect(problem.detail).toContain('training');
      }
      expect(await eventCount()).toBe(before);
      expect(await row()).toEqual(stored);
      expect(await verdict()).toMatchObject({ valid: false, code: 'NOT_ENTITLED' });
      expect(await stateOf(tenant.id, 'training')).toMatchObject({ trial_ends_at: null, days_left: null });
    });

    it('answers trial_used, not product_revoked, for a trial an operator revoked', async () => {
      const tenant = await createTenant(h.api);
      expect((await startTrial(tenant.id, 'training')).status).toBe(201);
      await revoke(tenant.id, 'training');
      expectProblem(await startTrial(tenant.id, 'training'), 409, 'trial_used');
    });

    it('answers already_entitled once an operator granted a revoked product back', async () => {
      const tenant = await createTenant(h.api);
      await grant(tenant.id, 'training');
      await revoke(tenant.id, 'training');
      await grant(tenant.id, 'training');
      expectProblem(await startTrial(tenant.id, 'training'), 409, 'already_entitled');
      expect(await entitlementOf(tenant.id, 'training')).toMatchObject({ status: 'active' });
    });

    it.each(['api', 'portal'])('refuses a trial of %s, which offers none: 409 trial_not_offered', async (product) => {
      const tenant = await createTenant(h.api);
      const before = await eventCount();
      expectProblem(await startTrial(tenant.id, product), 409, 'trial_not_offered');
      expect(await eventCount()).toBe(before);
      expect(await entitlementOf(tenant.id, product)).toBeUndefined();
    });

    it('refuses a trial for a frozen tenant with 409 tenant_inactive naming its status', async () => {
      const tenant = await createTenant(h.api);
      expect((await h.api.post<Tenant>(`/v1/tenants/${tenant.id}/cancel`)).body.status).toBe('frozen');
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
      const tenant = await createTenant(h.api);
      const before = await eventCount();
      expectProblem(await startTrial(otherTenant ?? tenant.id, product), 404, code);
      expect(await eventCount()).toBe(before);
      expect((await h.api.get<{ items: Entitlement[] }>(`/v1/entitlements?tenant_id=${tenant.id}`)).body.items).toEqual([]);
    });

    it('starts exactly one trial of ten concurrent requests', async () => {
      const tenant = await createTenant(h.api);
      const answers = await Promise.all(Array.from({ length: 10 }, () => startTrial(tenant.id, 'compliance')));
      expect(answers.map((a) => a.status).sort()).toEqual([201, ...Array.from({ length: 9 }, () => 409)]);
      for (const answer of answers.filter((a) => a.status === 409)) expect(problemOf(answer).code).toBe('trial_used');
      expect(await events(tenant.id, 'entitlement.trial_started')).toHaveLength(1);
      expect(await entitlementOf(tenant.id, 'compliance')).toMatchObject({ status: 'trial', days_left: 14 });
    });
  });
});
