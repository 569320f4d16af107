// The embedded driver: PostgreSQL compiled to WebAssembly, running inside this process. It has a
// single connection; PGlite queues queries and transactions, so callers need no pool.
import { PGlite, type Transaction } from '@electric-sql/pglite';
import pg from 'pg';
import { TYPE_OIDS, type Database, type Queryable } from './database.js';

export interface PgliteOptions {
  /** A directory to keep the database in; null keeps it in memory for the life of the process. */
  dataDir: string | null;
  /**
   * A data directory as PGlite's dumpDataDir() wrote it, to start from instead of a new cluster:
   * the tests start each database from one migrated copy rather than run initdb every time.
   */
  loadDataDir?: Blob;
}

// PGlite's own timestamp parser is `new Date(text)`, which reads year 0050 as 1950; pg's parsers
// read it right, and using them here makes both drivers return the same Date for the same row.
const pgParser = (oid: number) => pg.types.getTypeParser(oid) as (value: string) => Date;

const parsers = {
  [TYPE_OIDS.int8]: (value: string) => Number(value),
  [TYPE_OIDS.date]: (value: string) => value,
  [TYPE_OIDS.timestamp]: pgParser(TYPE_OIDS.timestamp),
  [TYPE_OIDS.timestamptz]: pgParser(TYPE_OIDS.timestamptz),
};

function queryableOf(target: PGlite | Transaction): Queryable {
  return {
    async query<Row>(text: string, params: readonly unknown[] = []) {
      const result = await target.query<Row>(text, params as unknown[]);
      return result.rows;
    },
    async exec(script: string) {
      await target.exec(script);
    },
  };
}

// PostgreSQL's buffer pool, which initdb sizes at 128 MB. Here the data files already sit in this
// process's memory (in-memory databases) or in the OS page cache (EMBEDDED_DB_DIR), so a miss is a
// copy or a cached read, not a disk seek; and the whole pool is zeroed at every start: at 128 MB
// that was half of the ~1.2 s of CPU an embedded database took to open. 16 MB holds a development
// database's working set. (BENCHMARKS.md has audit figures at both sizes.)
const SHARED_BUFFERS = '16MB';

export async function openPglite(options: PgliteOptions): Promise<Database> {
  const db = new PGlite({
    ...(options.dataDir === null ? {} : { dataDir: options.dataDir }),
    ...(options.loadDataDir ? { loadDataDir: options.loadDataDir } : {}),
    startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${SHARED_BUFFERS}`],
    parsers,
  });
  await db.waitReady;
  return pgliteDatabase(db);
}

/** A started PGlite as the store's Database. */
export function pgliteDatabase(db: PGlite): Database {
  const base = queryableOf(db);

  return {
    driver: 'pglite',
    query: base.query,
    exec: base.exec,
    async listen(channel, onMessage, onState) {
      // Same process, same database: a NOTIFY reaches the listener at commit and cannot be lost.
      const unlisten = await db.listen(channel, onMessage);
      onState(true);
      return unlisten;
    },
    transaction: (fn) => db.transaction((tx) => fn(queryableOf(tx))),
    async ping() {
      await db.query('SELECT 1');
    },
    async close() {
      if (!db.closed) await db.close();
    },
  };
}
