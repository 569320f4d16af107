// Several replicas on one PostgreSQL database, as production runs them: two service processes
// started from the same configuration on one migrated database. Races that only a shared database
// can settle are run across both (one slug, one trial), two migrators run at once on an empty
// database, and a key revoked on one replica must stop verifying on the other within a second,
// although the other had it cached.
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrations } from '../../src/store/migration-files.js';
import { devToken, PROCESS_WAIT_MS, runMigrate, startService, stopAll, type CommandResult, type ServiceProcess } from '../process/spawn.js';
import { until } from '../support/until.js';
import { DRIVERS } from '../support/drivers.js';
import { randomSlug } from '../support/factories.js';
import { call, type Answer } from '../support/http.js';
import { createTestPgDatabase, type TestPgDatabase } from '../support/postgres.js';
import { recordFigures, type Figure } from './figures.js';

// Requests per race, split evenly across the two replicas.
const RACERS = 40;
// The README's promise: a change reaches every replica within a second.
const PROPAGATION_LIMIT_MS = 1_000;
const REVOCATION_ROUNDS = 5;
// How long a revocation is watched for before giving up (well past the limit, to measure it).
const WATCH_MS = 3_000;
// The advisory lock every migration transaction takes first (MIGRATION_LOCK_KEY of
// src/store/migrator.ts, "tenreg" in hex).
const MIGRATION_LOCK_KEY = 0x74656e726567;


interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
}

interface Replica {
  name: string;
  service: ServiceProcess;
  admin: string;
  serviceAccount: string;
}

const on = <T = unknown>(replica: Replica, method: string, path: string, body?: unknown) =>
  call<T>(replica.service.baseUrl, method, path, body === undefined ? {} : { body }, replica.admin);

const verifyOn = (replica: Replica, key: string) =>
  call<{ valid: boolean; code: string }>(replica.service.baseUrl, 'POST', '/v1/internal/api-keys/verify', { body: { key } }, replica.serviceAccount);

async function cacheHits(replica: Replica): Promise<number> {
  const response = await fetch(`${replica.service.baseUrl}/metrics`);
  const text = await response.text();
  const match = /^tenant_registry_key_cache_lookups\{result="hit"\} (\d+)$/m.exec(text);
  if (!match) throw new Error(`no key cache hit count in /metrics of ${replica.name}`);
  return Number(match[1]);
}

/** Counts answers by status and problem code, e.g. {"201": 1, "409 slug_taken": 39}. */
function tally(answers: Array<Answer<unknown>>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const answer of answers) {
    const code = answer.status >= 400 ? ` ${(answer.body as Problem | null)?.code ?? '?'}` : '';
    const label = `${answer.status}${code}`;
    counts[label] = (counts[label] ?? 0) + 1;
  }
  return counts;
}

