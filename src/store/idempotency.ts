// Queries on idempotency_keys. A claim is an INSERT that succeeds for the first request only; the
// answer is stored when it is known; an answer that should not be kept (5xx) releases the claim.
import type { Queryable } from './database.js';

export interface StoredAnswer {
  request_hash: string;
  status: number | null;
  headers: Record<string, string> | null;
  body: string | null;
}

export type Claim = { claimed: true } | { claimed: false; existing: StoredAnswer };

export async function claimIdempotencyKey(
  db: Queryable,
  claim: { principal: string; key: string; requestHash: string; now: Date; ttlMs: number },
): Promise<Claim> {
  const expiresAt = new Date(claim.now.getTime() + claim.ttlMs);
  // An expired entry is as good as none: it is replaced by this request's claim.
  const [taken] = await db.query<{ inserted: boolean }>(
    `INSERT INTO idempotency_keys (principal, key, request_hash, expires_at, created_at)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (principal, key) DO UPDATE
       SET request_hash = EXCLUDED.request_hash, status = NULL, headers = NULL, body = NULL,
           created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
       WHERE idempotency_keys.expires_at <= $5
     RETURNING true AS inserted`,
    [claim.principal, claim.key, claim.requestHash, expiresAt, claim.now],
  );
  if (taken) return { claimed: true };
  const [existing] = await db.query<StoredAnswer>(
    'SELECT request_hash, status, headers, body FROM idempotency_keys WHERE principal = $1 AND key = $2',
    [claim.principal, claim.key],
  );
  // Deleted between the two statements (released after a failure): the caller may simply retry.
  return existing ? { claimed: false, existing } : { claimed: false, existing: { request_hash: claim.requestHash, status: null, headers: null, body: null } };
}

export async function storeIdempotentAnswer(
  db: Queryable,
  entry: { principal: string; key: string; status: number; headers: Record<string, string>; body: string },
): Promise<void> {
  await db.query(
    'UPDATE idempotency_keys SET status = $3, headers = $4, body = $5 WHERE principal = $1 AND key = $2',
    [entry.principal, entry.key, entry.status, JSON.stringify(entry.headers), entry.body],
  );
}

export async function releaseIdempotencyKey(db: Queryable, principal: string, key: string): Promise<void> {
  await db.query('DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2 AND status IS NULL', [principal, key]);
}

export async function deleteExpiredIdempotencyKeys(db: Queryable, now: Date): Promise<number> {
  const rows = await db.query('DELETE FROM idempotency_keys WHERE expires_at <= $1 RETURNING 1', [now]);
  return rows.length;
}
