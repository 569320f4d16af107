// What an operator does with tenants after creating them: find them (GET /v1/tenants), edit them
// (PATCH with If-Match), and see a trial end by itself the instant it is over.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/http/schemas/audit.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { recordExpiredTrials } from '../../src/jobs/trial-expiry.js';
import { MockAdapter } from '../../src/keycloak/mock-adapter.js';
import { syncQueuedOrganizations } from '../../src/services/organization-sync.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant, randomSlug } from '../support/factories.js';
import { problemOf, type Client } from '../support/http.js';
import { identities } from '../support/identities.js';
import { startServer, type TestServer } from '../support/server.js';
import { DAY_MS, MINUTE_MS, TestClock } from '../support/time.js';

interface Page {
  items: Tenant[];
  next_cursor: string | null;
}

const eventsOf = async (api: Client, tenantId: string, action: string) =>
  (await api.get<{ items: AuditEvent[] }>(`/v1/audit?tenant_id=${tenantId}&action=${action}`)).body.items;

eachDriver('operating tenants', (driver) => {
  let server: TestServer;
  let api: Client;
  const clock = new TestClock();
  const keycloak = new MockAdapter('http://keycloak.test/realms/test');
  beforeAll(async () => {
    server = await startServer(driver, { clock: clock.now, keycloak: { adapter: keycloak, budgetMs: 5_000 } });
    api = server.api;
  });
  afterAll(() => server.close());

  describe('GET /v1/tenants', () => {
    // A population of its own, told apart from other tests' tenants by a sales owner and a prefix.
    const owner = `owner-${randomSlug()}@sales.example.com`;
    const prefix = randomSlug('find');
    let made: Tenant[];
    beforeAll(async () => {
      made = [];
      for (let i = 0; i < 7; i += 1) {
        made.push(
          await createTenant(api, {
            slug: `${prefix}-${i}`,
            name: i % 2 === 0 ? `Even Corp ${i}` : `Odd Ltd ${i}`,
            sales_owner: owner,
            plan: i < 3 ? 'business' : 'starter',
            erp_id: `ERP-${prefix}-${i}`,
            ...(i === 6 ? { kind: 'demo' } : {}),
          }),
        );
      }
    });

    const list = async (query: string) => {
      const answer = await api.get<Page>(`/v1/tenants?${query}`);
      expect(answer.status, answer.text).toBe(200);
      return answer.body;
    };
    const slugs = (page: Page) => page.items.map((tenant) => tenant.slug);

    it('lists newest first and walks every page exactly once by cursor', async () => {
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: Page = await list(`sales_owner=${encodeURIComponent(owner)}&limit=3${cursor ? `&cursor=${cursor}` : ''}`);
        expect(page.items.length).toBeLessThanOrEqual(3);
        seen.push(...slugs(page));
        cursor = page.next_cursor;
      } while (cursor);
      expect(seen).toEqual(made.map((tenant) => tenant.slug).reverse());
    });

    it('filters by status, kind, plan, ERP id, creation time and a slug or name prefix in any case', async () => {
      const byOwner = `sales_owner=${encodeURIComponent(owner)}`;
      expect(slugs(await list(`${byOwner}&kind=demo`))).toEqual([`${prefix}-6`]);
      expect(slugs(await list(`${byOwner}&status=demo`))).toEqual([`${prefix}-6`]);
      expect(slugs(await list(`${byOwner}&plan=business`))).toEqual([2, 1, 0].map((i) => `${prefix}-${i}`));
      expect(slugs(await list(`erp_id=ERP-${prefix}-4`))).toEqual([`${prefix}-4`]);
      expect(slugs(await list(`q=${prefix.toUpperCase()}-5`))).toEqual([`${prefix}-5`]);
      expect(slugs(await list(`${byOwner}&q=odd%20ltd`))).toEqual([5, 3, 1].map((i) => `${prefix}-${i}`));
      // Answers are in milliseconds, the database in microseconds: made[3] lies within its millisecond.
      const created = made[3]!.created_at;
      const afterIt = new Date(Date.parse(created) + 1).toISOString();
      expect(slugs(await list(`${byOwner}&created_after=${afterIt}`))).toEqual([6, 5, 4].map((i) => `${prefix}-${i}`));
      expect(slugs(await list(`${byOwner}&created_before=${created}`))).toEqual([2, 1, 0].map((i) => `${prefix}-${i}`));
      expect((await list(`${byOwner}&kind=customer&status=trial`)).items).toHaveLength(6);
    });

    it('takes LIKE wildcards in q literally', async () => {
      expect((await list(`q=${encodeURIComponent('%')}`)).items).toEqual([]);
      expect((await list(`q=${encodeURIComponent(`${prefix.slice(0, 4)}_`)}`)).items).toEqual([]);
    });

    it('answers 400 to a forged cursor and to bad filters, and lists only for operators and services', async () => {
      // 9999-12-31 an hour west of UTC is year 10000 in UTC, which PostgreSQL cannot read.
      const badQueries = ['cursor=bm90IGEgY3Vyc29y', 'status=deleted', 'limit=0', 'limit=201', 'created_after=yesterday', 'q=', 'nope=1'];
      badQueries.push(`created_before=${encodeURIComponent('9999-12-31T23:59:59-01:00')}`, 'trial_ends_before=0000-01-01T00:00:00Z');
      for (const query of badQueries) {
        const answer = await api.get(`/v1/tenants?${query}`);
        expect(answer.status, query).toBe(400);
        expect(problemOf(answer).code, query).toMatch(/^(invalid_cursor|validation_failed)$/);
      }
      const service = await server.as(identities.service());
      expect((await service.get('/v1/tenants?limit=1')).status).toBe(200);
      const itAdmin = await server.as(identities.itAdmin(made[0]!.id));
      const refused = await itAdmin.get('/v1/tenants');
      expect(refused.status).toBe(403);
      expect(problemOf(refused).code).toBe('forbidden');
    });
  });

  describe('PATCH /v1/tenants/{id}', () => {
    const read = async (id: string) => {
      const answer = await api.get<Tenant>(`/v1/tenants/${id}`);
      return { tenant: answer.body, etag: answer.headers.get('etag')! };
    };
    const patch = (id: string, body: unknown, ifMatch?: string) =>
      api.request<Tenant>('PATCH', `/v1/tenants/${id}`, { body, headers: ifMatch === undefined ? {} : { 'if-match': ifMatch } });

    it('edits the fields, answers the new ETag, and records each change with its old and new value', async () => {
      const created = await createTenant(api, { plan: 'starter', erp_id: 'ERP-1' });
      const { etag } = await read(created.id);
      expect(etag).toMatch(/^"[^"]+"$/);
      const answer = await patch(
        created.id,
        { name: ' Renamed GmbH ', plan: 'business', erp_id: null, sales_owner: 'sam@sales.example.com', contract_starts_on: '2027-01-01', contract_ends_on: '2027-12-31' },
        etag,
      );
      expect(answer.status, answer.text).toBe(200);
      expect(answer.body).toMatchObject({
        slug: created.slug,
        name: 'Renamed GmbH',
        plan: 'business',
        erp_id: null,
        sales_owner: 'sam@sales.example.com',
        contract_starts_on: '2027-01-01',
        contract_ends_on: '2027-12-31',
        status: 'trial',
      });
      const newEtag = answer.headers.get('etag');
      expect(newEtag).not.toBe(etag);
      expect((await read(created.id)).etag).toBe(newEtag);
      const [event] = await eventsOf(api, created.id, 'tenant.updated');
      expect(event!.fields).toEqual({
        changed: 'name,plan,erp_id,sales_owner,contract_starts_on,contract_ends_on',
        'name.old': created.name,
        'name.new': 'Renamed GmbH',
        'plan.old': 'starter',
        'plan.new': 'business',
        'erp_id.old': 'ERP-1',
        'sales_owner.new': 'sam@sales.example.com',
        'contract_starts_on.new': '2027-01-01',
        'contract_ends_on.new': '2027-12-31',
      });
      expect(event!.actor?.id).toBe(identities.platformAdmin().sub);
    });

    it('refuses an edit from a stale read with 412 and the current ETag, and changes nothing', async () => {
      const created = await createTenant(api);
      const { etag: first } = await read(created.id);
      expect((await patch(created.id, { plan: 'a' }, first)).status).toBe(200);
      const stale = await patch(created.id, { plan: 'b' }, first);
      expect(stale.status).toBe(412);
      expect(problemOf(stale).code).toBe('precondition_failed');
      const { tenant, etag: current } = await read(created.id);
      expect(stale.headers.get('etag')).toBe(current);
      expect(tenant.plan).toBe('a');
      expect(await eventsOf(api, created.id, 'tenant.updated')).toHaveLength(1);
      // A list of tags matches if one does; a weak tag never does (If-Match compares strongly).
      expect((await patch(created.id, { plan: 'c' }, `"nope", ${current}`)).status).toBe(200);
      const { etag: latest } = await read(created.id);
      expect((await patch(created.id, { plan: 'd' }, `W/${latest}`)).status).toBe(412);
      expect((await patch(created.id, { plan: 'e' }, '*')).status).toBe(200);
    });

    it('lets exactly one of two edits made from the same read through', async () => {
      const created = await createTenant(api);
      const { etag } = await read(created.id);
      const answers = await Promise.all(['x', 'y', 'z'].map((plan) => patch(created.id, { plan }, etag)));
      expect(answers.map((answer) => answer.status).sort()).toEqual([200, 412, 412]);
      expect(await eventsOf(api, created.id, 'tenant.updated')).toHaveLength(1);
    });

    it('needs If-Match (428), refuses the slug with a reason, and checks the contract dates', async () => {
      const created = await createTenant(api, { plan: 'starter' });
      const missing = await patch(created.id, { plan: 'x' });
      expect(missing.status).toBe(428);
      expect(problemOf(missing).code).toBe('precondition_required');
      const slug = await patch(created.id, { slug: randomSlug() }, '*');
      expect(slug.status).toBe(400);
      expect(problemOf(slug)).toMatchObject({ code: 'slug_immutable' });
      expect(String(problemOf(slug).detail)).toContain('Keycloak');
      const backwards = await patch(created.id, { contract_starts_on: '2027-06-01', contract_ends_on: '2027-05-31' }, '*');
      expect(backwards.status).toBe(400);
      expect(problemOf(backwards)).toMatchObject({ code: 'validation_failed', errors: [{ path: '/contract_ends_on', in: 'body' }] });
      for (const body of [{}, { name: '   ' }, { name: null }, { status: 'active' }, { contract_ends_on: '2027-02-30' }, { contract_ends_on: '0000-01-01' }, [], 'x']) {
        const answer = await patch(created.id, body, '*');
        expect(answer.status, JSON.stringify(body)).toBe(400);
        expect(problemOf(answer).code).toBe('validation_failed');
      }
      expect((await read(created.id)).tenant.plan).toBe('starter');
      expect(await eventsOf(api, created.id, 'tenant.updated')).toEqual([]);
    });

    it('writes nothing for an edit that changes nothing', async () => {
      const created = await createTenant(api, { plan: 'starter' });
      const { etag } = await read(created.id);
      const answer = await patch(created.id, { plan: 'starter', name: created.name }, etag);
      expect(answer.status).toBe(200);
      expect(answer.headers.get('etag')).toBe(etag);
      expect(await eventsOf(api, created.id, 'tenant.updated')).toEqual([]);
    });

    it('is for operators only: 404 for a tenant that does not exist, 403 for everyone else', async () => {
      expect((await patch('00000000-0000-4000-8000-000000000000', { plan: 'x' }, '*')).status).toBe(404);
      const created = await createTenant(api);
      for (const claims of [identities.service(), identities.itAdmin(created.id), identities.member(created.id)]) {
        const caller = await server.as(claims);
        const answer = await caller.request('PATCH', `/v1/tenants/${created.id}`, { body: { plan: 'x' }, headers: { 'if-match': '*' } });
        expect(answer.status).toBe(403);
      }
      expect((await read(created.id)).tenant.plan).toBeNull();
    });
  });

  describe('a trial that ends', () => {
    it('reads as frozen the instant it ends, for by-id, by-slug, the list, claims and key verification', async () => {
      clock.reset();
      const created = await createTenant(api, { kind: 'customer' });
      const key = await api.post<{ key: string }>('/v1/api-keys', { body: { tenant_id: created.id, name: 'trial key' } });
      expect(key.status).toBe(201);
      const service = await server.as(identities.service());
      const verify = async () =>
        (await service.post<{ code: string; tenant_status?: string }>('/v1/internal/api-keys/verify', { body: { key: key.body.key } })).body;
      const claims = async () => (await service.post<{ status: string }>('/v1/internal/keycloak/claims', { body: { tenant_id: created.id } })).body;
      const byId = async () => (await api.get<Tenant>(`/v1/tenants/${created.id}`)).body;
      const bySlug = async () => (await api.get<Tenant>(`/v1/tenants/by-slug/${created.slug}`)).body;
      const listed = async (status: string) =>
        (await api.get<Page>(`/v1/tenants?status=${status}&q=${created.slug}`)).body.items.map((tenant) => tenant.id);

      // Warm every cache while the trial runs, so nothing but the clock changes afterwards.
      expect(await verify()).toMatchObject({ code: 'VALID', tenant_status: 'trial' });
      expect((await claims()).status).toBe('trial');
      const running = await api.get<Tenant>(`/v1/tenants/${created.id}`);
      expect(running.body).toMatchObject({ status: 'trial', trial_ends_at: created.trial_ends_at });
      expect(await listed('trial')).toEqual([created.id]);

      clock.set(Date.parse(created.trial_ends_at!) - 1);
      expect((await byId()).status).toBe('trial');

      clock.set(Date.parse(created.trial_ends_at!));
      expect(await byId()).toMatchObject({ status: 'frozen', trial_ends_at: null });
      expect(await bySlug()).toMatchObject({ status: 'frozen', trial_ends_at: null });
      expect(await verify()).toMatchObject({ code: 'TENANT_INACTIVE', tenant_status: 'frozen' });
      expect((await claims()).status).toBe('frozen');
      expect(await listed('trial')).toEqual([]);
      expect(await listed('frozen')).toEqual([created.id]);
      // The answer changed without a write, so its ETag did too.
      expect((await api.get(`/v1/tenants/${created.id}`)).headers.get('etag')).not.toBe(running.headers.get('etag'));
      // Nothing was written: the job writes it down, with its one event.
      expect(await eventsOf(api, created.id, 'tenant.trial_ended')).toEqual([]);
      await recordExpiredTrials(server.db, clock.now());
      const [ended, ...more] = await eventsOf(api, created.id, 'tenant.trial_ended');
      expect(more).toEqual([]);
      expect(ended!.fields).toEqual({ from_status: 'trial', to_status: 'frozen', trial_ends_at: created.trial_ends_at });
      expect(ended!.actor?.id).toBe('system');
      expect(await byId()).toMatchObject({ status: 'frozen', trial_ends_at: null });
      await recordExpiredTrials(server.db, clock.advance(DAY_MS));
      expect(await eventsOf(api, created.id, 'tenant.trial_ended')).toHaveLength(1);
    });

    it('activates before the end as before; after the end, activation writes the trial end down first', async () => {
      clock.reset();
      const early = await createTenant(api);
      const late = await createTenant(api);
      clock.set(Date.parse(early.trial_ends_at!) - MINUTE_MS);
      expect((await api.post<Tenant>(`/v1/tenants/${early.id}/activate`)).body).toMatchObject({ status: 'active', trial_ends_at: null });
      clock.set(Date.parse(late.trial_ends_at!) + MINUTE_MS);
      const cancel = await api.post(`/v1/tenants/${late.id}/cancel`);
      expect(cancel.status).toBe(409);
      expect(problemOf(cancel)).toMatchObject({ code: 'invalid_transition', current_status: 'frozen' });
      const activated = await api.post<Tenant>(`/v1/tenants/${late.id}/activate`);
      expect(activated.body.status).toBe('active');
      const [trialEnded] = await eventsOf(api, late.id, 'tenant.trial_ended');
      expect(trialEnded!.fields).toMatchObject({ from_status: 'trial', to_status: 'frozen' });
      expect((await eventsOf(api, late.id, 'tenant.activated'))[0]!.fields).toMatchObject({ from_status: 'frozen', to_status: 'active' });
      await recordExpiredTrials(server.db, clock.now());
      expect(await eventsOf(api, late.id, 'tenant.trial_ended')).toHaveLength(1);
      expect(await eventsOf(api, early.id, 'tenant.trial_ended')).toEqual([]);
    });
  });

  describe('GET /v1/tenants/transitions', () => {
    interface Move {
      at: string;
      kind: string;
      tenant_id: string;
      slug: string;
      product: string | null;
    }
    const due = async (before: number, limit = 500) => {
      const answer = await api.get<{ items: Move[]; truncated: boolean }>(`/v1/tenants/transitions?before=${new Date(before).toISOString()}&limit=${limit}`);
      expect(answer.status, answer.text).toBe(200);
      return answer.body;
    };

    it('lists the trials that will end and the product trials that will expire by then, soonest first, until they are written down', async () => {
      clock.reset();
      const trialist = await createTenant(api);
      const customer = await createTenant(api);
      expect((await api.post(`/v1/tenants/${customer.id}/activate`)).status).toBe(200);
      clock.advance(DAY_MS);
      expect((await api.post('/v1/catalog/trial-request', { body: { tenant_id: customer.id, product: 'compliance' } })).status).toBe(201);
      const trialEnds = Date.parse(trialist.trial_ends_at!);
      const productEnds = clock.ms + 14 * DAY_MS;

      const ours = (page: { items: Move[] }) => page.items.filter((move) => [trialist.id, customer.id].includes(move.tenant_id));
      expect(ours(await due(trialEnds - 1))).toEqual([]);
      expect(ours(await due(productEnds))).toEqual([
        { at: trialist.trial_ends_at, kind: 'trial_ends', tenant_id: trialist.id, slug: trialist.slug, name: trialist.name, product: null },
        { at: new Date(productEnds).toISOString(), kind: 'product_trial_expires', tenant_id: customer.id, slug: customer.slug, name: customer.name, product: 'compliance' },
      ]);
      const all = await due(productEnds);
      expect(all.items.map((move) => move.at)).toEqual([...all.items.map((move) => move.at)].sort());
      // Bounded: a page is cut at limit and says so.
      const one = await due(productEnds, 1);
      expect(one.items).toHaveLength(1);
      expect(one.truncated).toBe(true);

      // Once the job has written them down they are no longer due.
      clock.set(productEnds);
      await recordExpiredTrials(server.db, clock.now());
      expect(ours(await due(productEnds + DAY_MS))).toEqual([]);
    });

    it('needs before, bounds limit, and is for operators and services', async () => {
      for (const query of ['', 'before=soon', `before=${new Date().toISOString()}&limit=501`]) {
        const answer = await api.get(`/v1/tenants/transitions?${query}`);
        expect(answer.status, query).toBe(400);
        expect(problemOf(answer).code).toBe('validation_failed');
      }
      const service = await server.as(identities.service());
      expect((await service.get(`/v1/tenants/transitions?before=${new Date().toISOString()}`)).status).toBe(200);
      const created = await createTenant(api);
      const itAdmin = await server.as(identities.itAdmin(created.id));
      expect((await itAdmin.get(`/v1/tenants/transitions?before=${new Date().toISOString()}`)).status).toBe(403);
    });
  });

  describe('POST /v1/tenants/{id}/archive', () => {
    it('ends a frozen tenant for good: keys, products and requests closed, each recorded, the organization disabled, the slug kept', async () => {
      clock.reset();
      const slug = randomSlug('archive');
      const created = (await api.post<{ tenant: Tenant }>('/v1/tenants', { body: { slug, name: 'Archive GmbH', admin_email: `it@${slug}.test` } })).body.tenant;
      expect(created.keycloak_org_id).not.toBeNull();
      expect((await api.post(`/v1/tenants/${created.id}/activate`)).status).toBe(200);
      const key = (await api.post<{ id: string; key: string }>('/v1/api-keys', { body: { tenant_id: created.id, name: 'to go' } })).body;
      const rotated = (await api.post<{ id: string; key: string }>('/v1/api-keys', { body: { tenant_id: created.id, name: 'in grace' } })).body;
      expect((await api.post(`/v1/api-keys/${rotated.id}/rotate`, { body: { grace_seconds: 3600 } })).status).toBe(201);
      expect((await api.request('PUT', `/v1/entitlements/${created.id}/compliance`, { body: {} })).status).toBe(200);
      expect((await api.post('/v1/catalog/trial-request', { body: { tenant_id: created.id, product: 'risk' } })).status).toBe(201);
      expect((await api.post('/v1/catalog/request', { body: { tenant_id: created.id, product: 'training' } })).status).toBe(202);

      // Only from frozen.
      const early = await api.post(`/v1/tenants/${created.id}/archive`, { body: { reason: 'contract ended' } });
      expect(early.status).toBe(409);
      expect(problemOf(early)).toMatchObject({ code: 'invalid_transition', current_status: 'active' });
      expect((await api.post(`/v1/tenants/${created.id}/cancel`)).status).toBe(200);

      const archived = await api.post<Tenant>(`/v1/tenants/${created.id}/archive`, { body: { reason: ' contract ended ' } });
      expect(archived.status, archived.text).toBe(200);
      expect(archived.body).toMatchObject({ status: 'archived', slug });

      const service = await server.as(identities.service());
      for (const plaintext of [key.key, rotated.key]) {
        expect((await service.post<{ code: string }>('/v1/internal/api-keys/verify', { body: { key: plaintext } })).body.code).toBe('REVOKED');
      }
      const keys = (await api.get<{ items: Array<{ revoked_at: string | null }> }>(`/v1/api-keys?tenant_id=${created.id}&include_revoked=true`)).body.items;
      expect(keys.length).toBe(3);
      expect(keys.every((k) => k.revoked_at !== null)).toBe(true);
      const entitlements = (await api.get<{ items: Array<{ product: string; status: string }> }>(`/v1/entitlements?tenant_id=${created.id}`)).body.items;
      expect(entitlements.map((e) => [e.product, e.status])).toEqual([['compliance', 'revoked'], ['risk', 'revoked'], ['training', 'revoked']]);
      const open = (await api.get<{ items: Array<{ tenant_id: string }> }>(`/v1/catalog/requests?status=open&tenant_id=${created.id}`)).body.items;
      expect(open).toEqual([]);

      expect(await eventsOf(api, created.id, 'api_key.revoked')).toHaveLength(3);
      expect(await eventsOf(api, created.id, 'entitlement.revoked')).toHaveLength(3);
      const [event, ...more] = await eventsOf(api, created.id, 'tenant.archived');
      expect(more).toEqual([]);
      expect(event!.fields).toEqual({
        from_status: 'frozen',
        to_status: 'archived',
        reason: 'contract ended',
        keys_revoked: '3',
        products_revoked: 'compliance,risk,training',
      });
      expect((await api.get(`/v1/audit/verify?tenant_id=${created.id}`)).body).toMatchObject({ ok: true });

      // Keycloak: the organization is disabled by the synchronisation the archive queued.
      await syncQueuedOrganizations({ db: server.db, keycloak, clock: clock.now, onDrift: () => {} });
      expect(keycloak.states.get(created.keycloak_org_id!)).toMatchObject({ enabled: false, attributes: { status: ['archived'] } });

      // For good: the slug stays taken, nothing moves it, nothing edits it.
      const again = await api.post('/v1/tenants', { body: { slug, name: 'Reuse' } });
      expect(problemOf(again).code).toBe('slug_taken');
      for (const action of ['activate', 'cancel', 'archive']) {
        const answer = await api.post(`/v1/tenants/${created.id}/${action}`, action === 'archive' ? { body: { reason: 'again' } } : {});
        expect(answer.status, action).toBe(409);
        expect(problemOf(answer).code).toBe('invalid_transition');
      }
      const provision = await api.post(`/v1/tenants/${created.id}/keycloak/provision`, { body: {} });
      expect(provision.status).toBe(409);
      expect(problemOf(provision).code).toBe('tenant_inactive');
      const edit = await api.request('PATCH', `/v1/tenants/${created.id}`, { body: { plan: 'x' }, headers: { 'if-match': '*' } });
      expect(edit.status).toBe(409);
      expect(problemOf(edit).code).toBe('tenant_inactive');
      // Nor does it take anything new: no key, no product, no sales request.
      for (const refused of [
        await api.post('/v1/api-keys', { body: { tenant_id: created.id, name: 'late' } }),
        await api.request('PUT', `/v1/entitlements/${created.id}/compliance`, { body: {} }),
        await api.post('/v1/catalog/request', { body: { tenant_id: created.id, product: 'risk' } }),
        await api.post('/v1/catalog/trial-request', { body: { tenant_id: created.id, product: 'training' } }),
      ]) {
        expect(refused.status, refused.text).toBe(409);
        expect(problemOf(refused)).toMatchObject({ code: 'tenant_inactive', current_status: 'archived' });
      }
    });

    it('archives a tenant whose trial has ended, writing the trial end down first', async () => {
      clock.reset();
      const created = await createTenant(api);
      clock.set(Date.parse(created.trial_ends_at!) + 1);
      const archived = await api.post<Tenant>(`/v1/tenants/${created.id}/archive`, { body: { reason: 'trial abandoned' } });
      expect(archived.status, archived.text).toBe(200);
      expect(await eventsOf(api, created.id, 'tenant.trial_ended')).toHaveLength(1);
      expect((await eventsOf(api, created.id, 'tenant.archived'))[0]!.fields).toMatchObject({ from_status: 'frozen', keys_revoked: '0', products_revoked: '' });
    });

    it('needs a reason, and is for operators only', async () => {
      const created = await createTenant(api);
      expect((await api.post(`/v1/tenants/${created.id}/cancel`)).status).toBe(200);
      for (const body of [{}, { reason: '' }, { reason: '  ' }, { reason: 'x'.repeat(501) }, { reason: 'ok', extra: 1 }]) {
        const answer = await api.post(`/v1/tenants/${created.id}/archive`, { body });
        expect(answer.status, JSON.stringify(body)).toBe(400);
        expect(problemOf(answer).code).toBe('validation_failed');
      }
      for (const claims of [identities.service(), identities.itAdmin(created.id)]) {
        const caller = await server.as(claims);
        expect((await caller.post(`/v1/tenants/${created.id}/archive`, { body: { reason: 'mine' } })).status).toBe(403);
      }
      expect((await api.get<Tenant>(`/v1/tenants/${created.id}`)).body.status).toBe('frozen');
      expect((await api.post(`/v1/tenants/00000000-0000-4000-8000-000000000000/archive`, { body: { reason: 'none' } })).status).toBe(404);
    });
  });

  describe('GET /v1/tenants/{id}/export', () => {
    // Read raw: the test client would parse an x-ndjson body as one JSON document.
    const exportOf = async (caller: Client, id: string) => {
      const response = await fetch(new URL(`/v1/tenants/${id}/export`, server.url), { headers: { authorization: `Bearer ${caller.token}` } });
      const answer = { status: response.status, headers: response.headers, text: await response.text() };
      const records = answer.status === 200 ? answer.text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { type: string; data: Record<string, unknown> }) : [];
      return { answer, records };
    };

    it('streams the tenant, its entitlements, requests, key metadata and audit events, page after page, then the counts', async () => {
      clock.reset();
      const created = await createTenant(api);
      const key = (await api.post<{ id: string; key: string }>('/v1/api-keys', { body: { tenant_id: created.id, name: 'exported' } })).body;
      expect((await api.request('PUT', `/v1/entitlements/${created.id}/compliance`, { body: {} })).status).toBe(200);
      expect((await api.post('/v1/catalog/request', { body: { tenant_id: created.id, product: 'training', message: 'please' } })).status).toBe(202);
      // More keys than one page of the walk (500), written straight to the table.
      await server.db.query(
        `INSERT INTO api_keys (tenant_id, name, key_hash, prefix, last4, created_at)
         SELECT $1::uuid, 'bulk ' || g, sha256(convert_to($1::text || g, 'UTF8')), 'bp_bulk', 'abcd', $2::timestamptz - g * interval '1 second'
         FROM generate_series(1, 520) AS g`,
        [created.id, clock.now()],
      );
      const { answer, records } = await exportOf(api, created.id);
      expect(answer.status, answer.text.slice(0, 300)).toBe(200);
      expect(answer.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
      expect(answer.headers.get('content-disposition')).toBe(`attachment; filename="tenant-${created.slug}-${clock.now().toISOString().slice(0, 10)}.ndjson"`);

      const types = records.map((r) => r.type);
      // In order, each part whole.
      expect([...new Set(types)]).toEqual(['tenant', 'entitlement', 'product_request', 'api_key', 'audit_event', 'end']);
      expect(records[0]!.data).toMatchObject({ id: created.id, slug: created.slug });
      expect(records.filter((r) => r.type === 'entitlement').map((r) => r.data.product)).toEqual(['compliance', 'training']);
      expect(records.filter((r) => r.type === 'product_request').map((r) => r.data.message)).toEqual(['please']);
      const keys = records.filter((r) => r.type === 'api_key');
      expect(keys).toHaveLength(521);
      expect(new Set(keys.map((r) => r.data.id)).size).toBe(521);
      expect(keys.map((r) => r.data.id)).toContain(key.id);
      // Metadata only: neither the key nor its hash, anywhere in the document.
      expect(answer.text).not.toContain(key.key);
      for (const record of keys) expect(Object.keys(record.data)).not.toContain('key_hash');
      const audit = (await api.get<{ items: AuditEvent[] }>(`/v1/audit?tenant_id=${created.id}&limit=200`)).body.items;
      expect(records.filter((r) => r.type === 'audit_event').map((r) => r.data.id)).toEqual(audit.map((e) => e.id));
      expect(records.at(-1)).toEqual({
        type: 'end',
        data: { counts: { tenant: 1, entitlement: 2, product_request: 1, api_key: 521, audit_event: audit.length } },
      });
    });

    it("is the tenant's own IT admin's too, and still reads everything once the tenant is archived", async () => {
      const own = await createTenant(api);
      const other = await createTenant(api);
      const itAdmin = await server.as(identities.itAdmin(own.id));
      expect((await exportOf(itAdmin, own.id)).answer.status).toBe(200);
      expect((await exportOf(itAdmin, other.id)).answer.status).toBe(404);
      for (const claims of [identities.member(own.id), identities.service()]) {
        expect((await exportOf(await server.as(claims), own.id)).answer.status).toBe(403);
      }
      expect((await exportOf(api, '00000000-0000-4000-8000-000000000000')).answer.status).toBe(404);

      expect((await api.post(`/v1/tenants/${own.id}/cancel`)).status).toBe(200);
      expect((await api.post(`/v1/tenants/${own.id}/archive`, { body: { reason: 'done' } })).status).toBe(200);
      const { records } = await exportOf(api, own.id);
      expect(records[0]!.data).toMatchObject({ status: 'archived' });
      expect(records.filter((r) => r.type === 'audit_event').map((r) => r.data.action)).toContain('tenant.archived');
      expect(records.at(-1)!.type).toBe('end');
    });
  });
});
