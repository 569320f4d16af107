// Working the sales queue: an operator declines a request with a reason (the product goes back to
// what it was, the tenant may ask again, a closed request cannot be declined, two declines at
// once close it once) and gives requests to sales owners, whose queues GET /v1/catalog/requests
// lists with sales_owner=. Every change leaves its audit event; operators alone may make them.
import { describe, expect, it } from 'vitest';
import type { ProductRequest } from '../../src/http/schemas/entitlement.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { problemOf, type Answer } from '../support/http.js';
import { identities } from '../support/identities.js';
import { DAY_MS, iso, START } from '../support/time.js';
import { catalogApi, oldestFirst, type RequestPage } from './catalog-harness.js';

const NO_SUCH_REQUEST = '5f0c8a3e-2b7d-4c19-8e6a-9d4b1f2e7a30';

eachDriver('catalog: working the sales queue', (driver) => {
  const h = catalogApi(driver);
  const { clock, stateOf, entitlementOf, askSales, startTrial, grant, revoke, decline, assign, requests, events, eventCount, expectProblem } = h;

  /** A new tenant with an open request for the product. */
  async function openRequest(product = 'compliance'): Promise<ProductRequest> {
    const tenant = await createTenant(h.api);
    const asked = await askSales(tenant.id, product);
    expect(asked.status).toBe(202);
    return asked.body;
  }
  const closedOf = async (tenantId: string) => (await requests({ tenant_id: tenantId, status: 'closed' })).body.items;

  describe('POST /v1/catalog/requests/{id}/decline', () => {
    it('closes the request as declined, saying who, when and why, with its event', async () => {
      const request = await openRequest();
      clock.set(START + DAY_MS);
      const answer = await decline(request.id, { reason: '  No budget before Q3  ' });
      expect(answer.status, answer.text).toBe(200);
      const declined = {
        ...request,
        status: 'closed',
        closed_at: iso(START + DAY_MS),
        closed_reason: 'declined',
        closed_by: 'olga.operator',
        decline_reason: 'No budget before Q3',
      };
      expect(answer.body).toEqual(declined);
      expect(await closedOf(request.tenant_id)).toEqual([declined]);
      expect((await requests({ tenant_id: request.tenant_id })).body.items).toEqual([]);

      const [event, ...more] = await events(request.tenant_id, 'catalog.request_declined');
      expect(more).toEqual([]);
      expect(event).toMatchObject({
        crud: 'u',
        tenant_id: request.tenant_id,
        product: 'compliance',
        actor: { id: 'operator-1', name: 'olga.operator' },
        target: { id: request.id, type: 'product_request', name: 'compliance' },
        fields: { product: 'compliance', reason: 'No budget before Q3' },
        created: iso(START + DAY_MS),
      });
    });

    it('puts the product back to nothing when the tenant had nothing of it', async () => {
      const request = await openRequest('training');
      expect(await stateOf(request.tenant_id, 'training')).toMatchObject({ state: 'requested' });
      expect((await decline(request.id)).status).toBe(200);
      expect(await entitlementOf(request.tenant_id, 'training')).toBeUndefined();
      expect(await stateOf(request.tenant_id, 'training')).toMatchObject({ state: null });
    });

    it('puts a revoked product back to revoked, and an ended trial back to expired', async () => {
      const tenant = await createTenant(h.api);
      // Signed: its own trial would end before the day this test looks at.
      expect((await h.api.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(200);
      await grant(tenant.id, 'compliance');
      await revoke(tenant.id, 'compliance');
      expect((await startTrial(tenant.id, 'risk')).status).toBe(201);
      clock.set(START + 15 * DAY_MS);
      const revoked = await askSales(tenant.id, 'compliance');
      const expired = await askSales(tenant.id, 'risk');
      expect(await entitlementOf(tenant.id, 'risk')).toMatchObject({ status: 'requested' });

      expect((await decline(revoked.body.id)).status).toBe(200);
      expect((await decline(expired.body.id)).status).toBe(200);
      expect(await entitlementOf(tenant.id, 'compliance')).toMatchObject({ status: 'revoked', source: 'operator' });
      expect(await entitlementOf(tenant.id, 'risk')).toMatchObject({
        status: 'expired',
        source: 'trial',
        trial_ends_at: iso(START + 14 * DAY_MS),
      });
      expect(await stateOf(tenant.id, 'risk')).toMatchObject({ state: 'expired' });
      // What stood before still stands: the trial was used, the revocation needs a grant.
      expectProblem(await startTrial(tenant.id, 'risk'), 409, 'trial_used');
      expectProblem(await startTrial(tenant.id, 'compliance'), 409, 'product_revoked');
    });

    it('leaves a running trial as it is', async () => {
      const tenant = await createTenant(h.api);
      expect((await startTrial(tenant.id, 'risk')).status).toBe(201);
      const asked = await askSales(tenant.id, 'risk');
      expect((await decline(asked.body.id)).status).toBe(200);
      expect(await entitlementOf(tenant.id, 'risk')).toMatchObject({ status: 'trial', source: 'trial', days_left: 14 });
    });

    it('lets the tenant ask again later: a new request, the declined one kept', async () => {
      const request = await openRequest();
      expect((await decline(request.id)).status).toBe(200);
      clock.set(START + 30 * DAY_MS);
      const again = await askSales(request.tenant_id, 'compliance', {}, await h.server.as(identities.itAdmin(request.tenant_id)));
      expect(again.status).toBe(202);
      expect(again.body.id).not.toBe(request.id);
      expect(again.body).toMatchObject({ status: 'open', created_at: iso(START + 30 * DAY_MS), decline_reason: null, closed_by: null });
      expect((await requests({ tenant_id: request.tenant_id })).body.items.map((r) => r.id)).toEqual([again.body.id]);
      expect((await closedOf(request.tenant_id)).map((r) => r.id)).toEqual([request.id]);
      expect(await entitlementOf(request.tenant_id, 'compliance')).toMatchObject({ status: 'requested' });
      expect(await events(request.tenant_id, 'catalog.product_requested')).toHaveLength(2);
    });

    it('refuses a closed request with 409 request_closed, writing nothing', async () => {
      const declined = await openRequest();
      expect((await decline(declined.id)).status).toBe(200);
      const granted = await openRequest();
      await grant(granted.tenant_id, 'compliance');
      const revoked = await openRequest();
      await revoke(revoked.tenant_id, 'compliance');

      const before = await eventCount();
      for (const [request, reason] of [[declined, 'declined'], [granted, 'granted'], [revoked, 'revoked']] as const) {
        const problem = expectProblem(await decline(request.id, { reason: 'again' }), 409, 'request_closed');
        expect(problem.closed_reason).toBe(reason);
        expect((await closedOf(request.tenant_id))[0]).toMatchObject({ closed_reason: reason, decline_reason: reason === 'declined' ? 'No budget this year' : null });
      }
      expect(await eventCount()).toBe(before);
      // Granting and revoking say who closed the request too.
      expect((await closedOf(granted.tenant_id))[0]!.closed_by).toBe('olga.operator');
      expect((await closedOf(revoked.tenant_id))[0]!.closed_by).toBe('olga.operator');
    });

    it('answers 404 for an unknown request and 400 for a bad id or reason', async () => {
      expectProblem(await decline(NO_SUCH_REQUEST), 404, 'not_found');
      const badId = await decline('not-a-uuid');
      expectProblem(badId, 400, 'validation_failed');
      expect(problemOf(badId).errors).toContainEqual(expect.objectContaining({ path: '/id', in: 'params' }));

      const request = await openRequest();
      for (const body of [{}, { reason: '' }, { reason: '   ' }, { reason: 'x'.repeat(1001) }, { reason: 'a\u0000b' }, { reason: 'ok', extra: 1 }]) {
        const answer = await decline(request.id, body);
        expectProblem(answer, 400, 'validation_failed');
      }
      expect((await decline(request.id, { reason: 'x'.repeat(1000) })).status).toBe(200);
    });

    it("refuses everyone but operators with 403, the tenant's IT admin included, and changes nothing", async () => {
      const request = await openRequest();
      for (const identity of [identities.itAdmin(request.tenant_id), identities.member(request.tenant_id), identities.service()]) {
        expectProblem(await decline(request.id, { reason: 'no' }, await h.server.as(identity)), 403, 'forbidden');
      }
      expect((await requests({ tenant_id: request.tenant_id })).body.items).toEqual([request]);
    });

    it('closes a request once when two operators decline it at once', async () => {
      for (let round = 0; round < 5; round += 1) {
        const request = await openRequest();
        const answers = await Promise.all([decline(request.id, { reason: 'first' }), decline(request.id, { reason: 'second' })]);
        expect(answers.map((a) => a.status).sort()).toEqual([200, 409]);
        const won = answers.find((a) => a.status === 200)!;
        expect(problemOf(answers.find((a) => a.status === 409)!)).toMatchObject({ code: 'request_closed', closed_reason: 'declined' });
        expect(await closedOf(request.tenant_id)).toEqual([won.body]);
        const declined = await events(request.tenant_id, 'catalog.request_declined');
        expect(declined.map((e) => e.fields)).toEqual([{ product: 'compliance', reason: won.body.decline_reason }]);
      }
    });

    it('settles a decline racing a grant: the product is granted, the request closed once', async () => {
      for (let round = 0; round < 5; round += 1) {
        const request = await openRequest();
        const [declined, granted] = await Promise.all([
          decline(request.id),
          h.api.request('PUT', `/v1/entitlements/${request.tenant_id}/compliance`, { body: {} }),
        ]);
        expect(granted.status).toBe(200);
        expect([200, 409]).toContain(declined.status);
        expect(await entitlementOf(request.tenant_id, 'compliance')).toMatchObject({ status: 'active' });
        const [closed, ...more] = await closedOf(request.tenant_id);
        expect(more).toEqual([]);
        expect(closed!.closed_reason).toBe(declined.status === 200 ? 'declined' : 'granted');
        const [grantEvent] = await events(request.tenant_id, 'entitlement.granted');
        expect(grantEvent!.fields).toEqual(
          declined.status === 200 ? { from_status: 'none', requests_closed: '0' } : { from_status: 'requested', requests_closed: '1' },
        );
      }
    });
  });

  describe('POST /v1/catalog/requests/{id}/assign', () => {
    it('gives the request to a sales owner, then another, then nobody, each with its event', async () => {
      const request = await openRequest();
      clock.set(START + 1_000);
      const first = await assign(request.id, '  anna.sales  ');
      expect(first.status, first.text).toBe(200);
      expect(first.body).toEqual({ ...request, sales_owner: 'anna.sales' });
      clock.set(START + 2_000);
      expect((await assign(request.id, 'bert.sales')).body.sales_owner).toBe('bert.sales');
      clock.set(START + 3_000);
      const none = await assign(request.id, null);
      expect(none.body).toEqual(request);

      const assigned = await events(request.tenant_id, 'catalog.request_assigned');
      // Newest first.
      expect(assigned.map((event) => event.fields)).toEqual([
        { 'sales_owner.old': 'bert.sales' },
        { 'sales_owner.old': 'anna.sales', 'sales_owner.new': 'bert.sales' },
        { 'sales_owner.new': 'anna.sales' },
      ]);
      expect(assigned[0]).toMatchObject({
        crud: 'u',
        product: 'compliance',
        actor: { id: 'operator-1' },
        target: { id: request.id, type: 'product_request', name: 'compliance' },
      });
    });

    it('records nothing when the owner stays the same', async () => {
      const request = await openRequest();
      expect((await assign(request.id, 'anna.sales')).status).toBe(200);
      const before = await eventCount();
      const again = await assign(request.id, 'anna.sales');
      expect(again.status).toBe(200);
      expect(again.body.sales_owner).toBe('anna.sales');
      expect(await eventCount()).toBe(before);
    });

    it('refuses a closed request with 409 request_closed, and keeps the owner a declined one had', async () => {
      const request = await openRequest();
      expect((await assign(request.id, 'anna.sales')).status).toBe(200);
      expect((await decline(request.id)).status).toBe(200);
      const before = await eventCount();
      expectProblem(await assign(request.id, 'bert.sales'), 409, 'request_closed');
      expectProblem(await assign(request.id, null), 409, 'request_closed');
      expect(await eventCount()).toBe(before);
      expect(await closedOf(request.tenant_id)).toEqual([
        expect.objectContaining({ id: request.id, sales_owner: 'anna.sales', closed_reason: 'declined' }),
      ]);
    });

    it('answers 404 for an unknown request, 400 for a bad owner, 403 for all but operators', async () => {
      expectProblem(await assign(NO_SUCH_REQUEST, 'anna.sales'), 404, 'not_found');
      const request = await openRequest();
      for (const body of [{}, { sales_owner: '' }, { sales_owner: ' ' }, { sales_owner: 'x'.repeat(201) }, { sales_owner: 7 }]) {
        expectProblem(await h.api.post(`/v1/catalog/requests/${request.id}/assign`, { body }), 400, 'validation_failed');
      }
      for (const identity of [identities.itAdmin(request.tenant_id), identities.service()]) {
        expectProblem(await assign(request.id, 'anna.sales', await h.server.as(identity)), 403, 'forbidden');
      }
      expect((await requests({ tenant_id: request.tenant_id })).body.items).toEqual([request]);
    });

    it('gives a request one owner when two operators assign it at once', async () => {
      const request = await openRequest();
      const answers = await Promise.all([assign(request.id, 'anna.sales'), assign(request.id, 'bert.sales')]);
      expect(answers.map((a) => a.status)).toEqual([200, 200]);
      const [listed] = (await requests({ tenant_id: request.tenant_id })).body.items;
      const owners = answers.map((a) => a.body.sales_owner);
      // The two ran one after the other: the second answer and event name the first's owner as the old one.
      expect(owners).toContain(listed!.sales_owner);
      const earlier = owners.find((owner) => owner !== listed!.sales_owner)!;
      const fields = (await events(request.tenant_id, 'catalog.request_assigned')).map((event) => event.fields);
      expect(fields).toHaveLength(2);
      expect(fields).toEqual(
        expect.arrayContaining([{ 'sales_owner.new': earlier }, { 'sales_owner.old': earlier, 'sales_owner.new': listed!.sales_owner }]),
      );
    });
  });

  describe('GET /v1/catalog/requests?sales_owner=', () => {
    it("lists one owner's requests, oldest first, by status and tenant, paging with the filter kept", async () => {
      // An owner name of this test alone: other tests' requests share the server.
      const owner = `owner-${driver}-${Date.now()}`;
      const [first, second] = [await createTenant(h.api), await createTenant(h.api)];
      const mine: ProductRequest[] = [];
      for (const [i, [tenant, product]] of ([[first, 'risk'], [second, 'compliance'], [first, 'training'], [second, 'api'], [first, 'api']] as const).entries()) {
        // Made out of order in time, two of them at the same instant.
        clock.set(START + [3, 1, 2, 2, 5][i]! * 1_000);
        const asked = (await askSales(tenant.id, product)).body;
        mine.push((await assign(asked.id, owner)).body);
      }
      const othersRequest = (await askSales(first.id, 'compliance')).body;
      expect((await assign(othersRequest.id, `${owner}-other`)).status).toBe(200);
      const unassigned = (await askSales(second.id, 'risk')).body;

      const answer = await requests({ sales_owner: owner });
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ items: [...mine].sort(oldestFirst), next_cursor: null });
      expect((await requests({ sales_owner: owner, tenant_id: first.id })).body.items).toEqual(
        mine.filter((r) => r.tenant_id === first.id).sort(oldestFirst),
      );
      const all = (await requests({ tenant_id: second.id })).body.items.map((r) => r.id);
      expect(all).toContain(unassigned.id);

      // Pages of two, the owner filter kept across the cursor.
      const paged: ProductRequest[] = [];
      let cursor: string | null = null;
      do {
        const page: Answer<RequestPage> = await requests(cursor === null ? { sales_owner: owner, limit: 2 } : { sales_owner: owner, limit: 2, cursor });
        expect(page.status).toBe(200);
        paged.push(...page.body.items);
        cursor = page.body.next_cursor;
      } while (cursor !== null && paged.length < 20);
      expect(paged).toEqual([...mine].sort(oldestFirst));

      // Closed requests keep their owner: the owner's closed queue shows what they declined.
      const declined = (await decline(mine[0]!.id)).body;
      expect((await requests({ sales_owner: owner, status: 'closed' })).body.items).toEqual([declined]);
      expect((await requests({ sales_owner: owner })).body.items.map((r) => r.id)).not.toContain(declined.id);
    });

    it('refuses an empty or overlong sales_owner with 400 naming it', async () => {
      for (const owner of ['', ' ', 'x'.repeat(201)]) {
        const answer = await requests({ sales_owner: owner });
        expectProblem(answer, 400, 'validation_failed');
        expect(problemOf(answer).errors).toContainEqual(expect.objectContaining({ path: '/sales_owner', in: 'querystring' }));
      }
    });
  });
});
