// Queries on tenant_products (entitlements) and product_requests (the sales queue). Each takes
// the Queryable it runs on; the HTTP layer wraps changes and their audit events in one transaction.
import type {
  EntitlementSource,
  RequestCloseReason,
  RequestStatus,
  StatusBeforeRequest,
  StoredEntitlementStatus,
} from '../domain/entitlements.js';
import type { Queryable } from './database.js';

export interface EntitlementRow {
  tenant_id: string;
  product: string;
  status: StoredEntitlementStatus;
  source: EntitlementSource;
  config: Record<string, unknown>;
  granted_at: Date | null;
  revoked_at: Date | null;
  trial_started_at: Date | null;
  trial_ends_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = `tenant_id, product, status, source, config, granted_at, revoked_at, trial_started_at,
  trial_ends_at, created_at, updated_at`;

// The trial-over rule of domain/entitlements.ts (isTrialOver) as SQL, for the statements that
// must decide it in the database; `now` names the statement's parameter holding the current time.
/** The row is a trial whose end has passed: it reads as expired. */
const trialOver = (now: string) => `(tenant_products.status = 'trial' AND tenant_products.trial_ends_at <= ${now})`;
/** The row is a trial still running. */
const trialRunning = (now: string) => `(tenant_products.status = 'trial' AND tenant_products.trial_ends_at > ${now})`;

/**
 * A trial that a grant or revoke ends before its time never expires, so no expiry event is due:
 * it is marked as recorded. A trial that had already ended keeps its due event. SET reads the
 * row as it was before.
 */
const cutShortTrial = (now: string) => `CASE WHEN ${trialRunning(now)}
  THEN COALESCE(tenant_products.trial_expiry_recorded_at, ${now}) ELSE tenant_products.trial_expiry_recorded_at END`;

export async function listEntitlements(db: Queryable, tenantId: string): Promise<EntitlementRow[]> {
  return db.query<EntitlementRow>(`SELECT ${COLUMNS} FROM tenant_products WHERE tenant_id = $1 ORDER BY product`, [tenantId]);
}

async function selectEntitlement(db: Queryable, tenantId: string, product: string, lock: '' | ' FOR UPDATE') {
  const [row] = await db.query<EntitlementRow>(
    `SELECT ${COLUMNS} FROM tenant_products WHERE tenant_id = $1 AND product = $2${lock}`,
    [tenantId, product],
  );
  return row;
}

export const findEntitlement = (db: Queryable, tenantId: string, product: string): Promise<EntitlementRow | undefined> =>
  selectEntitlement(db, tenantId, product, '');

/** The entitlement, its row locked (FOR UPDATE) until the transaction ends. */
export const lockEntitlementForUpdate = (tx: Queryable, tenantId: string, product: string): Promise<EntitlementRow | undefined> =>
  selectEntitlement(tx, tenantId, product, ' FOR UPDATE');

/** Makes the entitlement active (from any state); config replaces the old one when given. */
export async function grantEntitlement(
  tx: Queryable,
  tenantId: string,
  product: string,
  config: Record<string, unknown> | undefined,
  now: Date,
): Promise<EntitlementRow> {
  const [row] = await tx.query<EntitlementRow>(
    `INSERT INTO tenant_products (tenant_id, product, config, status, source, granted_at)
     VALUES ($1, $2, COALESCE($3::jsonb, '{}'), 'active', 'operator', $4)
     ON CONFLICT (tenant_id, product) DO UPDATE
       SET status = 'active', source = 'operator', granted_at = $4, revoked_at = NULL,
           config = COALESCE($3::jsonb, tenant_products.config),
           trial_expiry_recorded_at = ${cutShortTrial('$4')}
     RETURNING ${COLUMNS}`,
    [tenantId, product, config === undefined ? null : JSON.stringify(config), now],
  );
  return row!;
}

export async function revokeEntitlement(tx: Queryable, tenantId: string, product: string, now: Date): Promise<EntitlementRow> {
  const [row] = await tx.query<EntitlementRow>(
    `UPDATE tenant_products SET status = 'revoked', revoked_at = $3,
       trial_expiry_recorded_at = ${cutShortTrial('$3')}
     WHERE tenant_id = $1 AND product = $2 RETURNING ${COLUMNS}`,
    [tenantId, product, now],
  );
  return row!;
}

export async function startTrial(tx: Queryable, tenantId: string, product: string, now: Date, endsAt: Date): Promise<EntitlementRow> {
  const [row] = await tx.query<EntitlementRow>(
    `INSERT INTO tenant_products (tenant_id, product, status, source, trial_started_at, trial_ends_at)
     VALUES ($1, $2, 'trial', 'trial', $3, $4)
     ON CONFLICT (tenant_id, product) DO UPDATE
       SET status = 'trial', source = 'trial', trial_started_at = $3, trial_ends_at = $4, revoked_at = NULL
     RETURNING ${COLUMNS}`,
    [tenantId, product, now, endsAt],
  );
  return row!;
}

/** Records that the tenant asked for the product: a new row, or one that was revoked or expired. */
export async function markRequested(tx: Queryable, tenantId: string, product: string, now: Date): Promise<void> {
  await tx.query(
    `INSERT INTO tenant_products (tenant_id, product, status, source)
     VALUES ($1, $2, 'requested', 'sales_request')
     ON CONFLICT (tenant_id, product) DO UPDATE SET status = 'requested', source = 'sales_request'
     WHERE tenant_products.status = 'revoked' OR ${trialOver('$3')}`,
    [tenantId, product, now],
  );
}

/**
 * Puts a requested entitlement back to what it was before the tenant asked (domain/entitlements.ts
 * statusBeforeRequest): that status, or no row at all. A row no longer requested is left alone.
 */
export async function revertRequested(tx: Queryable, tenantId: string, product: string, before: StatusBeforeRequest): Promise<void> {
  if (before === null) {
    await tx.query(`DELETE FROM tenant_products WHERE tenant_id = $1 AND product = $2 AND status = 'requested'`, [tenantId, product]);
    return;
  }
  await tx.query(
    `UPDATE tenant_products SET status = $3, source = $4 WHERE tenant_id = $1 AND product = $2 AND status = 'requested'`,
    [tenantId, product, before.status, before.source],
  );
}

export interface ProductRequestRow {
  id: string;
  tenant_id: string;
  product: string;
  message: string | null;
  status: RequestStatus;
  requested_by: string | null;
  sales_owner: string | null;
  created_at: Date;
  closed_at: Date | null;
  closed_reason: RequestCloseReason | null;
  closed_by: string | null;
  decline_reason: string | null;
}

const REQUEST_COLUMNS = `id, tenant_id, product, message, status, requested_by, sales_owner, created_at, closed_at,
  closed_reason, closed_by, decline_reason`;

async function selectRequest(db: Queryable, id: string, lock: '' | ' FOR UPDATE') {
  const [row] = await db.query<ProductRequestRow>(`SELECT ${REQUEST_COLUMNS} FROM product_requests WHERE id = $1${lock}`, [id]);
  return row;
}

export const findRequest = (db: Queryable, id: string): Promise<ProductRequestRow | undefined> => selectRequest(db, id, '');

/** The request, its row locked (FOR UPDATE) until the transaction ends. */
export const lockRequestForUpdate = (tx: Queryable, id: string): Promise<ProductRequestRow | undefined> =>
  selectRequest(tx, id, ' FOR UPDATE');

export async function findOpenRequest(tx: Queryable, tenantId: string, product: string): Promise<ProductRequestRow | undefined> {
  const [row] = await tx.query<ProductRequestRow>(
    `SELECT ${REQUEST_COLUMNS} FROM product_requests WHERE tenant_id = $1 AND product = $2 AND status = 'open'`,
    [tenantId, product],
  );
  return row;
}

export async function insertRequest(
  tx: Queryable,
  request: { tenantId: string; product: string; message: string | null; requestedBy: string | null; now: Date },
): Promise<ProductRequestRow> {
  const [row] = await tx.query<ProductRequestRow>(
    `INSERT INTO product_requests (tenant_id, product, message, requested_by, created_at)
     VALUES ($1, $2, $3, $4, $5) RETURNING ${REQUEST_COLUMNS}`,
    [request.tenantId, request.product, request.message, request.requestedBy, request.now],
  );
  return row!;
}

/** Who closed requests, when, and why. */
export interface Closing {
  reason: Exclude<RequestCloseReason, 'declined'>;
  closedBy: string;
  now: Date;
}

/** Closes the open requests for the product: a grant or a revoke answered them. */
export async function closeOpenRequests(tx: Queryable, tenantId: string, product: string, closing: Closing): Promise<ProductRequestRow[]> {
  return tx.query<ProductRequestRow>(
    `UPDATE product_requests SET status = 'closed', closed_at = $4, closed_reason = $3, closed_by = $5
     WHERE tenant_id = $1 AND product = $2 AND status = 'open' RETURNING ${REQUEST_COLUMNS}`,
    [tenantId, product, closing.reason, closing.now, closing.closedBy],
  );
}

/** Closes the request as declined; the caller holds its lock and has checked that it is open. */
export async function closeAsDeclined(
  tx: Queryable,
  id: string,
  decline: { reason: string; closedBy: string; now: Date },
): Promise<ProductRequestRow> {
  const [row] = await tx.query<ProductRequestRow>(
    `UPDATE product_requests SET status = 'closed', closed_at = $2, closed_reason = 'declined', decline_reason = $3, closed_by = $4
     WHERE id = $1 RETURNING ${REQUEST_COLUMNS}`,
    [id, decline.now, decline.reason, decline.closedBy],
  );
  return row!;
}

/** Gives the request to a sales owner (null: to nobody). */
export async function setSalesOwner(tx: Queryable, id: string, salesOwner: string | null): Promise<ProductRequestRow> {
  const [row] = await tx.query<ProductRequestRow>(
    `UPDATE product_requests SET sales_owner = $2 WHERE id = $1 RETURNING ${REQUEST_COLUMNS}`,
    [id, salesOwner],
  );
  return row!;
}

/** One page of requests in a status, oldest first (the order sales works through them). */
export async function listRequests(
  db: Queryable,
  filters: { status: RequestStatus; tenantId?: string; salesOwner?: string },
  after: { created: string; id: string } | null,
  limit: number,
): Promise<ProductRequestRow[]> {
  const params: unknown[] = [filters.status];
  let where = 'status = $1';
  if (filters.tenantId) {
    params.push(filters.tenantId);
    where += ` AND tenant_id = $${params.length}`;
  }
  if (filters.salesOwner !== undefined) {
    params.push(filters.salesOwner);
    where += ` AND sales_owner = $${params.length}`;
  }
  if (after) {
    params.push(after.created, after.id);
    where += ` AND (created_at, id) > ($${params.length - 1}, $${params.length})`;
  }
  return db.query<ProductRequestRow>(
    `SELECT ${REQUEST_COLUMNS} FROM product_requests WHERE ${where} ORDER BY created_at, id LIMIT ${Number(limit)}`,
    params,
  );
}

// A trial that was started and whose expiry event is not written yet: the job's index (migration
// 0006) serves exactly this.
const EXPIRY_DUE = 'trial_started_at IS NOT NULL AND trial_expiry_recorded_at IS NULL';

/**
 * Trials past their end whose expiry event is not written yet, whatever happened to the
 * entitlement since (a request, a grant after the end); locked, and rows another worker holds
 * are skipped. Not trialOver: the status may have moved on since, the end of the trial has not.
 */
export async function lockExpiredTrials(tx: Queryable, now: Date, limit: number): Promise<EntitlementRow[]> {
  return tx.query<EntitlementRow>(
    `SELECT ${COLUMNS} FROM tenant_products
     WHERE ${EXPIRY_DUE} AND trial_ends_at <= $1
     ORDER BY trial_ends_at LIMIT ${Number(limit)}
     FOR UPDATE SKIP LOCKED`,
    [now],
  );
}

/** The trials whose expiry event is due by `before`, soonest first: what the job will record (the transitions preview). */
export async function listExpiriesDueBefore(
  db: Queryable,
  before: Date,
  limit: number,
): Promise<Array<EntitlementRow & { slug: string; name: string }>> {
  return db.query<EntitlementRow & { slug: string; name: string }>(
    `SELECT due.*, tenants.slug, tenants.name
     FROM (SELECT ${COLUMNS} FROM tenant_products
           WHERE ${EXPIRY_DUE} AND trial_ends_at <= $1
           ORDER BY trial_ends_at, tenant_id, product LIMIT ${Number(limit)}) AS due
     JOIN tenants ON tenants.id = due.tenant_id
     ORDER BY due.trial_ends_at, due.tenant_id, due.product`,
    [before],
  );
}

export async function markTrialExpiryRecorded(tx: Queryable, tenantId: string, product: string, now: Date): Promise<void> {
  await tx.query(
    'UPDATE tenant_products SET trial_expiry_recorded_at = $3 WHERE tenant_id = $1 AND product = $2',
    [tenantId, product, now],
  );
}
