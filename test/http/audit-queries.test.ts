// GET /v1/audit finds what it is asked for: its filters (an action prefix taken literally),
// newest first by (created, id), pages that lose and repeat nothing even while events are
// appended, and times at the edges of what JavaScript and PostgreSQL represent refused with 400.
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/http/schemas/audit.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant, randomSlug } from '../support/factories.js';
import { problemOf } from '../support/http.js';
import { iso, MINUTE_MS, START } from '../support/time.js';
import { auditApi, base64url, newestFirst, queryString, type Body, type Query } from './audit-api-harness.js';

eachDriver('audit API: queries', (driver) => {
  const h = auditApi(driver);
  const { clock, expectValidationError, list, listAll, listPages, publishAll } = h;

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
      tenant = await createTenant(h.api);
      other = await createTenant(h.api);
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
      expectValidationError(await h.api.get(`/v1/audit?${queryString({ tenant_id: tenant.id, action: 'a%*' })}`), '/action', 'querystring');
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
      expectValidationError(await h.api.get(`/v1/audit?${queryString(query)}`), path, 'querystring');
    });
  });

  describe('ordering and cursor', () => {
    /** Events of a fresh tenant with one action, so nothing else can fall into the query. */
    async function seed(count: number, createdOf: (i: number) => string | undefined) {
      const tenant = await createTenant(h.api);
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
      const answer = await h.api.get(`/v1/audit?${queryString({ cursor })}`);
      expect(answer.status).toBe(400);
      const problem = problemOf(answer);
      expect(problem.code).toBe('invalid_cursor');
      expect(problem.errors).toContainEqual(expect.objectContaining({ path: '/cursor', in: 'querystring' }));
    });
  });

  describe('times at the edges of JavaScript and PostgreSQL', () => {
    it('refuses a cursor whose time Date.parse reads but PostgreSQL does not: 400, not 500', async () => {
      const answer = await h.api.get(`/v1/audit?${queryString({ cursor: base64url(['1', randomUUID()]) })}`);
      expect(answer.status).toBe(400);
      expect(problemOf(answer).code).toBe('invalid_cursor');
    });

    it('refuses a created leap second that JavaScript cannot represent: 400, not 500', async () => {
      const answer = await h.api.post('/v1/audit', {
        body: { action: 'leap.second', crud: 'r', actor: { id: 'u-1' }, created: '2026-12-31T23:59:60Z' },
      });
      expectValidationError(answer, '/created', 'body');
    });

    it('refuses a created in year 0000, which PostgreSQL cannot store: 400, not 500', async () => {
      const answer = await h.api.post('/v1/audit', {
        body: { action: 'year.zero', crud: 'r', actor: { id: 'u-1' }, created: '0000-01-01T00:00:00Z' },
      });
      expectValidationError(answer, '/created', 'body');
    });

    it('refuses since in year 0000: 400, not 500', async () => {
      expectValidationError(await h.api.get('/v1/audit?since=0000-01-01T00:00:00Z'), '/since', 'querystring');
    });

    it('keeps every stored time to the millisecond, which the cursor carries exactly', async () => {
      const tenant = await createTenant(h.api);
      // A finer time would let pages skip rows within one millisecond; the schema refuses it.
      await expect(
        h.server.db.query(
          `INSERT INTO audit_log (id, chain_key, chain_seq, tenant_id, action, crud, created)
           VALUES ($1, $2, 101, $3, 'legacy.imported', 'c', '2026-09-01T12:00:00.123456Z')`,
          [randomUUID(), tenant.id, tenant.id],
        ),
      ).rejects.toMatchObject({ code: '23514', constraint: 'audit_log_created_ms' });
      // Rows written without times (as before the chain existed) get millisecond defaults.
      for (const seq of [101, 102, 103]) {
        await h.server.db.query(
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
});
