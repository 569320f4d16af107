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
export async function openEmptyDatabase(driver: DriverName): Promise<TestDatabase> {
  if (driver === 'pglite') {
    const db = await openPglite({ dataDir: null });
    return { db, url: null, close: () => db.close() };
  }
  const created = await createTestPgDatabase();
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

let template: Blob | undefined;

/** The migrated embedded database the global setup dumped (test/support/pglite-template.ts), if it ran. */
function pgliteTemplate(): Blob | undefined {
  const file = inject('pgliteTemplate');
  if (file && !template) template = new Blob([readFileSync(file)]);
  return template;
}

/** A fresh database of the given driver with every migration applied. */
export async function openMigratedDatabase(driver: DriverName): Promise<TestDatabase> {
  const loadDataDir = driver === 'pglite' ? pgliteTemplate() : undefined;
  if (loadDataDir) {
    const db = await openPglite({ dataDir: null, loadDataDir });
    return { db, url: null, close: () => db.close() };
  }
  const opened = await openEmptyDatabase(driver);
  await migrateUp(opened.db, await loadMigrations());
  return opened;
}

/** describe() once per driver; the body receives the driver's name. */
export function eachDriver(title: string, body: (driver: DriverName) => void): void {
  describe.each(DRIVERS)(`${title} [%s]`, body);
}
