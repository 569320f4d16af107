// The two-driver harness: the same test body runs against the embedded database and against a
// real PostgreSQL. TEST_DRIVERS=pglite (make test-short) runs the embedded half only.
import { readFileSync } from 'node:fs';
import { describe, inject } from 'vitest';
import type { Database } from '../../src/store/database.js';
import { loadMigrations } from '../../src/store/migration-files.js';
import { migrateUp } from '../../src/store/migrator.js';
import { openPg } from '../../src/store/pg-driver.js';
import { openPglite } from '../../src/store/pglite-driver.js';
import { DRIVERS, type DriverName } from './driver-selection.js';
import { createTestPgDatabase } from './postgres.js';

export { DRIVERS, type DriverName };

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
  return openPgDatabase();
}

/** A new PostgreSQL database: empty, or a copy of `template`. */
async function openPgDatabase(template?: string): Promise<TestDatabase> {
  const created = await createTestPgDatabase(template);
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

/** The bytes of the embedded template, read once per worker. */
let template: Buffer | undefined;

/**
 * The migrated embedded database the global setup dumped (test/support/pglite-template.ts), if it
 * ran, as the Blob PGlite's loadDataDir takes. PGlite 0.5's tarball loader only calls
 * arrayBuffer() on it (and reads its type and whether it is a File). Node 20's own Blob hands
 * its bytes over in small chunks it then concatenates, a third of the time it took to open a
 * database from the ~40 MB dump; this one answers with a copy of bytes read once per worker.
 * (Were a later PGlite to read it otherwise, every embedded test would fail at once, not quietly.)
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
  if (pgTemplate) return openPgDatabase(pgTemplate);
  const opened = await openEmptyDatabase(driver);
  await migrateUp(opened.db, await loadMigrations());
  return opened;
}

/** describe() once per driver; the body receives the driver's name. */
export function eachDriver(title: string, body: (driver: DriverName) => void): void {
  describe.each(DRIVERS)(`${title} [%s]`, body);
}
