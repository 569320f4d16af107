import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/http/schemas/audit.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant, randomSlug } from '../support/factories.js';
import { problemOf, type Answer, type Client } from '../support/http.js';
import { startServer, type TestServer } from '../support/server.js';
import { iso, MINUTE_MS, START, TestClock } from '../support/time.js';

interface Appended {
  id: string;
  hash: string;
}
interface Page {
  items: AuditEvent[];
  next_cursor: string | null;
}
type Query = Record<string, string | number | boolean>;
type Body = Record<string, unknown>;

const HEX64 = /^[0-9a-f]{64}$/;

const queryString = (query: Query) =>
  new URLSearchParams(Object.fromEntries(Object.entries(query).map(([key, value]) => [key, String(value)]))).toString();
const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Newest first by (created, id), the order the API promises. */
const newestFirst = (a: { created: string; id: string }, b: { created: string; id: string }) =>
  a.created === b.created ? (a.id < b.id ? 1 : -1) : a.created < b.created ? 1 : -1;

eachDriver('audit API', (driver) => {
  let server: TestServer;
  let api: Client;
  // Moved forward by tests that need events received at a known, distinct time.
  const clock = new TestClock();
  const tick = (ms = 1_000) => clock.advance(ms);

  beforeAll(async () => {
    server = await startServer(driver, { clock: clock.now });
    api = server.api;
  });
  afterAll(() => server.close());

  const publish = (body: Body) => api.post<Appended>('/v1/audit', { body });
  const list = (query: Query) => api.get<Page>(`/v1/audit?${queryString(query)}`);

  /** Publishes in parallel batches, failing on anything but 201; ids in the order of bodies. */
  async function publishAll(bodies: Body[], batch = 25): Promise<Appended[]> {
    const appended: Appended[] = [];
    for (let i = 0; i < bodies.length; i += batch) {
      const answers = await Promise.all(bodies.slice(i, i + batch).map(publish));
      for (const answer of answers) {
        if (answer.status !== 201) throw new Error(`publish: ${answer.status} ${answer.text}`);
        appended.push(answer.body);
      }
    }
    return appended;
  }

  /** Every page of a query, following next_cursor; the pages are returned for size checks. */
  async function listPages(query: Query): Promise<AuditEvent[][]> {
    const pages: AuditEvent[][] = [];
    let cursor: string | null = null;
    do {
      const answer: Answer<Page> = await list(cursor === null ? query : { ...query, cursor });
      if (answer.status !== 200) throw new Error(`list: ${answer.status} ${answer.text}`);
      pages.push(answer.body.items);
      cursor = answer.body.next_cursor;
      if (pages.length > 100) throw new Error('list: the cursor never ends');
    } while (cursor !== null);
    return pages;
  }
  const listAll = async (query: Query) => (await listPages({ limit: 200, ...query })).flat();

  const expectValidationError = (answer: Answer, path: string, part: 'body' | 'querystring') => {
    expect(answer.status).toBe(400);
    const problem = problemOf(answer);
    expect(problem.code).toBe('validation_failed');
    expect(problem.errors).toContainEqual(expect.objectContaining({ path, in: part }));
  };

  describe('event shape', () => {
    it('stores every field exactly as sent and returns it with id, received and hash', async () => {
      const tenant = await createTenant(api);
      const received = tick();
      const body = {
        action: 'report.exported',
        crud: 'r',
        tenant_id: tenant.id,
        product: 'analytics',
        group: { id: tenant.id, name: 'Globex Corporation' },
        actor: {
          id: 'user-42',
          name: 'Dana Scully',
          href: 'https://idp.example.com/users/42',
          fields: { department: 'x-files', 'role:primary': 'agent' },
        },
        target: {
          id: 'report-7',
          name: 'Q3 revenue',
          href: 'https://app.example.com/reports/7',
          type: 'report',
          fields: { format: 'pdf', 'page.count': '12' },
        },
        source_ip: '203.0.113.7',
        created: '2026-11-20T08:15:30.123Z',
        description: 'Exported "Q3 revenue" as PDF, 12 pages',
        is_failure: true,
        is_anonymous: false,
        fields: { rows: '1200', 'filter.region': 'emea' },
        metadata: { user_agent: 'Mozilla/5.0 (X11; Linux x86_64)', 'trace-id': '4bf92f3577b34da6' },
        component: 'reports-api',
        version: '3.4.1',
        external_id: `ext-${randomUUID()}`,
      };
      const answer = await publish(body);
      expect(answer.status).toBe(201);
      expect(Object.keys(answer.body).sort()).toEqual(['hash', 'id']);
      expect(answer.body.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(answer.body.hash).toMatch(HEX64);

      const items = await listAll({ tenant_id: tenant.id, action: 'report.exported' });
      expect(items).toHaveLength(1);
      const event = items[0]!;
      // The chain's first event is tenant.created; this one follows it and links to its hash.
      const [first] = await listAll({ tenant_id: tenant.id, action: 'tenant.created' });
      expect(event).toEqual({
        ...body,
        id: answer.body.id,
        received: received.toISOString(),
        hash: answer.body.hash,
        publisher: { sub: 'operator-1', client: null },
        chain: { key: tenant.id, seq: 2, prev_hash: first!.hash, canonical_version: 2 },
      });
      expect(first!.publisher).toBeNull();
    });

    it('keeps an IPv6 source address as sent', async () => {
      const tenant = await createTenant(api);
      for (const ip of ['2001:db8::8a2e:370:7334', '::1', '::ffff:192.0.2.10']) {
        tick();
        const answer = await publish({ action: 'session.started', crud: 'c', tenant_id: tenant.id, actor: { id: 'u-1' }, source_ip: ip });
        expect(answer.status).toBe(201);
        const [event] = (await list({ tenant_id: tenant.id, action: 'session.started', limit: 1 })).body.items;
        expect(event).toMatchObject({ id: answer.body.id, source_ip: ip });
      }
    });

    it('answers absent optional fields as null, and defaults created to received', async () => {
      const tenant = await createTenant(api);
      const received = tick();
      const answer = await publish({ action: 'page.viewed', crud: 'r', tenant_id: tenant.id, is_anonymous: true });
      expect(answer.status).toBe(201);
      const [event] = await listAll({ tenant_id: tenant.id, action: 'page.viewed' });
      expect(event).toEqual({
        id: answer.body.id,
        tenant_id: tenant.id,
        action: 'page.viewed',
        crud: 'r',
        product: null,
        group: null,
        actor: null,
        target: null,
        source_ip: null,
        created: received.toISOString(),
        received: received.toISOString(),
        description: null,
        is_failure: false,
        is_anonymous: true,
        fields: null,
        metadata: null,
        component: null,
        version: null,
        external_id: null,
        hash: answer.body.hash,
        publisher: { sub: 'operator-1', client: null },
        chain: { key: tenant.id, seq: 2, prev_hash: expect.stringMatching(HEX64) as string, canonical_version: 2 },
      });
    });

    it('fills the optional members of actor, target and group with null', async () => {
      const tenant = await createTenant(api);
      const answer = await publish({
        action: 'member.invited',
        crud: 'c',
        tenant_id: tenant.id,
        group: { id: 'g-1' },
        actor: { id: 'u-1' },
        target: { id: 'u-2' },
      });
      expect(answer.status).toBe(201);
      const [event] = await listAll({ tenant_id: tenant.id, action: 'member.invited' });
      expect(event).toMatchObject({
        group: { id: 'g-1', name: null },
        actor: { id: 'u-1', name: null, href: null, fields: null },
        target: { id: 'u-2', name: null, href: null, type: null, fields: null },
      });
    });

    it('keeps an empty map apart from an absent one', async () => {
      const tenant = await createTenant(api);
      expect((await publish({ action: 'map.empty', crud: 'r', tenant_id: tenant.id, actor: { id: 'u' }, fields: {}, metadata: {} })).status).toBe(201);
      const [event] = await listAll({ tenant_id: tenant.id, action: 'map.empty' });
      expect(event).toMatchObject({ fields: {}, metadata: {} });
    });
  });

  describe('validation', () => {
    const valid = { action: 'doc.viewed', crud: 'r', actor: { id: 'u-1' } };
    const map = (entries: number, key = (i: number) => `k${i}`, value = 'v') =>
      Object.fromEntries(Array.from({ length: entries }, (_, i) => [key(i), value]));

    it.each<[string, Body, string]>([
      ['a missing action', { crud: 'r', actor: { id: 'u-1' } }, '/action'],
      ['a missing crud', { action: 'doc.viewed', actor: { id: 'u-1' } }, '/crud'],
      ['crud x', { ...valid, crud: 'x' }, '/crud'],
      ['no actor without is_anonymous', { action: 'doc.viewed', crud: 'r' }, '/actor'],
      ['no actor with is_anonymous false', { action: 'doc.viewed', crud: 'r', is_anonymous: false }, '/actor'],
      ['an actor without id', { ...valid, actor: { name: 'Dana' } }, '/actor/id'],
      ['a target without id', { ...valid, target: { name: 'Report', type: 'report' } }, '/target/id'],
      ['a group without id', { ...valid, group: { name: 'Globex' } }, '/group/id'],
      ['source_ip 1.2.3.999', { ...valid, source_ip: '1.2.3.999' }, '/source_ip'],
      ['source_ip not-an-ip', { ...valid, source_ip: 'not-an-ip' }, '/source_ip'],
      ['source_ip ::g', { ...valid, source_ip: '::g' }, '/source_ip'],
      ['fields with 51 keys', { ...valid, fields: map(51) }, '/fields'],
      ['metadata with 51 keys', { ...valid, metadata: map(51) }, '/metadata'],
      ['a fields key over 40 characters', { ...valid, fields: { ['k'.repeat(41)]: 'v' } }, '/fields'],
      ['a metadata key over 40 characters', { ...valid, metadata: { ['k'.repeat(41)]: 'v' } }, '/metadata'],
      ['a fields value over 500 characters', { ...valid, fields: { note: 'v'.repeat(501) } }, '/fields/note'],
      ['a metadata value over 500 characters', { ...valid, metadata: { note: 'v'.repeat(501) } }, '/metadata/note'],
      ['a non-string fields value', { ...valid, fields: { count: 3 } }, '/fields/count'],
      ['a non-string metadata value', { ...valid, metadata: { nested: { a: 'b' } } }, '/metadata/nested'],
      ['a non-string actor fields value', { ...valid, actor: { id: 'u-1', fields: { admin: true } } }, '/actor/fields/admin'],
      ['an unknown top-level field', { ...valid, severity: 'high' }, '/severity'],
      ['an unknown field inside actor', { ...valid, actor: { id: 'u-1', email: 'dana@example.com' } }, '/actor/email'],
      ['an unknown field inside target', { ...valid, target: { id: 't-1', owner: 'x' } }, '/target/owner'],
      ['an action with a space', { ...valid, action: 'doc viewed' }, '/action'],
      ['an action with *', { ...valid, action: 'doc.*' }, '/action'],
      ['created not a date-time', { ...valid, created: 'yesterday' }, '/created'],
      ['created a date without time', { ...valid, created: '2026-11-27' }, '/created'],
      ['tenant_id not a uuid', { ...valid, tenant_id: 'not-a-uuid' }, '/tenant_id'],
      ['is_failure as a string', { ...valid, is_failure: 'true' }, '/is_failure'],
    ])('refuses %s: 400 naming the field', async (_case, body, path) => {
      expectValidationError(await api.post('/v1/audit', { body }), path, 'body');
    });

    it('accepts an event without actor when is_anonymous is true', async () => {
      const action = `anon.${randomSlug('a')}`;
      const answer = await publish({ action, crud: 'r', is_anonymous: true });
      expect(answer.status).toBe(201);
      expect(await listAll({ action })).toHaveLength(1);
    });

    it('accepts maps at their limits: 50 keys, 40-character keys, 500-character values', async () => {
      const fields = map(50, (i) => `${String(i).padStart(2, '0')}${'k'.repeat(38)}`, 'v'.repeat(500));
      const action = `limits.${randomSlug('l')}`;
      // One map at the limits: three would exceed the 64 KiB body limit of the test server.
      const answer = await publish({ ...valid, action, fields });
      expect(answer.status).toBe(201);
      const [event] = await listAll({ action });
      expect(event?.fields).toEqual(fields);
    });

    it('answers 404 not_found for a tenant that does not exist, and appends nothing', async () => {
      const tenantId = randomUUID();
      const action = `ghost.${randomSlug('g')}`;
      const answer = await api.post('/v1/audit', { body: { ...valid, action, tenant_id: tenantId } });
      expect(answer.status).toBe(404);
      expect(problemOf(answer).code).toBe('not_found');
      expect(await listAll({ action })).toEqual([]);
      expect(await listAll({ tenant_id: tenantId })).toEqual([]);
    });
  });

  describe('idempotency by external_id', () => {
    it('answers a retry 200 with the original id and hash, and stores one event', async () => {
      const tenant = await createTenant(api);
      const body = { action: 'invoice.paid', crud: 'u', tenant_id: tenant.id, actor: { id: 'stripe' }, external_id: 'evt_1' };
      const first = await publish({ ...body, description: 'first' });
      expect(first.status).toBe(201);
      expect(first.headers.get('idempotent-replayed')).toBeNull();
      const retry = await publish({ ...body, description: 'retry' });
      expect(retry.status).toBe(200);
      expect(retry.body).toEqual(first.body);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      const stored = await listAll({ tenant_id: tenant.id, action: 'invoice.paid' });
      expect(stored.map((e) => [e.id, e.description])).toEqual([[first.body.id, 'first']]);
    });

    it('keeps one external_id apart for two tenants', async () => {
      const [a, b] = [await createTenant(api), await createTenant(api)];
      const answers = await Promise.all(
        [a, b].map((tenant) => publish({ action: 'invoice.paid', crud: 'u', tenant_id: tenant.id, actor: { id: 'stripe' }, external_id: 'evt_shared' })),
      );
      expect(answers.map((answer) => answer.status)).toEqual([201, 201]);
      expect(answers[0]!.body.id).not.toBe(answers[1]!.body.id);
      expect((await listAll({ tenant_id: a.id, action: 'invoice.paid' })).map((e) => e.id)).toEqual([answers[0]!.body.id]);
      expect((await listAll({ tenant_id: b.id, action: 'invoice.paid' })).map((e) => e.id)).toEqual([answers[1]!.body.id]);
    });

    it('lets exactly one of 10 concurrent publishes with one external_id append', async () => {
      const tenant = await createTenant(api);
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          publish({ action: 'invoice.paid', crud: 'u', tenant_id: tenant.id, actor: { id: `worker-${i}` }, external_id: 'evt_race' }),
        ),
      );
      expect(answers.map((answer) => answer.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
      expect(new Set(answers.map((answer) => answer.body.id)).size).toBe(1);
      expect(new Set(answers.map((answer) => answer.body.hash)).size).toBe(1);
      expect(answers.filter((answer) => answer.headers.get('idempotent-replayed') === 'true')).toHaveLength(9);
      const stored = await listAll({ tenant_id: tenant.id, action: 'invoice.paid' });
      expect(stored.map((e) => e.id)).toEqual([answers[0]!.body.id]);
    });
  });

  describe('filters', () => {
    interface Modeled {
      key: string;
      action: string;
      crud: string;
      product: string | null;
      actor_id: string | null;
      target_id: string | null;
      target_type: string | null;
      is_failure: boolean;
      created: string;
    }
    const at = (minutes: number) => iso(Date.parse('2026-10-01T00:00:00.000Z') + minutes * MINUTE_MS);
    const seeds: Modeled[] = [
      { key: 'k1', action: 'report.exported', crud: 'r', product: 'analytics', actor_id: 'alice', target_id: 'r-1', target_type: 'report', is_failure: false, created: at(0) },
      { key: 'k2', action: 'report.viewed', crud: 'r', product: 'analytics', actor_id: 'bob', target_id: 'r-1', target_type: 'report', is_failure: true, created: at(1) },
      { key: 'k3', action: 'reports', crud: 'c', product: 'billing', actor_id: 'alice', target_id: 'inv-9', target_type: 'invoice', is_failure: false, created: at(2) },
      { key: 'k4', action: 'report', crud: 'u', product: 'analytics', actor_id: 'carol', target_id: 'r-2', target_type: 'report', is_failure: false, created: at(3) },
      { key: 'k5', action: 'a_b.x', crud: 'd', product: 'analytics', actor_id: 'carol', target_id: 'r-2', target_type: 'report', is_failure: true, created: at(4) },
      { key: 'k6', action: 'axb.x', crud: 'u', product: 'billing', actor_id: 'bob', target_id: 'inv-9', target_type: 'invoice', is_failure: false, created: at(5) },
      { key: 'k7', action: 'report.exported', crud: 'r', product: 'billing', actor_id: null, target_id: 'r-1', target_type: 'report', is_failure: false, created: at(6) },
      { key: 'k8', action: 'team.renamed', crud: 'u', product: null, actor_id: 'alice', target_id: null, target_type: null, is_failure: false, created: at(7) },
    ];
    const bodyOf = (tenantId: string, m: Modeled): Body => ({
      action: m.action,
      crud: m.crud,
      tenant_id: tenantId,
      ...(m.product === null ? {} : { product: m.product }),
      ...(m.actor_id === null ? { is_anonymous: true } : { actor: { id: m.actor_id } }),
      ...(m.target_id === null ? {} : { target: { id: m.target_id, type: m.target_type } }),
      is_failure: m.is_failure,
      created: m.created,
      external_id: m.key,
    });

    let tenant: Tenant;
    let other: Tenant;
    let model: Modeled[];
    beforeAll(async () => {
      clock.set(Date.parse(at(-30)));
      tenant = await createTenant(api);
      other = await createTenant(api);
      // Received after every seeded `created` (a publisher may not date an event in the future).
      clock.set(Date.parse(at(8)));
      // Publish in an order unrelated to `created`, so the order of results can only come from it.
      await publishAll([...seeds].reverse().map((m) => bodyOf(tenant.id, m)));
      await publishAll(seeds.map((m) => bodyOf(other.id, m)));
      const created: Modeled = {
        key: 'auto',
        action: 'tenant.created',
        crud: 'c',
        product: null,
        actor_id: 'system',
        target_id: tenant.id,
        target_type: 'tenant',
        is_failure: false,
        created: at(-30),
      };
      model = [...seeds, created].sort((a, b) => (a.created < b.created ? 1 : -1));
      clock.reset();
    });
    const keysOf = (items: AuditEvent[]) => items.map((e) => e.external_id ?? 'auto');

    it('filters by tenant_id', async () => {
      const mine = await listAll({ tenant_id: tenant.id });
      expect(keysOf(mine)).toEqual(model.map((m) => m.key));
      expect(mine.every((e) => e.tenant_id === tenant.id)).toBe(true);
      const theirs = await listAll({ tenant_id: other.id });
      expect(theirs).toHaveLength(model.length);
      expect(theirs.filter((e) => mine.some((m) => m.id === e.id))).toEqual([]);
    });

    it.each<[string, Query, (m: Modeled) => boolean]>([
      ['product', { product: 'analytics' }, (m) => m.product === 'analytics'],
      ['actor_id', { actor_id: 'alice' }, (m) => m.actor_id === 'alice'],
      ['exact action', { action: 'report.exported' }, (m) => m.action === 'report.exported'],
      ['action prefix report.*', { action: 'report.*' }, (m) => m.action.startsWith('report.')],
      ['action prefix report*', { action: 'report*' }, (m) => m.action.startsWith('report')],
      ['action prefix with a literal _', { action: 'a_*' }, (m) => m.action.startsWith('a_')],
      ['action prefix tenant.*', { action: 'tenant.*' }, (m) => m.action.startsWith('tenant.')],
      ['target_id', { target_id: 'r-1' }, (m) => m.target_id === 'r-1'],
      ['target_type', { target_type: 'invoice' }, (m) => m.target_type === 'invoice'],
      ['crud', { crud: 'u' }, (m) => m.crud === 'u'],
      ['is_failure=true', { is_failure: true }, (m) => m.is_failure],
      ['is_failure=false', { is_failure: false }, (m) => !m.is_failure],
      ['since (inclusive)', { since: at(2) }, (m) => m.created >= at(2)],
      ['until (exclusive)', { until: at(5) }, (m) => m.created < at(5)],
      ['since and until', { since: at(1), until: at(4) }, (m) => m.created >= at(1) && m.created < at(4)],
      ['since with an offset', { since: '2026-10-01T02:03:00+02:00' }, (m) => m.created >= at(3)],
      ['several filters at once', { product: 'analytics', crud: 'r', is_failure: false }, (m) => m.key === 'k1'],
    ])('filters by %s, on every page', async (_case, query, keep) => {
      const expected = model.filter(keep).map((m) => m.key);
      // A filter that keeps everything or nothing could not tell a working filter from none.
      expect(expected.length).toBeGreaterThan(0);
      expect(expected.length).toBeLessThan(model.length);
      const items = await listAll({ tenant_id: tenant.id, ...query });
      expect(keysOf(items)).toEqual(expected);
      const paged = await listPages({ tenant_id: tenant.id, ...query, limit: 2 });
      expect(keysOf(paged.flat())).toEqual(expected);
    });

    it('matches an action prefix literally, with no wildcard but the trailing *', async () => {
      expect(keysOf(await listAll({ tenant_id: tenant.id, action: 'a_b.x' }))).toEqual(['k5']);
      expect(await listAll({ tenant_id: tenant.id, action: 'a_' })).toEqual([]);
      expect(await listAll({ tenant_id: tenant.id, action: 'report.' })).toEqual([]);
      // '%' is no part of an action, so it cannot reach LIKE as a wildcard either.
      expectValidationError(await api.get(`/v1/audit?${queryString({ tenant_id: tenant.id, action: 'a%*' })}`), '/action', 'querystring');
    });

    it.each<[string, Query, string]>([
      ['crud=z', { crud: 'z' }, '/crud'],
      ['is_failure=maybe', { is_failure: 'maybe' }, '/is_failure'],
      ['since=yesterday', { since: 'yesterday' }, '/since'],
      ['until=2026-10-01', { until: '2026-10-01' }, '/until'],
      ['limit=0', { limit: 0 }, '/limit'],
      ['limit=201', { limit: 201 }, '/limit'],
      ['limit=ten', { limit: 'ten' }, '/limit'],
      ['an unknown parameter', { actor: 'alice' }, '/actor'],
      ['tenant_id not a uuid', { tenant_id: 'acme' }, '/tenant_id'],
      ['an action with a space', { action: 'report viewed' }, '/action'],
      ['an action with * inside', { action: 'rep*rt' }, '/action'],
    ])('refuses %s: 400 validation_failed in the querystring', async (_case, query, path) => {
      expectValidationError(await api.get(`/v1/audit?${queryString(query)}`), path, 'querystring');
    });
  });

  describe('ordering and cursor', () => {
    /** Events of a fresh tenant with one action, so nothing else can fall into the query. */
    async function seed(count: number, createdOf: (i: number) => string | undefined) {
      const tenant = await createTenant(api);
      const action = `item.${randomSlug('p')}`;
      const bodies = Array.from({ length: count }, (_, i) => {
        const created = createdOf(i);
        return { action, crud: 'c', tenant_id: tenant.id, actor: { id: `u-${i}` }, ...(created ? { created } : {}) };
      });
      const appended = await publishAll(bodies);
      const expected = appended
        .map((a, i) => ({ id: a.id, created: createdOf(i) ?? '' }))
        .sort(newestFirst)
        .map((e) => e.id);
      return { query: { tenant_id: tenant.id, action }, expected };
    }

    it('pages 25 events newest first in pages of 10, 10 and 5', async () => {
      // Publication order is a permutation of creation order.
      const { query, expected } = await seed(25, (i) => iso(START - ((i * 7) % 25) * MINUTE_MS));
      const pages = await listPages({ ...query, limit: 10 });
      expect(pages.map((page) => page.length)).toEqual([10, 10, 5]);
      const ids = pages.flat().map((e) => e.id);
      expect(ids).toEqual(expected);
      expect(new Set(ids).size).toBe(25);
      const created = pages.flat().map((e) => e.created);
      expect(created).toEqual([...created].sort().reverse());
    });

    it('answers the last page with next_cursor null, and a full last page too', async () => {
      const { query } = await seed(10, (i) => iso(START - i * MINUTE_MS));
      const first = await list({ ...query, limit: 5 });
      expect(first.body.next_cursor).toEqual(expect.any(String));
      const second = await list({ ...query, limit: 5, cursor: first.body.next_cursor! });
      expect(second.body.items).toHaveLength(5);
      expect(second.body.next_cursor).toBeNull();
      const all = await list({ ...query, limit: 10 });
      expect(all.body.items).toHaveLength(10);
      expect(all.body.next_cursor).toBeNull();
    });

    it('pages events that share one created time without loss or duplication, by id', async () => {
      const same = iso(START - 3 * MINUTE_MS);
      const { query, expected } = await seed(23, () => same);
      const pages = await listPages({ ...query, limit: 5 });
      expect(pages.map((page) => page.length)).toEqual([5, 5, 5, 5, 3]);
      expect(pages.flat().map((e) => e.id)).toEqual(expected);
      expect(new Set(expected).size).toBe(23);
    });

    it('keeps following a cursor stable while newer events are appended', async () => {
      const { query, expected } = await seed(20, (i) => iso(START - (i + 1) * MINUTE_MS));
      const first = await list({ ...query, limit: 7 });
      expect(first.body.items.map((e) => e.id)).toEqual(expected.slice(0, 7));

      const newer = await publishAll(
        Array.from({ length: 5 }, (_, i) => ({ ...query, crud: 'c', actor: { id: 'late' }, created: iso(START + (i + 1) * MINUTE_MS) })),
      );
      const rest = await listPages({ ...query, limit: 7, cursor: first.body.next_cursor! });
      const restIds = rest.flat().map((e) => e.id);
      expect(restIds).toEqual(expected.slice(7));
      expect(restIds.filter((id) => newer.some((n) => n.id === id))).toEqual([]);
      // From the start, the newer events are there: the cursor, not the data, kept them out.
      const fresh = await list({ ...query, limit: 7 });
      expect(fresh.body.items.slice(0, 5).map((e) => e.id).sort()).toEqual(newer.map((n) => n.id).sort());
    });

    it('answers 50 events per page by default', async () => {
      const { query, expected } = await seed(55, (i) => iso(START - i * 1_000));
      const answer = await list(query);
      expect(answer.status).toBe(200);
      expect(answer.body.items.map((e) => e.id)).toEqual(expected.slice(0, 50));
      expect(answer.body.next_cursor).toEqual(expect.any(String));
      const next = await list({ ...query, cursor: answer.body.next_cursor! });
      expect(next.body.items.map((e) => e.id)).toEqual(expected.slice(50));
      expect(next.body.next_cursor).toBeNull();
    });

    it.each<[string, string]>([
      ['garbage', 'not a cursor!'],
      ['base64url of text that is not JSON', Buffer.from('2026-11-27,abc').toString('base64url')],
      ['an object', base64url({ created: '2026-11-27T10:00:00.000Z', id: randomUUID() })],
      ['an array of one', base64url(['2026-11-27T10:00:00.000Z'])],
      ['an array of three', base64url(['2026-11-27T10:00:00.000Z', randomUUID(), 'x'])],
      ['a number where the time belongs', base64url([1764237600000, randomUUID()])],
      ['a time that is no date', base64url(['yesterday', randomUUID()])],
      ['an id that is no uuid', base64url(['2026-11-27T10:00:00.000Z', 'abc'])],
      ['null', base64url(null)],
    ])('refuses a cursor that is %s: 400 invalid_cursor', async (_case, cursor) => {
      const answer = await api.get(`/v1/audit?${queryString({ cursor })}`);
      expect(answer.status).toBe(400);
      const problem = problemOf(answer);
      expect(problem.code).toBe('invalid_cursor');
      expect(problem.errors).toContainEqual(expect.objectContaining({ path: '/cursor', in: 'querystring' }));
    });
  });

  describe('times at the edges of JavaScript and PostgreSQL', () => {
    it('refuses a cursor whose time Date.parse reads but PostgreSQL does not: 400, not 500', async () => {
      const answer = await api.get(`/v1/audit?${queryString({ cursor: base64url(['1', randomUUID()]) })}`);
      expect(answer.status).toBe(400);
      expect(problemOf(answer).code).toBe('invalid_cursor');
    });

    it('refuses a created leap second that JavaScript cannot represent: 400, not 500', async () => {
      const answer = await api.post('/v1/audit', {
        body: { action: 'leap.second', crud: 'r', actor: { id: 'u-1' }, created: '2026-12-31T23:59:60Z' },
      });
      expectValidationError(answer, '/created', 'body');
    });

    it('refuses a created in year 0000, which PostgreSQL cannot store: 400, not 500', async () => {
      const answer = await api.post('/v1/audit', {
        body: { action: 'year.zero', crud: 'r', actor: { id: 'u-1' }, created: '0000-01-01T00:00:00Z' },
      });
      expectValidationError(answer, '/created', 'body');
    });

    it('refuses since in year 0000: 400, not 500', async () => {
      expectValidationError(await api.get('/v1/audit?since=0000-01-01T00:00:00Z'), '/since', 'querystring');
    });

    it('keeps every stored time to the millisecond, which the cursor carries exactly', async () => {
      const tenant = await createTenant(api);
      // A finer time would let pages skip rows within one millisecond; the schema refuses it.
      await expect(
        server.db.query(
          `INSERT INTO audit_log (id, chain_key, chain_seq, tenant_id, action, crud, created)
           VALUES ($1, $2, 101, $3, 'legacy.imported', 'c', '2026-09-01T12:00:00.123456Z')`,
          [randomUUID(), tenant.id, tenant.id],
        ),
      ).rejects.toMatchObject({ code: '23514', constraint: 'audit_log_created_ms' });
      // Rows written without times (as before the chain existed) get millisecond defaults.
      for (const seq of [101, 102, 103]) {
        await server.db.query(
          `INSERT INTO audit_log (id, chain_key, chain_seq, tenant_id, action, crud)
           VALUES ($1, $2, $3, $4, 'legacy.imported', 'c')`,
          [randomUUID(), tenant.id, seq, tenant.id],
        );
      }
      const query = { tenant_id: tenant.id, action: 'legacy.imported' };
      expect(await listAll(query)).toHaveLength(3);
      expect((await listPages({ ...query, limit: 1 })).flat()).toHaveLength(3);
    });
  });

  describe('events the service writes itself', () => {
    const eventsOf = (tenant: Tenant) => listAll({ tenant_id: tenant.id });

    it('writes tenant.created, tenant.activated and tenant.cancelled with the change', async () => {
      const createdAt = tick(MINUTE_MS);
      const tenant = await createTenant(api);
      const activatedAt = tick(MINUTE_MS);
      expect((await api.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(200);
      const cancelledAt = tick(MINUTE_MS);
      expect((await api.post(`/v1/tenants/${tenant.id}/cancel`)).status).toBe(200);

      const events = await eventsOf(tenant);
      expect(events.map((e) => [e.action, e.crud, e.created])).toEqual([
        ['tenant.cancelled', 'u', cancelledAt.toISOString()],
        ['tenant.activated', 'u', activatedAt.toISOString()],
        ['tenant.created', 'c', createdAt.toISOString()],
      ]);
      for (const event of events) {
        expect(event).toMatchObject({
          tenant_id: tenant.id,
          group: { id: tenant.id, name: tenant.name },
          actor: { id: 'operator-1', name: 'olga.operator', fields: { kind: 'user' } },
          target: { id: tenant.id, type: 'tenant', name: tenant.slug },
          component: 'tenant-registry',
          is_failure: false,
          is_anonymous: false,
        });
        expect(['127.0.0.1', '::ffff:127.0.0.1']).toContain(event.source_ip);
        expect(event.hash).toMatch(HEX64);
      }
      expect(events.map((e) => e.fields)).toEqual([
        { from_status: 'active', to_status: 'frozen' },
        { from_status: 'trial', to_status: 'active' },
        { status: 'trial', kind: 'customer' },
      ]);
    });

    it('writes no event for a refused transition', async () => {
      const tenant = await createTenant(api);
      tick();
      expect((await api.post(`/v1/tenants/${tenant.id}/cancel`)).status).toBe(200);
      expect((await api.post(`/v1/tenants/${tenant.id}/cancel`)).status).toBe(409);
      expect((await eventsOf(tenant)).map((e) => e.action)).toEqual(['tenant.cancelled', 'tenant.created']);

      const demo = await createTenant(api, { kind: 'demo' });
      expect((await api.post(`/v1/tenants/${demo.id}/activate`)).status).toBe(409);
      expect((await eventsOf(demo)).map((e) => e.action)).toEqual(['tenant.created']);
    });

    it('writes no event for a duplicate slug', async () => {
      const tenant = await createTenant(api);
      const before = await listAll({ action: 'tenant.created' });
      const again = await api.post('/v1/tenants', { body: { slug: tenant.slug, name: 'Impostor' } });
      expect(again.status).toBe(409);
      const after = await listAll({ action: 'tenant.created' });
      expect(after.map((e) => e.id)).toEqual(before.map((e) => e.id));
      expect(after.filter((e) => e.target?.name === tenant.slug)).toHaveLength(1);
    });
  });
});