// PostgreSQL only: skipped under TEST_DRIVERS=pglite (make test-short), like every [pg] test.
describe.runIf(DRIVERS.includes('pg'))('several replicas on one PostgreSQL database', () => {
  let database: TestPgDatabase;
  let sql: pg.Client;
  let a: Replica;
  let b: Replica;
  const extraDatabases: TestPgDatabase[] = [];
  const figures = {
    slugRace: null as Record<string, number> | null,
    trialRace: null as Record<string, number> | null,
    migrators: null as { applied: number[][]; ms: number } | null,
    revocations: [] as number[],
  };

  const startReplica = async (name: string): Promise<Replica> => {
    const service = await startService({
      APP_ENV: 'dev',
      DATABASE_URL: database.url,
      // Tokens come from each replica's development issuer, on this throwaway database.
      DEV_ISSUER_WITH_DATABASE: 'true',
      DB_POOL_SIZE: '8',
      RATE_LIMIT_PER_MINUTE: '999999999',
      RATE_LIMIT_INTERNAL_PER_MINUTE: '999999999',
      TRIAL_EXPIRY_INTERVAL_SECONDS: '0',
    });
    // Each replica runs its own development issuer: its tokens are good on it alone.
    return {
      name,
      service,
      admin: await devToken(service.baseUrl, ['platform_admin']),
      serviceAccount: await devToken(service.baseUrl, ['registry_service']),
    };
  };

  beforeAll(async () => {
    database = await createTestPgDatabase();
    const migrated = await runMigrate(['up'], { DATABASE_URL: database.url });
    expect(migrated.code, migrated.stderr).toBe(0);
    [a, b] = await Promise.all([startReplica('A'), startReplica('B')]);
    sql = new pg.Client({ connectionString: database.url });
    await sql.connect();
  });

  afterAll(async () => {
    await stopAll();
    await sql?.end();
    await database?.drop();
    for (const extra of extraDatabases) await extra.drop();
    const worst = figures.revocations.length > 0 ? Math.max(...figures.revocations) : null;
    // Figures only from a complete run: a half-run would read as a result.
    if (figures.slugRace && figures.trialRace && figures.migrators && worst !== null) {
      const list: Figure[] = [
        { label: 'replicas on one database', value: 2 },
        { label: 'concurrent POST /v1/tenants with one slug', value: RACERS },
        { label: 'tenants created (201)', value: figures.slugRace['201'] ?? 0 },
        { label: 'refused 409 slug_taken', value: figures.slugRace['409 slug_taken'] ?? 0 },
        { label: 'concurrent trial requests for one tenant and product', value: RACERS },
        { label: 'trials started (201)', value: figures.trialRace['201'] ?? 0 },
        { label: 'refused 409 trial_used', value: figures.trialRace['409 trial_used'] ?? 0 },
        { label: 'migrators run at once', value: 2 },
        { label: 'migrations applied by each migrator', value: figures.migrators.applied.map((v) => v.length).join(' + ') },
        { label: 'both migrators done, from their start (ms)', value: Math.round(figures.migrators.ms) },
        { label: 'revocations on replica A watched on replica B', value: figures.revocations.length },
        { label: 'worst time until B answers REVOKED (ms)', value: Math.round(worst) },
        {
          label: 'median time until B answers REVOKED (ms)',
          value: Math.round([...figures.revocations].sort((x, y) => x - y)[Math.floor(figures.revocations.length / 2)]!),
        },
      ];
      recordFigures(
        'several replicas [pg]',
        'Two service processes on one PostgreSQL database: one slug and one trial raced across both, two migrators at once on an empty database, and keys revoked on one replica while cached on the other.',
        list,
      );
    }
  });

  it('one slug created concurrently on both replicas: exactly one 201, every other answer 409 slug_taken, one row, one audit event', async () => {
    const slug = randomSlug('race');
    const answers = await Promise.all(
      Array.from({ length: RACERS }, (_, i) => on<{ tenant: { id: string; slug: string } }>(i % 2 === 0 ? a : b, 'POST', '/v1/tenants', { slug, name: `Race ${i}` })),
    );
    figures.slugRace = tally(answers);

    expect(figures.slugRace).toEqual({ '201': 1, '409 slug_taken': RACERS - 1 });
    for (const refused of answers.filter((answer) => answer.status === 409)) {
      expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(refused.body).toMatchObject({ status: 409, code: 'slug_taken' });
    }
    const winner = answers.find((answer) => answer.status === 201)!.body.tenant;
    expect(winner.slug).toBe(slug);

    const rows = await sql.query<{ id: string }>('SELECT id FROM tenants WHERE slug = $1', [slug]);
    expect(rows.rows).toEqual([{ id: winner.id }]);
    const events = await sql.query<{ tenant_id: string }>(
      "SELECT tenant_id FROM audit_log WHERE action = 'tenant.created' AND target_name = $1",
      [slug],
    );
    expect(events.rows).toEqual([{ tenant_id: winner.id }]);
    // Nothing of a losing request survives anywhere: every tenant.created event has its tenant.
    const orphans = await sql.query(
      "SELECT 1 FROM audit_log WHERE action = 'tenant.created' AND (tenant_id IS NULL OR tenant_id NOT IN (SELECT id FROM tenants))",
    );
    expect(orphans.rowCount).toBe(0);
    // Both replicas see the one tenant.
    for (const replica of [a, b]) {
      const found = await on<{ id: string }>(replica, 'GET', `/v1/tenants/by-slug/${slug}`);
      expect(found.status).toBe(200);
      expect(found.body.id).toBe(winner.id);
    }
  });

  it('one trial requested concurrently on both replicas: exactly one 201, the others 409 trial_used, one entitlement row', async () => {
    const created = await on<{ tenant: { id: string } }>(a, 'POST', '/v1/tenants', { slug: randomSlug('trial'), name: 'Trial race' });
    expect(created.status).toBe(201);
    const tenantId = created.body.tenant.id;
    const product = 'risk';

    const answers = await Promise.all(
      Array.from({ length: RACERS }, (_, i) => on<{ product: string; status: string }>(i % 2 === 0 ? a : b, 'POST', '/v1/catalog/trial-request', { tenant_id: tenantId, product })),
    );
    figures.trialRace = tally(answers);

    expect(figures.trialRace).toEqual({ '201': 1, '409 trial_used': RACERS - 1 });
    for (const refused of answers.filter((answer) => answer.status === 409)) {
      expect(refused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
    expect(answers.find((answer) => answer.status === 201)!.body).toMatchObject({ product, status: 'trial' });

    const rows = await sql.query<{ product: string; trial_started_at: Date | null }>(
      'SELECT product, trial_started_at FROM tenant_products WHERE tenant_id = $1',
      [tenantId],
    );
    expect(rows.rows).toHaveLength(1);
    expect(rows.rows[0]!.product).toBe(product);
    expect(rows.rows[0]!.trial_started_at).not.toBeNull();
    const events = await sql.query("SELECT 1 FROM audit_log WHERE tenant_id = $1 AND action = 'entitlement.trial_started'", [tenantId]);
    expect(events.rowCount).toBe(1);
  });

  it('two `migrate up` at once on an empty database: both exit 0 and each migration is applied exactly once', async () => {
    const fresh = await createTestPgDatabase();
    extraDatabases.push(fresh);
    const migrations = await loadMigrations();
    expect(migrations.length).toBeGreaterThan(1);

    // Started together, one migrator could finish before the other has even booted. Holding the
    // migrators' advisory lock until both wait on it makes them really run at the same time.
    const holder = new pg.Client({ connectionString: fresh.url });
    await holder.connect();
    let runs: CommandResult[];
    let ms: number;
    try {
      await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
      const started = performance.now();
      const running = Promise.all([runMigrate(['up'], { DATABASE_URL: fresh.url }), runMigrate(['up'], { DATABASE_URL: fresh.url })]);
      let waiting = 0;
      const deadline = performance.now() + PROCESS_WAIT_MS;
      while (waiting < 2) {
        if (performance.now() > deadline) throw new Error(`only ${waiting} migrator(s) waited on the migration lock within ${PROCESS_WAIT_MS} ms`);
        await sleep(20);
        const locks = await holder.query<{ waiting: string }>(
          "SELECT count(*) AS waiting FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        );
        waiting = Number(locks.rows[0]!.waiting);
      }
      await holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
      runs = await running;
      ms = performance.now() - started;
    } finally {
      await holder.end();
    }
    for (const run of runs) expect(run.code, run.stderr).toBe(0);

    // Each run prints what it applied; together they applied everything, and nothing twice.
    const applied = runs.map((run) => [...run.stdout.matchAll(/^applied (\d{4})_/gm)].map((m) => Number(m[1])));
    figures.migrators = { applied, ms };
    const all = applied.flat().sort((x, y) => x - y);
    expect(all).toEqual(migrations.map((m) => m.version));

    const client = new pg.Client({ connectionString: fresh.url });
    await client.connect();
    try {
      const ledger = await client.query<{ version: number; name: string }>('SELECT version, name FROM schema_migrations ORDER BY version');
      expect(ledger.rows).toEqual(migrations.map((m) => ({ version: m.version, name: m.name })));
      // The schema the migrations make is there once: a replica could start on it.
      const tables = await client.query<{ name: string }>(
        "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('tenants', 'api_keys', 'audit_log', 'cache_invalidations')",
      );
      expect(tables.rows.map((row) => row.name).sort()).toEqual(['api_keys', 'audit_log', 'cache_invalidations', 'tenants']);
    } finally {
      await client.end();
    }
    const version = await runMigrate(['version'], { DATABASE_URL: fresh.url });
    expect(version.code).toBe(0);
    expect(version.stdout).toContain('0 pending');
  });

  it(`a key revoked on replica A answers REVOKED on replica B, which had it cached, within ${PROPAGATION_LIMIT_MS} ms (${REVOCATION_ROUNDS} rounds)`, async () => {
    const created = await on<{ tenant: { id: string } }>(a, 'POST', '/v1/tenants', { slug: randomSlug('revoke'), name: 'Revocations' });
    expect(created.status).toBe(201);
    const tenantId = created.body.tenant.id;

    for (let round = 0; round < REVOCATION_ROUNDS; round++) {
      const issued = await on<{ id: string; key: string }>(a, 'POST', '/v1/api-keys', { tenant_id: tenantId, name: `round ${round}` });
      expect(issued.status).toBe(201);
      const { id, key } = issued.body;

      // Cached on both: the first verify loads the facts, a later one is answered from the cache.
      // The key's creation is itself an invalidation, which B may hear only after its first load
      // (a NOTIFY is delivered when B reads it, on a busy machine later): then the next verify
      // loads again, and the one after it is the hit.
      for (const replica of [a, b]) expect((await verifyOn(replica, key)).body).toMatchObject({ valid: true, code: 'VALID' });
      await until(
        async () => {
          const hitsBefore = await cacheHits(b);
          expect((await verifyOn(b, key)).body).toMatchObject({ valid: true, code: 'VALID' });
          return (await cacheHits(b)) === hitsBefore + 1;
        },
        'replica B to answer the key from its cache',
        WATCH_MS,
      );

      const revoked = await on(a, 'DELETE', `/v1/api-keys/${id}`);
      expect(revoked.status).toBe(204);
      const revokedAt = performance.now();
      // The replica that made the change knows at once.
      expect((await verifyOn(a, key)).body).toMatchObject({ valid: false, code: 'REVOKED' });

      let latency: number | null = null;
      let last = '';
      while (performance.now() - revokedAt < WATCH_MS) {
        const answer = await verifyOn(b, key);
        expect(answer.status).toBe(200);
        last = answer.body.code;
        if (last === 'REVOKED') {
          latency = performance.now() - revokedAt;
          break;
        }
        expect(last).toBe('VALID');
        await sleep(5);
      }
      expect(latency, `replica B still answered ${last} ${WATCH_MS} ms after the revocation`).not.toBeNull();
      figures.revocations.push(latency!);
    }
    expect(Math.max(...figures.revocations)).toBeLessThan(PROPAGATION_LIMIT_MS);
  });
});
