// One migrated embedded database for the whole run. Starting PGlite means running initdb inside
// WebAssembly (seconds of CPU) and then every migration; the suite opens dozens of databases and
// starts dozens of services, so vitest's global setup does it once, in two forms:
//  - a dump of the data directory, which each test database of the embedded driver starts from
//    (test/support/drivers.ts);
//  - the data directory itself, a copy of which a spawned service gets as EMBEDDED_DB_DIR unless
//    its test chooses a database (test/process/spawn.ts).
import { PGlite } from '@electric-sql/pglite';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { loadMigrations } from '../../src/store/migration-files.js';
import { migrateUp } from '../../src/store/migrator.js';
import { pgliteDatabase } from '../../src/store/pglite-driver.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The dumped data directory of a migrated embedded database; absent outside the main suite. */
    pgliteTemplate?: string;
    /** The data directory of that database, to copy. */
    pgliteTemplateDir?: string;
  }
}

export default async function buildTemplate(project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tenant-registry-pglite-'));
  const file = path.join(dir, 'migrated.tar');
  const dataDir = path.join(dir, 'migrated');
  const pglite = new PGlite(dataDir);
  try {
    await migrateUp(pgliteDatabase(pglite), await loadMigrations());
    const dump = await pglite.dumpDataDir('none');
    await writeFile(file, Buffer.from(await dump.arrayBuffer()));
  } finally {
    await pglite.close();
  }
  project.provide('pgliteTemplate', file);
  project.provide('pgliteTemplateDir', dataDir);
  return () => rm(dir, { recursive: true, force: true });
}
