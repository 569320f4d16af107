import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SLUG_PATTERN } from '../../src/domain/slug.js';
import type { Database, Queryable } from '../../src/store/database.js';
import { loadMigrations, type Migration } from '../../src/store/migration-files.js';
import { migrateDown, migrateUp, migrationStatus } from '../../src/store/migrator.js';
import { openPg } from '../../src/store/pg-driver.js';
import { entryArgs, PROJECT_DIR } from '../process/spawn.js';
import { DRIVERS, eachDriver, openEmptyDatabase, openMigratedDatabase, type TestDatabase } from '../support/drivers.js';
import { createTestPgDatabase, type TestPgDatabase } from '../support/postgres.js';

// What 0001 creates (the original service's schema), then what later migrations add to it.
const SCHEMA_TABLES = ['api_keys', 'audit_log', 'tenant_idp_config', 'tenant_products', 'tenant_projects', 'tenants'];
const LATER_TABLES = [
  'audit_chains',
  'cache_invalidations',
  'change_event_heads',
  'change_events',
  'feed_consumers',
  'idempotency_keys',
  'keycloak_sync',
  'product_requests',
  'tenant_admins',
  'webhook_deliveries',
  'webhooks',
];
const LATER_ENUMS = ['entitlement_status', 'keycloak_provisioning', 'product_request_status'];
const SCHEMA_ENUMS = ['idp_kind', 'tenant_kind', 'tenant_project_status', 'tenant_status'];

const migrations = await loadMigrations();
const allVersions = migrations.map((migration) => migration.version);
const newest = migrations.at(-1)!;
const label = (migration: Migration) => `${String(migration.version).padStart(4, '0')}_${migration.name}`;

async function publicTables(db: Queryable): Promise<string[]> {
  const rows = await db.query<{ table_name: string }>(
    `SELECT table_name FROM information_schema.tables
     WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`,
  );
  return rows.map((row) => row.table_name);
}

async function publicTypes(db: Queryable, onlyEnums: boolean): Promise<string[]> {
  const rows = await db.query<{ typname: string }>(
    `SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname = 'public' AND ($1::boolean IS FALSE OR t.typtype = 'e') ORDER BY t.typname`,
    [onlyEnums],
  );
  return rows.map((row) => row.typname);
}

async function publicFunctions(db: Queryable): Promise<string[]> {
  const rows = await db.query<{ proname: string }>(
    `SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = 'public' ORDER BY p.proname`,
  );
  return rows.map((row) => row.proname);
}

/** Every ledger row's version, duplicates included, so a double application would show. */
async function ledger(db: Queryable): Promise<number[]> {
  const rows = await db.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
  return rows.map((row) => row.version);
}

async function relationExists(db: Queryable, name: string): Promise<boolean> {
  const [row] = await db.query<{ present: boolean }>('SELECT to_regclass($1) IS NOT NULL AS present', [name]);
  return row?.present === true;
}

