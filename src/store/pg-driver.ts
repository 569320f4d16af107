// The production driver: a pool of connections to a PostgreSQL server.
import pg from 'pg';
import { TYPE_OIDS, type Database, type Queryable } from './database.js';
import { createPgListener } from './pg-listener.js';

export interface PgOptions {
  url: string;
  /** Connections kept open; each replica's share of the server's max_connections. */
  poolSize?: number;
  /** Cancels a statement running longer (0: no limit). */
  statementTimeoutMs?: number;
}

const typeParsers = {
  getTypeParser(oid: number, format?: string) {
    if (oid === TYPE_OIDS.int8) return (value: string) => Number(value);
    if (oid === TYPE_OIDS.date) return (value: string) => value;
    return pg.types.getTypeParser(oid, format as 'text') as (value: string) => unknown;
  },
};

function queryableOf(client: pg.Pool | pg.PoolClient): Queryable {
  return {
    async query<Row>(text: string, params: readonly unknown[] = []) {
      const result = await client.query({ text, values: params as unknown[], types: typeParsers });
      return result.rows as Row[];
    },
    async exec(script: string) {
      // Without parameters pg uses the simple query protocol, which accepts several statements.
      await client.query(script);
    },
  };
}

export function openPg(options: PgOptions): Database {
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.poolSize ?? 10,
    ...(options.statementTimeoutMs ? { statement_timeout: options.statementTimeoutMs } : {}),
    // A request waiting longer than this for a connection is better answered 503 than left
    // hanging while the database is unreachable.
    connectionTimeoutMillis: 5_000,
  });
  // An idle connection dropped by the server (restart, failover) emits 'error' on the pool;
  // unhandled, that would kill the process. The pool replaces the connection on next use.
  pool.on('error', () => {});
  const base = queryableOf(pool);
  // One LISTEN connection for every channel of this handle, besides the pool.
  const listener = createPgListener(options.url);

  return {
    driver: 'pg',
    query: base.query,
    exec: base.exec,
    listen: (channel, onMessage, onState) => listener.subscribe(channel, onMessage, onState),
    poolState: () => pool,
    async transaction(fn) {
      const client = await pool.connect();
      let broken: Error | undefined;
      // A checked-out client has no 'error' listener (the pool removes its own until release).
      // When the server ends the session between two statements of this transaction (a shutdown
      // or failover: FATAL 57P01), pg emits 'error' on the client, which unhandled would kill
      // the process. The next statement fails on its own and the request answers 503; the
      // client is only marked broken, so the pool discards it instead of reusing it.
      const onError = (error: Error) => (broken = error);
      client.on('error', onError);
      try {
        await client.query('BEGIN');
        const result = await fn(queryableOf(client));
        await client.query('COMMIT');
        return result;
      } catch (error) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackError) {
          // A connection that cannot even roll back is not handed to the next request.
          broken = rollbackError as Error;
        }
        throw error;
      } finally {
        client.removeListener('error', onError);
        client.release(broken);
      }
    },
    async ping() {
      await pool.query('SELECT 1');
    },
    async close() {
      await pool.end();
    },
  };
}
