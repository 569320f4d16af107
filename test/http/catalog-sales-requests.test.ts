// The sales queue: POST /v1/catalog/request opens one request per tenant and product while it is
// open (also under concurrency), refuses what the tenant already has, and turns an expired trial
// into a request; GET /v1/catalog/requests lists the queue oldest first, by status and tenant,
// paging with a cursor that loses and repeats nothing.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Entitlement, ProductRequest } from '../../src/http/schemas/entitlement.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { problemOf, type Answer } from '../support/http.js';
import { identities } from '../support/identities.js';
import { DAY_MS, iso, START } from '../support/time.js';
import { catalogApi, NO_SUCH_TENANT, oldestFirst, UUID, type RequestPage } from './catalog-harness.js';

eachDriver('catalog: sales requests', (driver) => {
  const h = catalogApi(driver);
  const { clock, stateOf, entitlementOf, askSales, startTrial, grant, revoke, requests, events, eventCount, expectProblem } = h;

  describe('POST /v1/catalog/request', () => {
    it('opens a sales request (202) and shows the product as requested', async () => {
      const tenant = await createTenant(h.api);
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
        sales_owner: null,
        created_at: iso(START + 5_000),
        closed_at: null,
        closed_reason: null,
        closed_by: null,
        decline_reason: null,
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
      const tenant = await createTenant(h.api);
      const answer = await askSales(tenant.id, 'training');
      expect(answer.status).toBe(202);
      expect(answer.body.message).toBeNull();
    });

    it('answers the open request again while it is open, writing nothing new', async () => {
      const tenant = await createTenant(h.api);
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
      const tenant = await createTenant(h.api);
      const itAdmin = await h.server.as(identities.itAdmin(tenant.id));
      const answer = await askSales(tenant.id, 'api', {}, itAdmin);
      expect(answer.status).toBe(202);
      expect(answer.body.requested_by).toBe('ivan.itadmin');
      const [event] = await events(tenant.id, 'catalog.product_requested');
      expect(event?.actor).toMatchObject({ id: `it-admin-${tenant.id}`, name: 'ivan.itadmin', fields: { kind: 'user', tenant_id: tenant.id } });
    });

    it('keeps a running trial as it is, and turns an expired one into a request', async () => {
      const tenant = await createTenant(h.api);
      expect((await startTrial(tenant.id, 'risk')).status).toBe(201);
      expect((await askSales(tenant.id, 'risk')).status).toBe(202);
      expect(await entitlementOf(tenant.id, 'risk')).toMatchObject({ status: 'trial', source: 'trial', days_left: 14 });

      const other = await createTenant(h.api);
      expect((await startTrial(other.id, 'risk')).status).toBe(201);
      clock.set(START + 14 * DAY_MS);
      expect((await askSales(other.id, 'risk')).status).toBe(202);
      expect(await entitlementOf(other.id, 'risk')).toMatchObject({ status: 'requested', source: 'sales_request' });
      expect(await stateOf(other.id, 'risk')).toMatchObject({ state: 'requested' });
    });

    it('opens a new request for a product that was granted and then revoked', async () => {
      const tenant = await createTenant(h.api);
      await grant(tenant.id, 'compliance');
      await revoke(tenant.id, 'compliance');
      const answer = await askSales(tenant.id, 'compliance');
      expect(answer.status).toBe(202);
      expect(answer.body.status).toBe('open');
      expect(await entitlementOf(tenant.id, 'compliance')).toMatchObject({ status: 'requested' });
    });

    it('shows the product as requested after a 202, also when an operator revoked the earlier request', async () => {
      const tenant = await createTenant(h.api);
      expect((await askSales(tenant.id, 'training')).status).toBe(202);
      await revoke(tenant.id, 'training');
      const again = await askSales(tenant.id, 'training');
      expect(again.status).toBe(202);
      expect((await requests({ tenant_id: tenant.id })).body.items.map((r) => r.id)).toEqual([again.body.id]);
      expect(await entitlementOf(tenant.id, 'training')).toMatchObject({ status: 'requested' });
    });

    it('refuses with 409 already_entitled for an active product, writing nothing', async () => {
      const tenant = await createTenant(h.api);
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
      const tenant = await createTenant(h.api);
      const before = await eventCount();
      expectProblem(await askSales(otherTenant ?? tenant.id, product), status, code);
      expect(await eventCount()).toBe(before);
      expect((await requests({ tenant_id: tenant.id })).body.items).toEqual([]);
      expect((await h.api.get<{ items: Entitlement[] }>(`/v1/entitlements?tenant_id=${tenant.id}`)).body.items).toEqual([]);
    });

    it('refuses a product code that is not one with 400 naming /product', async () => {
      const tenant = await createTenant(h.api);
      const answer = await askSales(tenant.id, 'Risk Register');
      expectProblem(answer, 400, 'validation_failed');
      expect(problemOf(answer).errors).toContainEqual(expect.objectContaining({ path: '/product', in: 'body' }));
    });

    it('makes one request of ten concurrent ones for the same tenant and product', async () => {
      const tenant = await createTenant(h.api);
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
      const tenant = await createTenant(h.api);
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
      const [first, second] = [await createTenant(h.api), await createTenant(h.api)];
      const granted = await askSales(first.id, 'compliance');
      const waiting = await askSales(first.id, 'risk');
      const elsewhere = await askSales(second.id, 'compliance');
      clock.set(START + 60_000);
      await grant(first.id, 'compliance');

      expect((await requests({ tenant_id: first.id })).body.items).toEqual([waiting.body]);
      expect((await requests({ tenant_id: first.id, status: 'open' })).body.items).toEqual([waiting.body]);
      expect((await requests({ tenant_id: first.id, status: 'closed' })).body.items).toEqual([
        { ...granted.body, status: 'closed', closed_at: iso(START + 60_000), closed_reason: 'granted', closed_by: 'olga.operator' },
      ]);
      expect((await requests({ tenant_id: second.id })).body.items).toEqual([elsewhere.body]);
      const everyOpen = (await requests({ limit: 200 })).body.items.map((r) => r.id);
      expect(everyOpen).toEqual(expect.arrayContaining([waiting.body.id, elsewhere.body.id]));
      expect(everyOpen).not.toContain(granted.body.id);
    });

    it('pages with limit and cursor through requests of many tenants, losing and repeating none', async () => {
      const tenants = [await createTenant(h.api), await createTenant(h.api), await createTenant(h.api)];
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
      const tenant = await createTenant(h.api);
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
});