eachDriver('migrations round trip', (driver) => {
  // The steps share one database and run in the order written: each starts where the last ended.
  let database: TestDatabase;
  let db: Database;
  beforeAll(async () => {
    database = await openEmptyDatabase(driver);
    db = database.db;
  });
  afterAll(() => database.close());

  it('reports every migration pending on an empty database without creating the ledger', async () => {
    const status = await migrationStatus(db, migrations);
    expect(status).toEqual({ current: 0, applied: [], pending: migrations });
    expect(await publicTables(db)).toEqual([]);
  });

  it('0001 creates exactly the six tables and four enums', async () => {
    expect(await migrateUp(db, migrations.slice(0, 1))).toEqual([1]);
    expect(await publicTables(db)).toEqual([...SCHEMA_TABLES, 'schema_migrations'].sort());
    expect(await publicTypes(db, true)).toEqual(SCHEMA_ENUMS);
    expect(await ledger(db)).toEqual([1]);
  });

  it('migrateUp applies the rest and records every version', async () => {
    expect(await migrateUp(db, migrations)).toEqual(allVersions.slice(1));
    expect(await publicTables(db)).toEqual([...SCHEMA_TABLES, ...LATER_TABLES, 'schema_migrations'].sort());
    expect(await publicTypes(db, true)).toEqual([...SCHEMA_ENUMS, ...LATER_ENUMS].sort());
    expect(await ledger(db)).toEqual(allVersions);
    expect(await migrationStatus(db, migrations)).toEqual({ current: newest.version, applied: allVersions, pending: [] });
  });

  it('a second migrateUp applies nothing', async () => {
    expect(await migrateUp(db, migrations)).toEqual([]);
    expect(await ledger(db)).toEqual(allVersions);
  });

  it('migrateDown over every version leaves only the empty ledger', async () => {
    expect(await migrateDown(db, migrations, Number.POSITIVE_INFINITY)).toEqual([...allVersions].reverse());
    expect(await publicTables(db)).toEqual(['schema_migrations']);
    expect(await publicTypes(db, true)).toEqual([]);
    // Only the ledger's own row type and its array type may be left in the schema.
    expect(await publicTypes(db, false)).toEqual(['_schema_migrations', 'schema_migrations']);
    expect(await publicFunctions(db)).toEqual([]);
    expect(await ledger(db)).toEqual([]);
    expect(await migrationStatus(db, migrations)).toEqual({ current: 0, applied: [], pending: migrations });
    expect(await migrateDown(db, migrations, Number.POSITIVE_INFINITY)).toEqual([]);
  });

  it('migrateUp after a full migrateDown builds the schema again', async () => {
    expect(await migrateUp(db, migrations)).toEqual(allVersions);
    expect(await publicTables(db)).toEqual([...SCHEMA_TABLES, ...LATER_TABLES, 'schema_migrations'].sort());
    expect(await publicTypes(db, true)).toEqual([...SCHEMA_ENUMS, ...LATER_ENUMS].sort());
    expect(await migrationStatus(db, migrations)).toMatchObject({ current: newest.version, pending: [] });
  });

  it('a migration that fails part-way leaves neither its changes nor a ledger row', async () => {
    const broken: Migration = {
      version: newest.version + 1,
      name: 'broken',
      up: 'CREATE TABLE half_done (id integer); SELECT 1 / 0;',
      down: 'DROP TABLE half_done;',
    };
    await expect(migrateUp(db, [...migrations, broken])).rejects.toThrow(/division by zero/);
    expect(await relationExists(db, 'half_done')).toBe(false);
    expect(await ledger(db)).toEqual(allVersions);
    expect((await migrationStatus(db, [...migrations, broken])).pending).toEqual([broken]);
  });
});

