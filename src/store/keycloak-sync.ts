// The queue of tenants whose Keycloak organization must be brought in step (migration 0012).
// Rows are written in the transaction of the change that needs them, leased by the sync job
// without holding a transaction across the Keycloak calls, and deleted once synced.
import type { Queryable } from './database.js';

export type SyncReason = 'change' | 'reconcile';

export interface SyncRequest {
  tenant_id: string;
  reason: SyncReason;
  requested_at: Date;
  version: string;
  attempts: number;
  /** The lease this worker holds on the row; completing or failing needs it. */
  lease_token: string;
}

/**
 * Asks for the tenant's organization to be synced after a change, when it has one. A pending
 * request is bumped (its version, and its reason becomes 'change': a reconcile that finds a change
 * already pending reports no drift for it) and made due now, without cutting a lease another
 * replica holds.
 */
export async function requestSync(tx: Queryable, tenantId: string, now: Date): Promise<void> {
  await tx.query(
    `INSERT INTO keycloak_sync (tenant_id, reason, requested_at, next_attempt_at)
     SELECT id, 'change', $2, $2 FROM tenants WHERE id = $1 AND keycloak_org_id IS NOT NULL
     ON CONFLICT (tenant_id) DO UPDATE
       SET reason = 'change',
           requested_at = GREATEST(keycloak_sync.requested_at, EXCLUDED.requested_at),
           version = keycloak_sync.version + 1,
           next_attempt_at = LEAST(keycloak_sync.next_attempt_at, EXCLUDED.next_attempt_at)`,
    [tenantId, now],
  );
}

/** Asks for a sync of every tenant that has an organization (the periodic reconcile); returns how many. */
export async function requestSyncOfAll(db: Queryable, now: Date): Promise<number> {
  const rows = await db.query<{ tenant_id: string }>(
    `INSERT INTO keycloak_sync (tenant_id, reason, requested_at, next_attempt_at)
     SELECT id, 'reconcile', $1, $1 FROM tenants WHERE keycloak_org_id IS NOT NULL
     ON CONFLICT (tenant_id) DO NOTHING RETURNING tenant_id`,
    [now],
  );
  return rows.length;
}

/**
 * Leases up to `limit` due requests until `leaseUntil` under a fresh token: another replica skips
 * them meanwhile, and one whose worker died is due again when the lease runs out.
 */
export async function leaseDueSyncs(db: Queryable, now: Date, leaseUntil: Date, limit: number): Promise<SyncRequest[]> {
  return db.query<SyncRequest>(
    `UPDATE keycloak_sync SET leased_until = $2, lease_token = gen_random_uuid()
     WHERE tenant_id IN (SELECT tenant_id FROM keycloak_sync
                         WHERE next_attempt_at <= $1 AND (leased_until IS NULL OR leased_until <= $1)
                         ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)
     RETURNING tenant_id, reason, requested_at, version::text AS version, attempts, lease_token::text AS lease_token`,
    [now, leaseUntil, limit],
  );
}

/**
 * Ends a request that was synced. A request made after the lease was taken (a higher version)
 * keeps the row, due at once and released, so that change is synced too. Returns whether the row
 * was deleted; a lease lost to its deadline changes nothing.
 */
export async function completeSync(tx: Queryable, request: SyncRequest, now: Date): Promise<boolean> {
  const deleted = await tx.query(`DELETE FROM keycloak_sync WHERE tenant_id = $1 AND version = $2 AND lease_token = $3 RETURNING tenant_id`, [
    request.tenant_id,
    request.version,
    request.lease_token,
  ]);
  if (deleted.length === 0) {
    await tx.query(
      `UPDATE keycloak_sync SET next_attempt_at = $3, leased_until = NULL, lease_token = NULL, attempts = 0, last_error = NULL
       WHERE tenant_id = $1 AND lease_token = $2`,
      [request.tenant_id, request.lease_token, now],
    );
  }
  return deleted.length > 0;
}

/** Records a failed attempt and when to try again, if this worker still holds the lease. */
export async function failSync(db: Queryable, request: SyncRequest, error: string, retryAt: Date): Promise<void> {
  await db.query(
    `UPDATE keycloak_sync SET attempts = attempts + 1, last_error = $3, next_attempt_at = $4, leased_until = NULL, lease_token = NULL
     WHERE tenant_id = $1 AND lease_token = $2`,
    [request.tenant_id, request.lease_token, error.slice(0, 500), retryAt],
  );
}

/** The requests still waiting, oldest first (for tests and operators). */
export async function pendingSyncs(
  db: Queryable,
): Promise<Array<Omit<SyncRequest, 'lease_token'> & { last_error: string | null; next_attempt_at: Date; leased_until: Date | null }>> {
  return db.query(
    `SELECT tenant_id, reason, requested_at, version::text AS version, attempts, last_error, next_attempt_at, leased_until
     FROM keycloak_sync ORDER BY requested_at`,
  );
}
