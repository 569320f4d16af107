// The portal's audit queries against a log of realistic size: each must be an index range scan,
// and a page deep in a tenant's history must cost what the first page costs. The SQL is the
// exact text and parameters queryEvents sends, captured rather than copied.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryEvents, type AuditFilters, type AuditPosition } from '../../src/store/audit.js';
import type { Queryable } from '../../src/store/database.js';
import { eachDriver, openMigratedDatabase, type TestDatabase } from '../support/drivers.js';
import { describePlan, explain, nodesOf, type PlanNode } from '../support/query-plans.js';

const TENANTS = 20;
const ROWS = 50_000;
/** The API's default page. Whether another follows is read from the row after it (lead()). */
const PAGE = 50;
const LIMIT = PAGE;

const tenantId = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
const TENANT = tenantId(7);

// Row g belongs to tenant g % 20 at chain position g / 20 + 1, one every 631 s over a year, so
// each tenant has 2,500 events. Action and actor are spread independently of the tenant.
const SEED = `
INSERT INTO tenants (id, slug, name, status)
SELECT ('00000000-0000-4000-8000-' || lpad(t::text, 12, '0'))::uuid, 'plan-' || t, 'Plan ' || t, 'active'
  FROM generate_series(1, ${TENANTS}) AS t;

INSERT INTO audit_log (id, tenant_id, chain_key, chain_seq, action, crud, actor_id, actor_name, target_id, target_type,
                       product, source_ip, created, received, description, metadata, prev_hash, hash)
SELECT gen_random_uuid(), tid, tid::text, s + 1,
       (ARRAY['document.viewed', 'document.viewed', 'document.edited', 'document.shared', 'user.login', 'user.logout',
              'key.rotated', 'tenant.updated', 'report.viewed', 'report.exported', 'report.scheduled'])[(s * 7 + t) % 11 + 1],
       (ARRAY['r', 'r', 'u', 'u', 'c', 'd', 'u', 'u', 'r', 'r', 'c'])[(s * 7 + t) % 11 + 1],
       'user-' || ((s * 13 + t * 3) % 10), 'User ' || ((s * 13 + t * 3) % 10),
       'doc-' || (s % 300), 'document',
       (ARRAY['docs', 'reports', 'admin'])[s % 3 + 1],
       '10.0.' || t || '.' || (s % 250),
       timestamptz '2025-01-01 00:00:00+00' + g * interval '631 seconds',
       timestamptz '2025-01-01 00:00:00+00' + g * interval '631 seconds' + interval '120 milliseconds',
       'seeded event ' || g, jsonb_build_object('request_id', 'req-' || g),
       NULL, md5(g::text) || md5(g::text || 'x')
  FROM (SELECT g, g % ${TENANTS} AS t, g / ${TENANTS} AS s,
               ('00000000-0000-4000-8000-' || lpad((g % ${TENANTS} + 1)::text, 12, '0'))::uuid AS tid
          FROM generate_series(0, ${ROWS - 1}) AS g) AS seeded;

ANALYZE;
`;

interface CapturedQuery {
  text: string;
  params: unknown[];
}

/** The SQL queryEvents would run, caught by a Queryable that runs nothing. */
async function captureQuery(filters: AuditFilters, after: AuditPosition | null, limit = LIMIT): Promise<CapturedQuery> {
  let captured: CapturedQuery | undefined;
  const spy: Queryable = {
    query: async <Row>(text: string, params: readonly unknown[] = []): Promise<Row[]> => {
      captured = { text, params: [...params] };
      return [];
    },
    exec: async () => {},
  };
  await queryEvents(spy, filters, after, limit);
  if (!captured) throw new Error('queryEvents sent no query');
  return captured;
}

/** Rows the scans of audit_log touched: returned plus thrown away by a filter or recheck. */
const rowsExamined = (plan: PlanNode) =>
  nodesOf(plan)
    .filter((node) => node['Relation Name'] === 'audit_log')
    .reduce(
      (sum, node) =>
        sum +
        ((node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0)) *
          (node['Actual Loops'] ?? 1),
      0,
    );

const buffersOf = (plan: PlanNode) => (plan['Shared Hit Blocks'] ?? 0) + (plan['Shared Read Blocks'] ?? 0);

const COMBINATIONS: [name: string, filters: AuditFilters][] = [
  ['tenant + time range', { tenant_id: TENANT, since: '2025-03-01T00:00:00.000Z', until: '2025-11-01T00:00:00.000Z' }],
  ['tenant + exact action', { tenant_id: TENANT, action: 'report.exported' }],
  ['tenant + action prefix', { tenant_id: TENANT, action: 'report.*' }],
  ['tenant + actor', { tenant_id: TENANT, actor_id: 'user-7' }],
];