eachDriver('schema behaviour', (driver) => {
  let database: TestDatabase;
  let db: Database;
  beforeAll(async () => {
    database = await openMigratedDatabase(driver);
    db = database.db;
  });
  afterAll(() => database.close());

  async function insertTenant(slug: string, extraColumns = '', extraValues: unknown[] = []): Promise<string> {
    const placeholders = extraValues.map((_, index) => `, $${index + 3}`).join('');
    const [row] = await db.query<{ id: string }>(
      `INSERT INTO tenants (slug, name, status${extraColumns}) VALUES ($1, $2, 'active'${placeholders}) RETURNING id`,
      [slug, `Tenant ${slug}`, ...extraValues],
    );
    return row!.id;
  }

  async function giveTenantOneOfEverything(tenantId: string, tag: string): Promise<string> {
    await db.query(`INSERT INTO tenant_projects (tenant_id, slug, name) VALUES ($1, 'main', 'Main')`, [tenantId]);
    await db.query(`INSERT INTO tenant_products (tenant_id, product, config) VALUES ($1, 'tasks', '{"seats": 5}')`, [tenantId]);
    await db.query(`INSERT INTO tenant_idp_config (tenant_id, kind) VALUES ($1, 'oidc')`, [tenantId]);
    await db.query(
      `INSERT INTO api_keys (tenant_id, name, key_hash, prefix) VALUES ($1, 'ci', sha256(convert_to($2, 'UTF8')), 'tr_')`,
      [tenantId, tag],
    );
    const [audit] = await db.query<{ id: string }>(
      `INSERT INTO audit_log (tenant_id, chain_key, chain_seq, action, crud, source_ip)
       VALUES ($1::uuid, $1::text, 1, 'tenant.create', 'c', '127.0.0.1')
       RETURNING id`,
      [tenantId],
    );
    return audit!.id;
  }

  async function ownedRowCounts(tenantId: string): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (const table of ['tenant_projects', 'tenant_products', 'tenant_idp_config', 'api_keys', 'audit_log']) {
      const [row] = await db.query<{ n: number }>(`SELECT count(*) AS n FROM ${table} WHERE tenant_id = $1`, [tenantId]);
      counts[table] = row!.n;
    }
    return counts;
  }

  it('deleting a tenant cascades to its rows and keeps its audit history with tenant_id NULL', async () => {
    const doomed = await insertTenant('doomed');
    const bystander = await insertTenant('bystander');
    const auditId = await giveTenantOneOfEverything(doomed, 'doomed');
    await giveTenantOneOfEverything(bystander, 'bystander');
    const everything = { tenant_projects: 1, tenant_products: 1, tenant_idp_config: 1, api_keys: 1, audit_log: 1 };
    expect(await ownedRowCounts(doomed)).toEqual(everything);

    await db.query('DELETE FROM tenants WHERE id = $1', [doomed]);

    expect(await ownedRowCounts(doomed)).toEqual({
      tenant_projects: 0,
      tenant_products: 0,
      tenant_idp_config: 0,
      api_keys: 0,
      audit_log: 0,
    });
    const audit = await db.query<{ tenant_id: string | null; action: string }>(
      'SELECT tenant_id, action FROM audit_log WHERE id = $1',
      [auditId],
    );
    expect(audit).toEqual([{ tenant_id: null, action: 'tenant.create' }]);
    expect(await ownedRowCounts(bystander)).toEqual(everything);
  });

  it('an UPDATE moves updated_at to now, even when the writer sets it to something else', async () => {
    const old = new Date('2000-01-01T00:00:00Z');
    // An INSERT does not fire the BEFORE UPDATE trigger, so the old timestamp sticks.
    const id = await insertTenant('stale', ', created_at, updated_at', [old, old]);
    await db.query(`INSERT INTO tenant_projects (tenant_id, slug, name, updated_at) VALUES ($1, 'proj', 'Proj', $2)`, [id, old]);
    await db.query(`INSERT INTO tenant_products (tenant_id, product, updated_at) VALUES ($1, 'docs', $2)`, [id, old]);
    await db.query(`INSERT INTO tenant_idp_config (tenant_id, kind, updated_at) VALUES ($1, 'saml', $2)`, [id, old]);
    const before = Date.now();

    await db.query(`UPDATE tenants SET name = 'Renamed' WHERE id = $1`, [id]);
    await db.query(`UPDATE tenant_projects SET name = 'Renamed', updated_at = $2 WHERE tenant_id = $1`, [id, old]);
    await db.query(`UPDATE tenant_products SET config = '{"x": 1}' WHERE tenant_id = $1`, [id]);
    await db.query(`UPDATE tenant_idp_config SET verified = true WHERE tenant_id = $1`, [id]);

    for (const table of ['tenants', 'tenant_projects', 'tenant_products', 'tenant_idp_config']) {
      const key = table === 'tenants' ? 'id' : 'tenant_id';
      const [row] = await db.query<{ created_at: Date; updated_at: Date }>(
        `SELECT created_at, updated_at FROM ${table} WHERE ${key} = $1`,
        [id],
      );
      // A minute of slack for clock reads taken on either side of the server.
      expect(row!.updated_at.getTime(), table).toBeGreaterThan(before - 60_000);
      expect(row!.created_at.getTime() < row!.updated_at.getTime(), table).toBe(true);
    }
  });

  const slugCases: { why: string; slug: string; accepted: boolean }[] = [
    { why: 'too short', slug: 'ab', accepted: false },
    { why: 'leading dash', slug: '-abc', accepted: false },
    { why: 'trailing dash', slug: 'abc-', accepted: false },
    { why: 'uppercase', slug: 'Acme', accepted: false },
    { why: 'underscore', slug: 'ac_me', accepted: false },
    { why: '41 characters', slug: 'a'.repeat(41), accepted: false },
    { why: 'three characters', slug: 'abc', accepted: true },
    { why: 'an inner dash', slug: 'a-b', accepted: true },
    { why: '40 characters', slug: 'b'.repeat(40), accepted: true },
  ];

  it.each(slugCases)('slug check: $why is accepted=$accepted by the database and SLUG_PATTERN', async ({ slug, accepted }) => {
    let failure: unknown;
    try {
      await insertTenant(slug);
    } catch (error) {
      failure = error;
    }
    if (accepted) {
      expect(failure).toBeUndefined();
    } else {
      expect(failure).toMatchObject({ code: '23514', constraint: 'tenants_slug_format' });
    }
    expect(new RegExp(SLUG_PATTERN).test(slug)).toBe(accepted);
  });

  it('the slug CHECK constraint is written with SLUG_PATTERN', async () => {
    const [row] = await db.query<{ definition: string }>(
      `SELECT pg_get_constraintdef(oid) AS definition FROM pg_constraint WHERE conname = 'tenants_slug_format'`,
    );
    expect(row?.definition).toContain(`'${SLUG_PATTERN}'`);
  });
});

