// An empty, uniquely named database on the PostgreSQL server behind an admin URL, for a benchmark
// whose service runs in another process: this process only creates it, reads the server version,
// and drops it at the end (also after a failure or Ctrl-C). Migrating is the service's own CLI's job.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export interface ScratchDatabase {
  name: string;
  /** The admin URL with the database name in its path: what DATABASE_URL is set to. */
  url: string;
  /** version() of the server. */
  serverVersion: string;
  /** Drops the database once, however often it is called. */
  drop(): Promise<void>;
}

async function withAdmin<T>(adminUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function createScratchDatabase(adminUrl: string, prefix: string): Promise<ScratchDatabase> {
  const name = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
  const serverVersion = await withAdmin(adminUrl, async (admin) => {
    await admin.query(`CREATE DATABASE ${name}`);
    const result = await admin.query<{ version: string }>('SELECT version()');
    return result.rows[0]?.version ?? 'unknown';
  });
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  let dropping: Promise<void> | undefined;
  return {
    name,
    url: url.toString(),
    serverVersion,
    // WITH (FORCE) ends the connections a service that did not stop cleanly left open.
    drop: () =>
      (dropping ??= withAdmin(adminUrl, (admin) => admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => {})),
  };
}
