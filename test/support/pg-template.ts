// One migrated PostgreSQL database for the whole run, the pg driver's counterpart of
// pglite-template.ts: every test database of that driver is created as a copy of it
// (CREATE DATABASE ... TEMPLATE, a copy of its files on the server: ~80 ms of the server's CPU
// where running every migration took ~210 ms). Nothing connects to it after this setup, as
// PostgreSQL requires of a template. Skipped when TEST_DRIVERS leaves PostgreSQL out.
import type { TestProject } from 'vitest/node';
import { loadMigrations } from '../../src/store/migration-files.js';
import { migrateUp } from '../../src/store/migrator.js';
import { openPg } from '../../src/store/pg-driver.js';
import { createTestPgDatabase, pgDriverSelected } from './postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The name of a migrated database to copy; absent outside the main suite or without PostgreSQL. */
    pgTemplate?: string;
  }
}

export default async function buildPgTemplate(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  if (!pgDriverSelected()) return undefined;
  const template = await createTestPgDatabase();
  const db = openPg({ url: template.url, poolSize: 1 });
  try {
    await migrateUp(db, await loadMigrations());
  } finally {
    await db.close();
  }
  project.provide('pgTemplate', template.name);
  return () => template.drop();
}