const withPg = DRIVERS.includes('pg');

describe.skipIf(!withPg)('concurrent migrators on real PostgreSQL', () => {
  async function raceTwoPools(set: Migration[]): Promise<{ reported: number[][]; ledger: number[]; tables: string[] }> {
    const target = await createTestPgDatabase();
    const first = openPg({ url: target.url, poolSize: 2 });
    const second = openPg({ url: target.url, poolSize: 2 });
    try {
      const reported = await Promise.all([migrateUp(first, set), migrateUp(second, set)]);
      return { reported, ledger: await ledger(first), tables: await publicTables(first) };
    } finally {
      await Promise.all([first.close(), second.close()]);
      await target.drop();
    }
  }

  function expectAppliedOnceOverall(reported: number[][], versions: number[]): void {
    const union = reported.flat().sort((a, b) => a - b);
    expect(union).toEqual(versions);
  }

  it('two pools running migrateUp at once apply each version exactly once between them', async () => {
    const { reported, ledger: rows } = await raceTwoPools(migrations);
    expect(rows).toEqual(allVersions);
    expectAppliedOnceOverall(reported, allVersions);
  });

  it('stays exactly-once over many versions, where the two runs interleave', async () => {
    // No IF NOT EXISTS: a version applied twice would fail the second CREATE TABLE.
    const extra: Migration[] = [2, 3, 4, 5, 6].map((offset) => {
      const version = newest.version + offset - 1;
      return {
        version,
        name: `probe_${version}`,
        up: `SELECT pg_sleep(0.02); CREATE TABLE probe_${version} (id integer);`,
        down: `DROP TABLE probe_${version};`,
      };
    });
    const set = [...migrations, ...extra];
    const versions = set.map((migration) => migration.version);
    const { reported, ledger: rows, tables } = await raceTwoPools(set);
    expect(rows).toEqual(versions);
    expectAppliedOnceOverall(reported, versions);
    for (const migration of extra) expect(tables).toContain(migration.name);
  });
});


interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], databaseUrl: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...entryArgs('src/cli/migrate.ts'), ...args], {
      cwd: PROJECT_DIR,
      // A minimal environment, so nothing from the test runner (EMBEDDED_DB_DIR, LOG_LEVEL...) leaks in.
      env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: databaseUrl, APP_ENV: 'dev' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.skipIf(!withPg)('the migrate command on real PostgreSQL', () => {
  // The steps share one database and run in the order written.
  let target: TestPgDatabase;
  beforeAll(async () => {
    target = await createTestPgDatabase();
  });
  afterAll(() => target.drop());

  async function ledgerOf(url: string): Promise<number[]> {
    const db = openPg({ url, poolSize: 1 });
    try {
      return await ledger(db);
    } finally {
      await db.close();
    }
  }

  it('two `migrate up` processes started at once both exit 0 and apply each version once', async () => {
    const results = await Promise.all([runCli(['up'], target.url), runCli(['up'], target.url)]);
    for (const result of results) {
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
    }
    expect(await ledgerOf(target.url)).toEqual(allVersions);
    const appliedLines = results
      .flatMap((result) => result.stdout.split('\n'))
      .filter((line) => line.startsWith('applied '))
      .sort();
    expect(appliedLines).toEqual(migrations.map((migration) => `applied ${label(migration)}`));
  });

  it('`migrate version` prints the current version and 0 pending', async () => {
    const result = await runCli(['version'], target.url);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(`version ${newest.version} (${label(newest)}); 0 pending\n`);
  });

  it('`migrate down` reverts the newest version, which `version` then lists as pending', async () => {
    const down = await runCli(['down'], target.url);
    expect(down.code).toBe(0);
    expect(down.stdout).toBe(`reverted ${label(newest)}\n`);
    expect(await ledgerOf(target.url)).toEqual(allVersions.slice(0, -1));

    const version = await runCli(['version'], target.url);
    expect(version.code).toBe(0);
    const lines = version.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/; 1 pending$/);
    expect(lines.slice(1)).toEqual([`pending ${label(newest)}`]);
  });

  it('an unreachable database fails with one line on stderr starting with migrate:', async () => {
    const result = await runCli(['up'], 'postgres://postgres@127.0.0.1:1/x');
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^migrate: [^\n]+\n$/);
  });

  it('an unknown command fails with the usage line', async () => {
    const result = await runCli(['bogus'], target.url);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/^migrate: usage: [^\n]+\n$/);
  });
});
