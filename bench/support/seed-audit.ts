// Seeds the audit log in a few large INSERT ... SELECT statements. Values are derived from the
// row number with multiplicative hashes instead of random(), so every run (and both drivers)
// sees the same distribution: one big tenant holding 10% of the events, the rest skewed over the
// other tenants (a few with tens of thousands of events, the tail with a few hundred).
//
// The rows are shaped like appended ones (chain_key = tenant id, chain_seq = 1..n per tenant in
// created order, millisecond timestamps, as toRecord writes them) but their hash and prev_hash
// are placeholders: SHA-256 of "<tenant>:<seq>", linked to each other, not of the canonical
// form. /v1/audit/verify would report these chains as broken; the benchmark never verifies them.
import type { Database } from '../../src/store/database.js';

export interface SeedOptions {
  events: number;
  tenants: number;
  /** Rows per INSERT statement. */
  batch: number;
  log: (line: string) => void;
}

export interface SeededTenant {
  id: string;
  slug: string;
  events: number;
}

export interface SeedResult {
  seconds: number;
  /** Ordered by slug: index 0 is the big tenant. */
  tenants: SeededTenant[];
}

const positiveInt = (name: string, value: number) => {
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, got ${value}`);
  return value;
};

// Weighted by repetition: reads and logins far outnumber writes, as in a real portal.
const KINDS: readonly [action: string, crud: string, product: string, targetType: string][] = [
  ['user.login', 'r', 'portal', 'user'],
  ['user.login', 'r', 'portal', 'user'],
  ['user.logout', 'r', 'portal', 'user'],
  ['document.viewed', 'r', 'docs', 'document'],
  ['document.viewed', 'r', 'docs', 'document'],
  ['document.viewed', 'r', 'docs', 'document'],
  ['document.created', 'c', 'docs', 'document'],
  ['document.updated', 'u', 'docs', 'document'],
  ['document.deleted', 'd', 'docs', 'document'],
  ['report.exported', 'r', 'analytics', 'report'],
  ['dashboard.viewed', 'r', 'analytics', 'dashboard'],
  ['api_key.created', 'c', 'portal', 'api_key'],
  ['api_key.revoked', 'd', 'portal', 'api_key'],
  ['user.invited', 'c', 'portal', 'user'],
  ['settings.updated', 'u', 'portal', 'settings'],
  ['invoice.paid', 'u', 'billing', 'invoice'],
];

/**
 * A bucket in 0..buckets-1 from the high bits of a multiplicative hash of the row number. The
 * low bits (n * m % buckets) would tie buckets to n's residues, and the big tenant owns every
 * tenth row: it would see only some actions and users.
 */
const pick = (multiplier: number, buckets: number) => `((e.n * ${multiplier}) % 4294967296 * ${buckets} / 4294967296)`;

const literal = (text: string) => `'${text.replace(/'/g, "''")}'`;

/** The identity both placeholder hashes are made of, so prev_hash(n) = hash(n - 1). */
const placeholderHash = (tenant: string, seq: string) =>
  `encode(sha256(convert_to(${tenant} || ':' || ${seq}, 'UTF8')), 'hex')`;