eachDriver('audit query plans', (driver) => {
  let database: TestDatabase;
  let db: Queryable;
  beforeAll(async () => {
    database = await openMigratedDatabase(driver);
    db = database.db;
    await db.exec(SEED);
  });
  afterAll(() => database.close());

  const explainPlan = (query: CapturedQuery, analyze: boolean): Promise<PlanNode> => explain(db, query, analyze ? 'ANALYZE, BUFFERS' : '');

  /** Every event matching the filters, newest first, as the cursors of a full walk would see them. */
  const allOf = async (filters: AuditFilters) => (await queryEvents(db, filters, null, ROWS, Number.MAX_SAFE_INTEGER)).events;

  /** The cursor after the event at `index` of the full result. */
  const cursorAt = async (filters: AuditFilters, index: number): Promise<AuditPosition> => {
    const event = (await allOf(filters))[index]!;
    return { created: event.created, id: event.id };
  };

  it('seeds the log: 50,000 events, 2,500 per tenant, chained 1..2,500', async () => {
    const [stats] = await db.query<{ n: number; tenants: number; max_seq: number }>(
      'SELECT count(*) AS n, count(DISTINCT tenant_id) AS tenants, max(chain_seq) AS max_seq FROM audit_log',
    );
    expect(stats).toEqual({ n: ROWS, tenants: TENANTS, max_seq: ROWS / TENANTS });
  });

  describe.each(COMBINATIONS)('%s', (_name, filters) => {
    it('runs the captured SQL as the page queryEvents returns', async () => {
      const query = await captureQuery(filters, null);
      expect(query.text).toMatch(/^SELECT .* FROM audit_log WHERE .* ORDER BY created DESC, id DESC LIMIT 50\b/s);
      const direct = await db.query<{ id: string }>(query.text, query.params);
      const page = await queryEvents(db, filters, null, LIMIT);
      expect(page.events).toHaveLength(LIMIT);
      expect(page.more).toBe(true);
      expect(direct.map((row) => row.id)).toEqual(page.events.map((event) => event.id));
    });

    for (const depth of ['first page', 'deep page'] as const) {
      it(`reads the ${depth} through an index on audit_log, never a sequential scan`, async () => {
        const all = await allOf(filters);
        // Deep, yet with more than a page left after the cursor.
        const after = depth === 'first page' ? null : await cursorAt(filters, all.length - 2 * LIMIT);
        const plan = await explainPlan(await captureQuery(filters, after), false);
        const nodes = nodesOf(plan);
        const summary = describePlan(plan);
        expect(nodes.some((node) => node['Node Type'] === 'Seq Scan' && node['Relation Name'] === 'audit_log'), summary).toBe(false);
        const indexScans = nodes.filter(
          (node) =>
            ['Index Scan', 'Index Only Scan', 'Bitmap Index Scan'].includes(node['Node Type']) &&
            node['Index Name']?.startsWith('audit_log_'),
        );
        expect(indexScans.length, summary).toBeGreaterThan(0);
        if (after) {
          // The cursor bounds the index range itself instead of filtering rows after the scan.
          expect(indexScans.some((node) => /ROW\(created, id\) </.test(node['Index Cond'] ?? '')), summary).toBe(true);
        }
      });
    }
  });

  it('reads a page deep in a tenant’s time range for the cost of the first page', async () => {
    const [, filters] = COMBINATIONS[0]!;
    const all = await allOf(filters);
    expect(all.length).toBeGreaterThan(1_500);
    const costs = [];
    for (const index of [null, Math.floor(all.length / 2), all.length - 2 * LIMIT]) {
      const after = index === null ? null : await cursorAt(filters, index);
      const plan = await explainPlan(await captureQuery(filters, after), true);
      expect(plan['Actual Rows']).toBe(LIMIT);
      costs.push({ examined: rowsExamined(plan), buffers: buffersOf(plan), summary: describePlan(plan) });
    }
    const [first, ...deeper] = costs;
    for (const cost of costs) expect(cost.examined, cost.summary).toBeLessThanOrEqual(2 * LIMIT);
    for (const cost of deeper) expect(cost.buffers, cost.summary).toBeLessThanOrEqual(3 * first!.buffers);
  });

  it('would see the depth of a page that skipped rows instead of seeking (control)', async () => {
    const [, filters] = COMBINATIONS[0]!;
    const depth = 1_200;
    const query = await captureQuery(filters, null);
    const offsetPage = { ...query, text: query.text.replace(/LIMIT 50\b/, `OFFSET ${depth} LIMIT 50`) };
    expect(rowsExamined(await explainPlan(offsetPage, true))).toBeGreaterThanOrEqual(depth + LIMIT);
  });

  it('walks the whole time range page by page: every event once, in order', async () => {
    const [, filters] = COMBINATIONS[0]!;
    const all = await allOf(filters);
    const walked: string[] = [];
    let after: AuditPosition | null = null;
    for (;;) {
      const { events: page, more } = await queryEvents(db, filters, after, PAGE);
      walked.push(...page.map((event) => event.id));
      if (!more) break;
      const last = page.at(-1)!;
      after = { created: last.created, id: last.id };
    }
    expect(walked).toEqual(all.map((event) => event.id));
    expect(all.every((event) => event.tenant_id === TENANT && event.created >= '2025-03-01' && event.created < '2025-11-01')).toBe(true);
  });
});
