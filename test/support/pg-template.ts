// One migrated PostgreSQL database for the whole run, the pg driver's counterpart of
// pglite-template.ts: every test database of that driver is created from it
// (CREATE DATABASE ... TEMPLATE: the server copies it, ~80 ms of its CPU, where running every
// migration took ~210 ms). PostgreSQL copies a template only while no session is connected to
// it, so it refuses connections once migrated: a stray one fails at once rather than making
// other files' CREATE DATABASE fail now and then. Skipped when TEST_DRIVERS leaves PostgreSQL out.
// Like the embedded template, it is made once per run: a watch-mode rerun keeps the migrations
// the run started with.
import type { TestProject } from 'vitest/node';
import { loadMigrations } from '../../src/store/migration-files.js';
import { migrateUp } from '../../src/store/migrator.js';
import { openPg } from '../../src/store/pg-driver.js';
import { pgDriverSelected } from './driver-selection.js';
import { createTestPgDatabase, withAdmin } from './postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The name of a migrated database to copy; absent outside the main suite or without PostgreSQL. */
    pgTemplate?: string;
  }
}

export default async function buildPgTemplate(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  if (!pgDriverSelected()) return undefined;
  const template = await createTestPgDatabase();
  try {
    const db = openPg({ url: template.url, poolSize: 1 });
    try {
      await migrateUp(db, await loadMigrations());
    } finally {
      await db.close();
    }
    await withAdmin((admin) => admin.query(`ALTER DATABASE ${template.name} ALLOW_CONNECTIONS false`));
  } catch (error) {
    await template.drop();
    throw error;
  }
  project.provide('pgTemplate', template.name);
  return () => template.drop();
}
