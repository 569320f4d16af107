// Applies and reverts migrations. Each migration runs in its own transaction (PostgreSQL DDL is
// transactional, so a failed migration leaves nothing behind and no "dirty" state) and each
// transaction first takes one advisory lock: two migrators started at once (two init containers,
// two replicas) queue on the lock, and the second finds the work already done.
import type { Database, Queryable } from './database.js';
import type { Migration } from './migration-files.js';

// Any constant shared by every copy of this service works; this one spells "tenreg" in hex.
const MIGRATION_LOCK_KEY = 0x74656e726567;

const CREATE_LEDGER = `
  CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
  )`;

export interface MigrationStatus {
  /** Highest applied version, 0 when none. */
  current: number;
  applied: number[];
  pending: Migration[];
}

async function lockedLedger(tx: Queryable): Promise<number[]> {
  // The ledger must be read after the lock is granted, as it is then; a server configured for
  // repeatable read by default would otherwise show the ledger from before the wait.
  await tx.query('SET TRANSACTION ISOLATION LEVEL READ COMMITTED');
  await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
  await tx.query(CREATE_LEDGER);
  const rows = await tx.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
  return rows.map((row) => row.version);
}

async function ledgerIfPresent(db: Queryable): Promise<number[]> {
  const [exists] = await db.query<{ present: boolean }>(
    "SELECT to_regclass('schema_migrations') IS NOT NULL AS present",
  );
  if (!exists?.present) return [];
  const rows = await db.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
  return rows.map((row) => row.version);
}

/** Reads where the database stands without changing anything (no ledger is created). */
export async function migrationStatus(db: Database, migrations: Migration[]): Promise<MigrationStatus> {
  const applied = await ledgerIfPresent(db);
  const done = new Set(applied);
  return {
    current: applied.at(-1) ?? 0,
    applied,
    pending: migrations.filter((migration) => !done.has(migration.version)),
  };
}

/** Applies every pending migration in order; returns the versions this call applied. */
export async function migrateUp(db: Database, migrations: Migration[]): Promise<number[]> {
  const appliedNow: number[] = [];
  for (const migration of migrations) {
    const applied = await db.transaction(async (tx) => {
      const done = await lockedLedger(tx);
      if (done.includes(migration.version)) return false;
      await tx.exec(migration.up);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [
        migration.version,
        migration.name,
      ]);
      return true;
    });
    if (applied) appliedNow.push(migration.version);
  }
  return appliedNow;
}

/** Reverts up to `steps` of the newest applied migrations; returns the versions reverted. */
export async function migrateDown(db: Database, migrations: Migration[], steps: number): Promise<number[]> {
  const byVersion = new Map(migrations.map((migration) => [migration.version, migration]));
  const reverted: number[] = [];
  while (reverted.length < steps) {
    const version = await db.transaction(async (tx) => {
      const newest = (await lockedLedger(tx)).at(-1);
      if (newest === undefined) return undefined;
      const migration = byVersion.get(newest);
      if (!migration) throw new Error(`database is at version ${newest}, which this build does not know`);
      await tx.exec(migration.down);
      await tx.query('DELETE FROM schema_migrations WHERE version = $1', [newest]);
      return newest;
    });
    if (version === undefined) break;
    reverted.push(version);
  }
  return reverted;
}
