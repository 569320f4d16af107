// The one seam between the service and PostgreSQL. Two drivers implement it: `pg` for a real
// server and PGlite for the embedded default. Everything above this file writes the same SQL
// for both and never learns which one it talks to.

/** Anything that runs SQL: the database itself or an open transaction. */
// Members are function-valued properties, not methods: they never use `this`, so passing
// db.query around on its own is safe.
export interface Queryable {
  query: <Row = Record<string, unknown>>(text: string, params?: readonly unknown[]) => Promise<Row[]>;
  /** Runs a script of several statements without parameters (migrations, test fixtures). */
  exec: (script: string) => Promise<void>;
}

export interface Database extends Queryable {
  readonly driver: 'pg' | 'pglite';
  /** Runs fn inside BEGIN/COMMIT; any throw rolls the whole transaction back. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Calls onMessage with the payload of every NOTIFY on the channel; onState says whether
   * notifications are flowing (false while a dropped connection is being re-established, when
   * some may be missed). Resolves with a function that stops listening.
   */
  listen(channel: string, onMessage: (payload: string) => void, onState: (listening: boolean) => void): Promise<() => Promise<void>>;
  /** The connection pool's state, where there is a pool (pg). */
  poolState?: () => { totalCount: number; idleCount: number; waitingCount: number };
  /** Answers when the database can run a query; throws otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Both drivers hand these back as JavaScript values; the rest are left to each driver's
 * defaults, which already agree (timestamptz -> Date, jsonb -> object, uuid/text -> string).
 * int8 (COUNT(*) and bigint columns) becomes a number: the values here stay far below 2^53.
 * date stays the 'YYYY-MM-DD' text, because a Date would shift with the process time zone.
 */
export const TYPE_OIDS = { int8: 20, date: 1082, timestamp: 1114, timestamptz: 1184 } as const;
