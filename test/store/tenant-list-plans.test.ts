// GET /v1/tenants stays an index scan whatever the filter, at 100,000 tenants: the plans of the
// very statements the route runs (tenantListQuery), first pages and a deep page by cursor.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Queryable } from '../../src/store/database.js';
import { tenantListQuery, type TenantFilters, type TenantPosition } from '../../src/store/tenants.js';
import { eachDriver, openMigratedDatabase, type TestDatabase } from '../support/drivers.js';
import { explain, nodesOf, type PlanNode } from '../support/query-plans.js';
import { DAY_MS, START } from '../support/time.js';

const TENANTS = 100_000;
const NOW = new Date(START);

async function planOf(db: Queryable, filters: TenantFilters, after: TenantPosition | null = null): Promise<PlanNode[]> {
  return nodesOf(await explain(db, tenantListQuery(filters, { after, limit: 51, now: NOW })));
}

eachDriver('tenant list plans at 100,000 tenants', (driver) => {
  let database: TestDatabase;
  let deep: TenantPosition;
  beforeAll(async () => {
    database = await openMigratedDatabase(driver);
    // Spread as a real registry is: mostly active, a tenth in trial (ending over the next month),
    // twenty plans, two hundred sales owners, an ERP id each, a few years of creation times.
    await database.db.query(
      `INSERT INTO tenants (slug, name, status, kind, plan, sales_owner, erp_id, trial_ends_at, created_at)
       SELECT 't-' || g, 'Company ' || g,
              (CASE WHEN g % 10 = 0 THEN 'trial' WHEN g % 17 = 0 THEN 'frozen' WHEN g % 97 = 0 THEN 'demo' ELSE 'active' END)::tenant_status,
              (CASE WHEN g % 97 = 0 THEN 'demo' ELSE 'customer' END)::tenant_kind,
              'plan-' || (g % 20), 'owner-' || (g % 200) || '@sales.example.com', 'ERP-' || g,
              CASE WHEN g % 10 = 0 THEN $1::timestamptz + (g % 30) * interval '1 day' END,
              $1::timestamptz - g * interval '17 minutes'
       FROM generate_series(1, ${TENANTS}) AS g`,
      [NOW],
    );
    await database.db.exec('ANALYZE tenants');
    const [row] = await database.db.query<{ created_micros: string; id: string }>(
      `SELECT (extract(epoch FROM created_at) * 1000000)::bigint::text AS created_micros, id::text
       FROM tenants ORDER BY created_at DESC, id DESC OFFSET 90000 LIMIT 1`,
    );
    deep = { createdMicros: row!.created_micros, id: row!.id };
  }, 300_000);
  afterAll(() => database.close());

  const FILTERS: Array<[string, TenantFilters]> = [
    ['no filter', {}],
    ['status', { status: 'active' }],
    ['status trial (running only)', { status: 'trial' }],
    ['status frozen (trials that ended too)', { status: 'frozen' }],
    ['kind', { kind: 'demo' }],
    ['plan', { plan: 'plan-7' }],
    ['sales owner', { salesOwner: 'owner-42@sales.example.com' }],
    ['ERP id', { erpId: 'ERP-4711' }],
    ['trial ends before', { trialEndsBefore: new Date(NOW.getTime() + 7 * DAY_MS) }],
    ['created after', { createdAfter: new Date(NOW.getTime() - 30 * DAY_MS) }],
    ['created before', { createdBefore: new Date(NOW.getTime() - 300 * DAY_MS) }],
    ['q', { q: 'T-123' }],
    ['q of a name', { q: 'company 99' }],
    ['sales owner and status', { salesOwner: 'owner-42@sales.example.com', status: 'active' }],
  ];

  it.each(FILTERS)('%s: reads tenants through an index, never a sequential scan', async (_name, filters) => {
    for (const after of [null, deep]) {
      const nodes = await planOf(database.db, filters, after);
      const onTenants = nodes.filter((node) => node['Relation Name'] === 'tenants');
      expect(onTenants.length, JSON.stringify(nodes)).toBeGreaterThan(0);
      for (const node of onTenants) expect(node['Node Type'], JSON.stringify(nodes)).toMatch(/^(Index Scan|Index Only Scan|Bitmap Heap Scan)$/);
      expect(nodes.map((node) => node['Node Type'])).not.toContain('Seq Scan');
    }
  });
});
