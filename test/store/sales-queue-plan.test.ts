// One sales owner's queue (GET /v1/catalog/requests?sales_owner=) against a queue of realistic
// size: a page is read through the owner index, never by a sequential scan, and the first page of
// a long queue comes out of it in the list's order, without a sort. The SQL is what listRequests
// sends, captured.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Queryable } from '../../src/store/database.js';
import { listRequests } from '../../src/store/entitlements.js';
import { eachDriver, openMigratedDatabase, type TestDatabase } from '../support/drivers.js';
import { describePlan, explain, nodesOf, type PlanNode } from '../support/query-plans.js';

const TENANTS = 20;
const REQUESTS = 40_000;
const OWNERS = 8;
const OWNER_INDEX = 'product_requests_owner_status_created_idx';

// Request g belongs to tenant g % 20, one every 97 s; a third are open; four in five have one of
// 8 owners, so each owner has some 4,000 requests, 1,300 of them open. Each has its own product code, so the one-open-request-per-product rule holds.
const SEED = `
INSERT INTO tenants (id, slug, name, status)
SELECT ('00000000-0000-4000-8000-' || lpad(t::text, 12, '0'))::uuid, 'queue-' || t, 'Queue ' || t, 'active'
  FROM generate_series(1, ${TENANTS}) AS t;

INSERT INTO product_requests (tenant_id, product, status, sales_owner, created_at, closed_at, closed_reason, closed_by)
SELECT ('00000000-0000-4000-8000-' || lpad((g % ${TENANTS} + 1)::text, 12, '0'))::uuid, 'p' || g,
       CASE WHEN g % 3 = 0 THEN 'open' ELSE 'closed' END::product_request_status,
       CASE WHEN g % 5 = 0 THEN NULL ELSE 'owner-' || (g % ${OWNERS}) END,
       timestamptz '2025-01-01 00:00:00+00' + g * interval '97 seconds',
       CASE WHEN g % 3 = 0 THEN NULL ELSE timestamptz '2026-01-01 00:00:00+00' END,
       CASE WHEN g % 3 = 0 THEN NULL ELSE 'granted' END,
       CASE WHEN g % 3 = 0 THEN NULL ELSE 'olga.operator' END
  FROM generate_series(0, ${REQUESTS - 1}) AS g;

ANALYZE;
`;

type Filters = Parameters<typeof listRequests>[1];
type Position = Parameters<typeof listRequests>[2];

/** The SQL listRequests would run, caught by a Queryable that runs nothing. */
async function captureQuery(filters: Filters, after: Position): Promise<{ text: string; params: unknown[] }> {
  let captured: { text: string; params: unknown[] } | undefined;
  const spy: Queryable = {
    query: async <Row>(text: string, params: readonly unknown[] = []): Promise<Row[]> => {
      captured = { text, params: [...params] };
      return [];
    },
    exec: async () => {},
  };
  await listRequests(spy, filters, after, 51);
  if (!captured) throw new Error('listRequests sent no query');
  return captured;
}

eachDriver('sales queue query plans', (driver) => {
  let database: TestDatabase;
  let db: Queryable;
  beforeAll(async () => {
    database = await openMigratedDatabase(driver);
    db = database.db;
    await db.exec(SEED);
  });
  afterAll(() => database.close());

  async function plan(filters: Filters, after: Position): Promise<PlanNode> {
    return explain(db, await captureQuery(filters, after));
  }

  describe.each([
    ['open', { status: 'open', salesOwner: 'owner-7' }],
    ['closed', { status: 'closed', salesOwner: 'owner-7' }],
  ] as const)("one owner's %s requests", (_name, filters) => {
    it('finds what the index promises: the owner’s requests of that status, oldest first', async () => {
      const rows = await listRequests(db, filters, null, 5_000);
      expect(rows.length).toBeGreaterThan(1_000);
      expect(rows.every((row) => row.sales_owner === 'owner-7' && row.status === filters.status)).toBe(true);
      const order = rows.map((row) => `${row.created_at.toISOString()} ${row.id}`);
      expect(order).toEqual([...order].sort());
    });

    it('reads the first page in index order: no sequential scan, no sort', async () => {
      const tree = await plan(filters, null);
      const nodes = nodesOf(tree);
      const summary = describePlan(tree);
      expect(nodes.some((node) => node['Node Type'] === 'Seq Scan'), summary).toBe(false);
      expect(nodes.some((node) => node['Node Type'] === 'Sort'), summary).toBe(false);
      expect(nodes.some((node) => node['Index Name'] === OWNER_INDEX), summary).toBe(true);
    });

    it('reads a deep page through the owner index too', async () => {
      const rows = await listRequests(db, filters, null, 5_000);
      const deep = rows.at(-60)!;
      const tree = await plan(filters, { created: deep.created_at.toISOString(), id: deep.id });
      const summary = describePlan(tree);
      expect(nodesOf(tree).some((node) => node['Node Type'] === 'Seq Scan'), summary).toBe(false);
      expect(nodesOf(tree).some((node) => node['Index Name'] === OWNER_INDEX), summary).toBe(true);
    });
  });
});
