// The two-driver harness: the same test body runs against the embedded database and against a
// real PostgreSQL. TEST_DRIVERS=pglite (make test-short) runs the embedded half only.
import { readFileSync } from 'node:fs';
import { describe, inject } from 'vitest';
import type { Database } from '../../src/store/database.js';
import { loadMigrations } from '../../src/store/migration-files.js';
import { migrateUp } from '../../src/store/migrator.js';
import { openPg } from '../../src/store/pg-driver.js';
import { openPglite } from '../../src/store/pglite-driver.js';
import { createTestPgDatabase } from './postgres.js';

export type DriverName = 'pglite' | 'pg';

export const DRIVERS: DriverName[] = (process.env.TEST_DRIVERS ?? 'pglite,pg')
  .split(',')
  .map((name) => name.trim())
  .filter((name): name is DriverName => name === 'pglite' || name === 'pg');

export interface TestDatabase {
  db: Database;
  /** The postgres:// URL of the database (pg driver only). */
  url: string | null;
  close(): Promise<void>;
}

/** A fresh, empty, unmigrated database of the given driver. */
export function openEmptyDatabase(driver: DriverName): Promise<TestDatabase> {
  return openDatabase(driver);
}

/** A new database of the driver: empty, or (pg) a copy of the named database. */
async function openDatabase(driver: DriverName, pgTemplate?: string): Promise<TestDatabase> {
  if (driver === 'pglite') {
    const db = await openPglite({ dataDir: null });
    return { db, url: null, close: () => db.close() };
  }
  const created = await createTestPgDatabase(pgTemplate);
  const db = openPg({ url: created.url, poolSize: 5 });
  return {
    db,
    url: created.url,
    async close() {
      await db.close();
      await created.drop();
    },
  };
}

let template: Buffer | undefined;

/**
 * The migrated embedded database the global setup dumped (test/support/pglite-template.ts), if it
 * ran, as the Blob PGlite's loadDataDir takes. PGlite only calls arrayBuffer() on it (and reads its
 * type); Node 20's own Blob hands its bytes over in small chunks it then concatenates, which took
 * a third of the time to open a database from the ~40 MB dump. So this one answers with a copy
 * of the bytes read once per worker.
 */
function pgliteTemplate(): Blob | undefined {
  const file = inject('pgliteTemplate');
  if (!file) return undefined;
  template ??= readFileSync(file);
  const bytes = template;
  const copy = () => Promise.resolve(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return { type: 'application/x-tar', size: bytes.byteLength, arrayBuffer: copy } as Blob;
}

/** A fresh database of the given driver with every migration applied. */
export async function openMigratedDatabase(driver: DriverName): Promise<TestDatabase> {
  const loadDataDir = driver === 'pglite' ? pgliteTemplate() : undefined;
  if (loadDataDir) {
    const db = await openPglite({ dataDir: null, loadDataDir });
    return { db, url: null, close: () => db.close() };
  }
  // The migrated copy the global setup made (test/support/pg-template.ts), if it ran.
  const pgTemplate = driver === 'pg' ? inject('pgTemplate') : undefined;
  if (pgTemplate) return openDatabase(driver, pgTemplate);
  const opened = await openEmptyDatabase(driver);
  await migrateUp(opened.db, await loadMigrations());
  return opened;
}

/** describe() once per driver; the body receives the driver's name. */
export function eachDriver(title: string, body: (driver: DriverName) => void): void {
  describe.each(DRIVERS)(`${title} [%s]`, body);
}
