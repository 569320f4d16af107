// A throwaway, migrated database for one benchmark run: a uniquely named database on the
// PostgreSQL server behind BENCH_PG_URL, or an in-memory PGlite. close() drops the PostgreSQL
// database and may be called more than once (normal end, failure, Ctrl-C).
import type { Database } from '../../src/store/database.js';
import { loadMigrations } from '../../src/store/migration-files.js';
import { migrateUp } from '../../src/store/migrator.js';
import { openPg } from '../../src/store/pg-driver.js';
import { openPglite } from '../../src/store/pglite-driver.js';
import { createScratchDatabase } from './scratch-database.js';

export type DriverName = 'pg' | 'pglite';

export interface BenchDatabase {
  db: Database;
  /** Where the data lives, for the log: never carries a password. */
  location: string;
  /** Closes the pool, then drops the database. */
  close(): Promise<void>;
  /** Drops the database at once, ending any statement still running in it (Ctrl-C). */
  abort(): Promise<void>;
}

async function createPgDatabase(adminUrl: string, poolSize: number): Promise<BenchDatabase> {
  const scratch = await createScratchDatabase(adminUrl, 'tr_bench_audit');
  const db = openPg({ url: scratch.url, poolSize });
  // One teardown per database, whichever of close and abort comes first.
  let teardown: Promise<void> | undefined;
  return {
    db,
    location: `database ${scratch.name} on ${new URL(scratch.url).host}`,
    close: () => (teardown ??= db.close().finally(() => scratch.drop())),
    // The pool would wait for a running statement (a seed batch takes seconds); the drop ends it.
    abort: () => (teardown ??= scratch.drop().then(() => db.close())),
  };
}

/** A new database with every migration of the project applied by its own migrator. */
export async function openBenchDatabase(
  driver: DriverName,
  options: { adminUrl: string; poolSize: number },
): Promise<BenchDatabase> {
  const opened =
    driver === 'pg'
      ? await createPgDatabase(options.adminUrl, options.poolSize)
      : await openPglite({ dataDir: null }).then((db) => {
          let closing: Promise<void> | undefined;
          const close = () => (closing ??= db.close());
          return { db, location: 'in-memory PGlite (WebAssembly, in this process)', close, abort: close };
        });
  try {
    await migrateUp(opened.db, await loadMigrations());
  } catch (error) {
    await opened.close();
    throw error;
  }
  return opened;
}
