// GET /v1/events (issue 19, point 2): pages in sequence order that follow next_cursor to the head;
// the types and tenant filters; a filter that matches rarely answers a page bounded by the scan
// window with a cursor that moved on; retention (410 cursor_expired before the mark, the oldest
// kept without a cursor); a cursor ahead of the feed; who may read what; and hostile query values,
// which answer 400, never 500.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChangeEvent } from '../../src/domain/change-event.js';
import { houseKeep } from '../../src/jobs/housekeeping.js';
import { FEED_SCAN_WINDOW, pruneFeed } from '../../src/store/events.js';
import { eachDriver, type DriverName } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { expectChained, readWholeFeed, type Page } from '../support/feed.js';
import { problemOf, type Answer, type Client } from '../support/http.js';
import { identities } from '../support/identities.js';
import { startServer, type TestServer } from '../support/server.js';
import { DAY_MS, START, TestClock } from '../support/time.js';

const NO_SUCH_TENANT = '7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11';

/** A server for one describe block, on a clock the block moves. */
function feedServer(driver: DriverName) {
  const clock = new TestClock();
  let started: TestServer | undefined;
  beforeAll(async () => {
    started = await startServer(driver, { clock: clock.now });
  });
  afterAll(() => started?.close());
  return {
    clock,
    get server(): TestServer {
      if (!started) throw new Error('the server starts in beforeAll');
      return started;
    },
    get api(): Client {
      return this.server.api;
    },
  };
}

function expectProblem(answer: Answer, status: number, code: string): Record<string, unknown> {
  expect({ status: answer.status, text: answer.text }).toMatchObject({ status });
  const problem = problemOf(answer);
  expect(problem).toMatchObject({ status, code });
  return problem;
}

const page = (api: Client, query: string) => api.get<Page>(`/v1/events?${query}`);

