// Real PostgreSQL for tests: each call creates a database with a unique name on the server in
// TEST_PG_URL (the machine's local server by default) and drops it afterwards.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pgDriverSelected } from './driver-selection.js';

export const TEST_PG_URL = process.env.TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestPgDatabase {
  name: string;
  url: string;
  drop(): Promise<void>;
}

export async function withAdmin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: TEST_PG_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * Throws when TEST_DRIVERS leaves PostgreSQL out (make test-short): a test that reaches a real
 * server then forgot its describe.runIf(DRIVERS.includes('pg')), and is told so here rather than
 * by ECONNREFUSED on a machine without PostgreSQL.
 */
export function assertPgDriverSelected(what: string): void {
  if (!pgDriverSelected()) {
    throw new Error(`${what} needs PostgreSQL, but TEST_DRIVERS=${process.env.TEST_DRIVERS} leaves it out: guard the test with describe.runIf(DRIVERS.includes('pg'))`);
  }
}

/** A new database: empty, or a copy of `template` (a database nobody is connected to). */
export async function createTestPgDatabase(template?: string): Promise<TestPgDatabase> {
  assertPgDriverSelected('createTestPgDatabase()');
  const name = `tr_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  await withAdmin((admin) => admin.query(template === undefined ? `CREATE DATABASE ${name}` : `CREATE DATABASE ${name} TEMPLATE ${template}`));
  const url = new URL(TEST_PG_URL);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    // WITH (FORCE) ends connections a failed test left open, so no database is left behind.
    drop: () => withAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => {}),
  };
}
