// Leases and cursors of the feed's consumers inside the registry (feed_consumers, migration
// 0015). A consumer is worked by one replica at a time: the holder of its lease. The lease is
// taken when free or lapsed, renewed while held, and every move of the cursor is conditional on
// still holding it, so a replica that lost its lease without noticing changes nothing.
import type { Queryable } from './database.js';

/**
 * How long a lease runs unless renewed (FEED_LEASE_SECONDS sets it in the service): a replica
 * that dies holding one delays its consumer by at most this long. Holders renew every third of
 * it, so two missed renewals (a slow database) still keep it.
 */
export const DEFAULT_LEASE_MS = 15_000;

export interface Lease {
  /** Where the consumer has got to: every event up to this seq was handled. */
  lastSeq: number;
}

/**
 * Takes or renews the consumer's lease for `holder` until now + ttlMs, creating the consumer
 * (starting after `startSeq`) on first use. Undefined when another holder's lease is still running.
 */
export async function takeLease(db: Queryable, name: string, holder: string, ttlMs: number, startSeq = 0): Promise<Lease | undefined> {
  const rows = await db.query<{ last_seq: number }>(
    `INSERT INTO feed_consumers AS c (name, last_seq, holder, lease_until)
     VALUES ($1, $4, $2, now() + $3 * interval '1 millisecond')
     ON CONFLICT (name) DO UPDATE SET holder = $2, lease_until = now() + $3 * interval '1 millisecond'
      WHERE c.holder = $2 OR c.holder IS NULL OR c.lease_until < now()
     RETURNING last_seq`,
    [name, holder, ttlMs, startSeq],
  );
  return rows[0] ? { lastSeq: rows[0].last_seq } : undefined;
}

/** Moves the cursor to `seq` if `holder` still holds a running lease; false when it does not. */
export async function advanceConsumer(db: Queryable, name: string, holder: string, seq: number): Promise<boolean> {
  const rows = await db.query(
    `UPDATE feed_consumers SET last_seq = $3 WHERE name = $1 AND holder = $2 AND lease_until >= now() RETURNING 1`,
    [name, holder, seq],
  );
  return rows.length > 0;
}

/** Gives the lease up at once (a clean stop), so another replica takes over without waiting. */
export async function releaseLease(db: Queryable, name: string, holder: string): Promise<void> {
  await db.query(`UPDATE feed_consumers SET holder = NULL, lease_until = NULL WHERE name = $1 AND holder = $2`, [name, holder]);
}

/** Where the consumer has got to, and who holds it; undefined before its first lease. */
export async function consumerState(db: Queryable, name: string): Promise<{ lastSeq: number; holder: string | null } | undefined> {
  const rows = await db.query<{ last_seq: number; holder: string | null }>(
    `SELECT last_seq, holder FROM feed_consumers WHERE name = $1`,
    [name],
  );
  return rows[0] ? { lastSeq: rows[0].last_seq, holder: rows[0].holder } : undefined;
}