export async function seedAuditLog(db: Database, options: SeedOptions): Promise<SeedResult> {
  const events = positiveInt('events', options.events);
  const tenants = positiveInt('tenants', options.tenants);
  const batch = positiveInt('batch', options.batch);
  if (tenants < 2 || tenants > 99_999) throw new Error('tenants must be between 2 and 99999');
  const started = performance.now();
  const step = async (label: string, run: () => Promise<void>) => {
    const t0 = performance.now();
    await run();
    options.log(`  ${label}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  };

  // Staging tables are ordinary (unlogged) tables, not temporary ones: the pg driver may run each
  // statement on a different pooled connection.
  await step(`${tenants.toLocaleString('en-US')} tenants`, () =>
    db.exec(`
      CREATE UNLOGGED TABLE bench_tenants AS
        SELECT i AS idx, gen_random_uuid() AS id FROM generate_series(0, ${tenants - 1}) AS i;
      INSERT INTO tenants (id, slug, name, status, kind, plan, created_at)
        SELECT id, 'bench-' || lpad(idx::text, 5, '0'), 'Bench Tenant ' || idx,
               (CASE WHEN idx % 10 = 9 THEN 'trial' ELSE 'active' END)::tenant_status, 'customer',
               (ARRAY['starter', 'business', 'enterprise'])[1 + idx % 3], now() - interval '400 days'
          FROM bench_tenants;
      CREATE UNLOGGED TABLE bench_kinds (k int PRIMARY KEY, action text, crud char(1), product text, target_type text);
      INSERT INTO bench_kinds VALUES ${KINDS.map((kind, k) => `(${k}, ${kind.map(literal).join(', ')})`).join(', ')};
    `),
  );

  // Each event's tenant and time, and its position in its tenant's chain; the window function
  // needs all rows at once, the wide rows below are then built batch by batch.
  await step(`positions of ${events.toLocaleString('en-US')} events`, () =>
    db.exec(`
      SET work_mem = '256MB';
      CREATE UNLOGGED TABLE bench_events AS
        SELECT s.n, s.tenant_idx, t.id AS tenant_id, s.created,
               row_number() OVER (PARTITION BY s.tenant_idx ORDER BY s.created, s.n) AS seq
          FROM (SELECT n,
                       CASE WHEN n % 10 = 0 THEN 0
                            ELSE 1 + floor(${tenants - 1} * power(((n * 2654435761) % 4294967296)::float8 / 4294967296, 2))::int
                       END AS tenant_idx,
                       date_trunc('milliseconds', now() - interval '365 days'
                                  + (n - 1) * (interval '365 days' / ${events})
                                  + ((n * 40503) % 1000) * interval '1 millisecond') AS created
                  FROM generate_series(1::bigint, ${events}::bigint) AS n) AS s
          JOIN bench_tenants AS t ON t.idx = s.tenant_idx;
      CREATE INDEX ON bench_events (n);
      RESET work_mem;
    `),
  );

  for (let low = 0; low < events; low += batch) {
    const high = Math.min(events, low + batch);
    await step(`audit_log rows ${(low + 1).toLocaleString('en-US')}..${high.toLocaleString('en-US')}`, () =>
      db.exec(`
        INSERT INTO audit_log (id, chain_key, chain_seq, prev_hash, hash, tenant_id, product, action, crud,
          group_id, group_name, actor_id, actor_name, actor_href, actor_fields,
          target_id, target_name, target_href, target_type, target_fields, source_ip, created, received,
          description, is_failure, is_anonymous, fields, metadata, component, version, external_id)
        SELECT gen_random_uuid(), e.tenant_id::text, e.seq,
               CASE WHEN e.seq > 1 THEN ${placeholderHash('e.tenant_id::text', '(e.seq - 1)')} END,
               ${placeholderHash('e.tenant_id::text', 'e.seq')},
               e.tenant_id, k.product, k.action, k.crud,
               e.tenant_id::text, 'Bench Tenant ' || e.tenant_idx,
               u.actor_id, 'User ' || u.user_no || ' of tenant ' || e.tenant_idx,
               'https://portal.example.com/users/' || u.actor_id,
               CASE WHEN u.user_no = 0 THEN '{"role": "admin"}'::jsonb END,
               k.target_type || '-' || ${pick(668265263, 5000)}, initcap(k.target_type) || ' ' || ${pick(668265263, 5000)},
               NULL, k.target_type, NULL,
               '10.' || (e.tenant_idx % 256) || '.' || (u.user_no * 7 % 256) || '.' || (e.n % 250 + 1),
               e.created, e.created + (e.n * 37 % 2000) * interval '1 millisecond',
               k.action || ' by user ' || u.user_no,
               ${pick(374761393, 50)} = 0, false,
               CASE WHEN k.crud = 'u' THEN jsonb_build_object('changed', k.target_type) END,
               jsonb_build_object('request_id', substr(md5(e.n::text), 1, 16), 'user_agent', 'Mozilla/5.0 (bench)'),
               'portal-api', '1.' || (e.n * 12 / ${events}) || '.0',
               CASE WHEN ${pick(1597334677, 2)} = 0 THEN 'evt-' || e.n END
          FROM bench_events AS e
          JOIN bench_kinds AS k ON k.k = ${pick(2246822519, KINDS.length)}
         CROSS JOIN LATERAL (SELECT x.user_no, 'user-' || e.tenant_idx || '-' || x.user_no AS actor_id
                               FROM (SELECT ${pick(3266489917, 25)}::int AS user_no) AS x) AS u
         WHERE e.n > ${low} AND e.n <= ${high}
         ORDER BY e.n;
      `),
    );
  }

  await step('chain heads, staging tables dropped', () =>
    db.exec(`
      INSERT INTO audit_chains (chain_key, last_seq, last_hash)
        SELECT tenant_id::text, max(seq), ${placeholderHash('tenant_id::text', 'max(seq)')}
          FROM bench_events GROUP BY tenant_id;
      DROP TABLE bench_events, bench_kinds, bench_tenants;
    `),
  );
  // VACUUM cannot run inside a transaction, so each is a statement of its own. It also sets the
  // hint bits and visibility map, as on a table that has lived for a while.
  await step('VACUUM ANALYZE', async () => {
    await db.exec('VACUUM (ANALYZE) audit_log');
    await db.exec('VACUUM (ANALYZE) audit_chains');
    await db.exec('VACUUM (ANALYZE) tenants');
  });

  const seeded = await db.query<SeededTenant>(
    `SELECT t.id, t.slug, c.last_seq AS events
       FROM tenants AS t JOIN audit_chains AS c ON c.chain_key = t.id::text
      WHERE t.slug LIKE 'bench-%' ORDER BY t.slug`,
  );
  return { seconds: (performance.now() - started) / 1000, tenants: seeded };
}