/** Makes a few changes of a tenant: created, two updates, activated. */
async function busyTenant(api: Client) {
  const tenant = await createTenant(api);
  for (const plan of ['silver', 'gold']) {
    const answer = await api.request('PATCH', `/v1/tenants/${tenant.id}`, { body: { plan }, headers: { 'if-match': '*' } });
    expect(answer.status).toBe(200);
  }
  expect((await api.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(200);
  return tenant;
}

eachDriver('GET /v1/events', (driver) => {
  describe('reading', () => {
    const h = feedServer(driver);
    let tenants: Array<{ id: string }> = [];
    let all: ChangeEvent[] = [];
    beforeAll(async () => {
      tenants = [await busyTenant(h.api), await busyTenant(h.api), await busyTenant(h.api)];
      all = await readWholeFeed(h.api);
    });

    it('pages in seq order with limit and next_cursor until has_more is false, missing and repeating nothing', async () => {
      expect(all.map((event) => event.seq)).toEqual(all.map((_, index) => index + 1));
      const seen: ChangeEvent[] = [];
      let cursor: string | null = null;
      let pages = 0;
      for (;;) {
        const answer: Answer<Page> = await page(h.api, `limit=5${cursor === null ? '' : `&after=${cursor}`}`);
        expect(answer.status).toBe(200);
        pages += 1;
        expect(answer.body.items.length).toBeLessThanOrEqual(5);
        seen.push(...answer.body.items);
        cursor = answer.body.next_cursor;
        if (!answer.body.has_more) break;
        expect(answer.body.items).toHaveLength(5);
      }
      expect(pages).toBe(Math.ceil(all.length / 5) + (all.length % 5 === 0 ? 1 : 0));
      expect(seen).toEqual(all);
      // The last cursor is the head: reading on from it answers nothing yet.
      expect(cursor).toBe(String(all.length));
      expect((await page(h.api, `after=${cursor}`)).body).toEqual({ items: [], next_cursor: cursor, has_more: false });
    });

    it('filters by exact types and namespace.* entries', async () => {
      const updated = await readWholeFeed(h.api, '&types=tenant.updated');
      expect(updated.map((event) => event.seq)).toEqual(all.filter((event) => event.type === 'tenant.updated').map((event) => event.seq));
      expect(updated).toHaveLength(6);
      const tenantNs = await readWholeFeed(h.api, '&types=tenant.*');
      expect(tenantNs).toEqual(all.filter((event) => event.type.startsWith('tenant.')));
      const mixed = await readWholeFeed(h.api, `&types=${encodeURIComponent('tenant.created,tenant.activated,api_key.*')}`);
      expect(mixed).toEqual(all.filter((event) => ['tenant.created', 'tenant.activated'].includes(event.type)));
      // A namespace is a whole word: `tenant.*` is not `tenant_x.*`, and `ten.*` matches nothing.
      expect((await page(h.api, 'types=ten.*')).body.items).toEqual([]);
      expect((await page(h.api, 'types=tenant')).body.items).toEqual([]);
    });

    it('refuses types that are not event types or namespaces with 400 validation_failed', async () => {
      const bad = ['Tenant.created', 'tenant.', '*', '.*', 'tenant..created', 'tenant.*.x', 'tenant created', "tenant.created' OR 1=1", ','];
      for (const types of bad) expectProblem(await page(h.api, `types=${encodeURIComponent(types)}`), 400, 'validation_failed');
      const many = Array.from({ length: 21 }, (_, index) => `t${index}.x`).join(',');
      expectProblem(await page(h.api, `types=${many}`), 400, 'validation_failed');
    });

    it("filters by tenant, and one tenant's events chain through tenant_prev_seq", async () => {
      const [, middle] = tenants;
      const events = await readWholeFeed(h.api, `&tenant_id=${middle!.id}`);
      expect(events).toEqual(all.filter((event) => event.tenant_id === middle!.id));
      expect(events.map((event) => event.type)).toEqual(['tenant.created', 'tenant.updated', 'tenant.updated', 'tenant.activated']);
      expectChained(events);
      expect(events[0]!.tenant_prev_seq).toBeNull();
      // Both filters at once.
      expect(await readWholeFeed(h.api, `&tenant_id=${middle!.id}&types=tenant.updated`)).toEqual(
        events.filter((event) => event.type === 'tenant.updated'),
      );
      expect((await page(h.api, `tenant_id=${NO_SUCH_TENANT}`)).body).toMatchObject({ items: [], has_more: false });
    });

    it('answers 400 invalid_cursor for a cursor ahead of the newest event', async () => {
      const head = all.length;
      expect((await page(h.api, `after=${head}`)).status).toBe(200);
      const problem = expectProblem(await page(h.api, `after=${head + 1}`), 400, 'invalid_cursor');
      expect(problem.errors).toEqual([expect.objectContaining({ path: '/after', in: 'querystring' })]);
      expectProblem(await page(h.api, 'after=999999999999999'), 400, 'invalid_cursor');
    });

    it("lets an IT admin read its own tenant's events only, and a service account all of them", async () => {
      const [own, other] = tenants;
      const itAdmin = await h.server.as(identities.itAdmin(own!.id));
      const mine = await itAdmin.get<Page>(`/v1/events?tenant_id=${own!.id}`);
      expect(mine.status).toBe(200);
      expect(mine.body.items.length).toBe(4);
      expect(mine.body.items.every((event) => event.tenant_id === own!.id)).toBe(true);
      expectProblem(await itAdmin.get(`/v1/events?tenant_id=${other!.id}`), 404, 'not_found');
      expectProblem(await itAdmin.get(`/v1/events?tenant_id=${NO_SUCH_TENANT}`), 404, 'not_found');
      // Without naming its tenant it would read everyone's.
      expectProblem(await itAdmin.get('/v1/events'), 403, 'forbidden');
      expectProblem(await itAdmin.get('/v1/events?types=tenant.*'), 403, 'forbidden');

      const member = await h.server.as(identities.member(own!.id));
      expectProblem(await member.get(`/v1/events?tenant_id=${own!.id}`), 403, 'forbidden');
      expectProblem(await member.get('/v1/events'), 403, 'forbidden');

      const service = await h.server.as(identities.service());
      expect((await readWholeFeed(service)).map((event) => event.id)).toEqual(all.map((event) => event.id));
      expect((await (await h.server.as(null)).get('/v1/events')).status).toBe(401);
    });

    it('answers hostile query values with 400, never 500', async () => {
      const hostile = [
        'after=-1',
        'after=abc',
        'after=1e3',
        'after=0x10',
        'after=%201',
        'after=01',
        'after=1.5',
        'after=99999999999999999999999999',
        'after=9007199254740993',
        `after=${'9'.repeat(10_000)}`,
        'limit=0',
        'limit=-5',
        'limit=501',
        'limit=abc',
        'limit=1.5',
        'limit=99999999999999999999999999',
        `types=${'a'.repeat(10_000)}`,
        `types=${'a.b,'.repeat(2_500)}`,
        'tenant_id=not-a-uuid',
        `tenant_id=${'f'.repeat(10_000)}`,
        'after=1&after=2',
        'surprise=1',
      ];
      for (const query of hostile) {
        const answer = await page(h.api, query);
        expect({ query, status: answer.status }).toEqual({ query, status: 400 });
        expect(['validation_failed', 'invalid_cursor']).toContain(problemOf(answer).code);
      }
    });
  });

  describe('a rare filter over more than the scan window', () => {
    const h = feedServer(driver);

    it('answers a bounded page whose cursor moved on, and following it finds the match', async () => {
      const tenant = await createTenant(h.api);
      const start = (await readWholeFeed(h.api)).length;
      // More non-matching events than one filtered read looks at, written as a burst.
      const fillers = FEED_SCAN_WINDOW + 50;
      await h.server.db.query(
        `INSERT INTO change_events (id, type, tenant_id, occurred_at, data)
         SELECT gen_random_uuid(), 'noise.made', NULL, $1, '{"actor":{"id":"x","name":null},"target":{"id":"y","type":null,"name":null},"product":null,"fields":{}}'::jsonb
           FROM generate_series(1, $2::int)`,
        [new Date(START), fillers],
      );
      expect((await h.api.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(200);
      const match = start + fillers + 1;

      for (const query of ['types=tenant.activated', `types=tenant.activated&tenant_id=${tenant.id}`]) {
        const first = await page(h.api, `${query}&after=${start}`);
        expect(first.status).toBe(200);
        expect(first.body).toEqual({ items: [], next_cursor: String(start + FEED_SCAN_WINDOW), has_more: true });
        const second = await page(h.api, `${query}&after=${first.body.next_cursor}`);
        expect(second.body.items.map((event) => [event.seq, event.type, event.tenant_id])).toEqual([[match, 'tenant.activated', tenant.id]]);
        expect(second.body).toMatchObject({ next_cursor: String(match), has_more: false });
        // A consumer that simply follows the cursor gets there too.
        expect((await readWholeFeed(h.api, `&${query}`, start)).map((event) => event.seq)).toEqual([match]);
      }
    });
  });

  describe('retention', () => {
    const h = feedServer(driver);
    const RETENTION_MS = 30 * DAY_MS;
    let old: ChangeEvent[] = [];
    let kept: ChangeEvent[] = [];
    beforeAll(async () => {
      await busyTenant(h.api);
      old = await readWholeFeed(h.api);
      h.clock.set(START + 20 * DAY_MS);
      await busyTenant(h.api);
      kept = (await readWholeFeed(h.api)).slice(old.length);
    });

    it('deletes nothing while no event is older than the retention', async () => {
      await houseKeep(h.server.db, { clock: () => new Date(START + 25 * DAY_MS), eventRetentionMs: RETENTION_MS });
      expect(await readWholeFeed(h.api)).toEqual([...old, ...kept]);
      expect(await pruneFeed(h.server.db, new Date(START - DAY_MS), 2)).toBe(0);
      expect(await readWholeFeed(h.api)).toEqual([...old, ...kept]);
      // A cursor at the very start is still good.
      expect((await page(h.api, 'after=0&limit=1')).body.items.map((event) => event.seq)).toEqual([1]);
    });

    it('prunes what outlived the retention; a cursor before the mark answers 410, no cursor starts at the oldest kept', async () => {
      await houseKeep(h.server.db, { clock: () => new Date(START + 35 * DAY_MS), eventRetentionMs: RETENTION_MS });
      const mark = old.at(-1)!.seq;
      expect(await readWholeFeed(h.api)).toEqual(kept);
      expect(kept[0]!.seq).toBe(mark + 1);

      for (const after of [0, 1, mark - 1]) {
        const problem = expectProblem(await page(h.api, `after=${after}`), 410, 'cursor_expired');
        expect(problem.oldest_seq).toBe(mark + 1);
      }
      // The mark itself has lost nothing after it.
      expect((await page(h.api, `after=${mark}`)).body.items).toEqual(kept);
      expect((await page(h.api, 'limit=1')).body).toEqual({ items: [kept[0]], next_cursor: String(mark + 1), has_more: true });
    });

    it('prunes in batches up to the newest old event', async () => {
      const before = await readWholeFeed(h.api);
      // Two at a time, until none is older than the cut-off.
      expect(await pruneFeed(h.server.db, new Date(START + 21 * DAY_MS), 2)).toBe(2);
      expect(await pruneFeed(h.server.db, new Date(START + 21 * DAY_MS), 2)).toBe(2);
      expect(await pruneFeed(h.server.db, new Date(START + 21 * DAY_MS), 2)).toBe(0);
      expect(before).toHaveLength(4);
      expect(await readWholeFeed(h.api)).toEqual([]);
      const mark = before.at(-1)!.seq;
      expect(problemOf(await page(h.api, `after=${before[2]!.seq}`))).toMatchObject({ code: 'cursor_expired', oldest_seq: mark + 1 });
      // An empty feed: no cursor starts at the mark, which is also the head.
      expect((await page(h.api, '')).body).toEqual({ items: [], next_cursor: String(mark), has_more: false });
    });
  });
});
