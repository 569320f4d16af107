// Queries on webhook endpoints and their delivery log (migration 0016). The routes change
// endpoints inside their transactions; the dispatcher moves each endpoint's cursor with one
// statement that is fenced twice: on still holding the dispatch lease (feed_consumers), and on the
// endpoint being in the state it read (generation, last_seq), so neither a replica whose lease
// lapsed nor a delivery that was under way during a replay moves a cursor it should not.
import type { DeliveryOutcome } from '../domain/webhook.js';
import type { Queryable } from './database.js';

export interface WebhookRow {
  id: string;
  url: string;
  description: string | null;
  secret: string;
  previous_secret: string | null;
  previous_secret_until: Date | null;
  types: string[];
  tenant_id: string | null;
  enabled: boolean;
  last_seq: number;
  attempts: number;
  next_attempt_at: Date | null;
  generation: number;
  created_at: Date;
  updated_at: Date;
  created_by: string;
}

const COLUMNS = `id, url, description, secret, previous_secret, previous_secret_until, types, tenant_id, enabled,
  last_seq, attempts, next_attempt_at, generation, created_at, updated_at, created_by`;

export interface NewWebhook {
  id: string;
  url: string;
  description: string | null;
  secret: string;
  types: string[];
  tenantId: string | null;
  enabled: boolean;
  lastSeq: number;
  createdBy: string;
  now: Date;
}

// Any constant: the key of the lock that serializes creations, so the count stays under the cap.
const CREATE_LOCK_KEY = 7_316_016;

/** Holds creations of other transactions until this one ends; then counts the endpoints. */
export async function countWebhooksLocked(tx: Queryable): Promise<number> {
  await tx.query('SELECT pg_advisory_xact_lock($1)', [CREATE_LOCK_KEY]);
  const [row] = await tx.query<{ count: number }>('SELECT count(*)::int AS count FROM webhooks');
  return row?.count ?? 0;
}

export async function insertWebhook(tx: Queryable, spec: NewWebhook): Promise<WebhookRow> {
  const [row] = await tx.query<WebhookRow>(
    `INSERT INTO webhooks (id, url, description, secret, types, tenant_id, enabled, last_seq, created_at, updated_at, created_by)
     VALUES ($1, $2, $3, $4, $5::text[], $6, $7, $8, $9, $9, $10)
     RETURNING ${COLUMNS}`,
    [spec.id, spec.url, spec.description, spec.secret, spec.types, spec.tenantId, spec.enabled, spec.lastSeq, spec.now, spec.createdBy],
  );
  return row!;
}

export async function findWebhook(db: Queryable, id: string): Promise<WebhookRow | undefined> {
  const [row] = await db.query<WebhookRow>(`SELECT ${COLUMNS} FROM webhooks WHERE id = $1`, [id]);
  return row;
}

/** The endpoint, locked until the transaction ends (a change reads what it changes). */
export async function lockWebhook(tx: Queryable, id: string): Promise<WebhookRow | undefined> {
  const [row] = await tx.query<WebhookRow>(`SELECT ${COLUMNS} FROM webhooks WHERE id = $1 FOR UPDATE`, [id]);
  return row;
}

/** Every endpoint in creation order; there are at most MAX_WEBHOOKS of them. */
export function listWebhooks(db: Queryable, limit: number): Promise<WebhookRow[]> {
  return db.query<WebhookRow>(`SELECT ${COLUMNS} FROM webhooks ORDER BY created_at, id LIMIT $1`, [limit]);
}

export interface WebhookChanges {
  url?: string;
  description?: string | null;
  types?: string[];
  tenantId?: string | null;
  enabled?: boolean;
}

/**
 * Applies the changes. New filters re-read the feed from the cursor differently, so they move
 * the generation (a delivery under way with the old filters does not move the cursor after it).
 * A new URL, or enabling, is what an operator does to fix a failing endpoint: its next attempt
 * is due at once rather than at the end of its backoff (the count of attempts stays).
 */
export async function updateWebhook(tx: Queryable, id: string, changes: WebhookChanges, now: Date): Promise<WebhookRow> {
  const refilters = changes.types !== undefined || changes.tenantId !== undefined;
  const [row] = await tx.query<WebhookRow>(
    `UPDATE webhooks SET
       url = CASE WHEN $2 THEN $3 ELSE url END,
       description = CASE WHEN $4 THEN $5 ELSE description END,
       types = CASE WHEN $6 THEN $7::text[] ELSE types END,
       tenant_id = CASE WHEN $8 THEN $9::uuid ELSE tenant_id END,
       enabled = CASE WHEN $10 THEN $11 ELSE enabled END,
       generation = generation + CASE WHEN $12 THEN 1 ELSE 0 END,
       next_attempt_at = CASE WHEN $2 OR ($10 AND $11) THEN NULL ELSE next_attempt_at END,
       updated_at = $13
     WHERE id = $1
     RETURNING ${COLUMNS}`,
    [
      id,
      changes.url !== undefined,
      changes.url ?? null,
      changes.description !== undefined,
      changes.description ?? null,
      changes.types !== undefined,
      changes.types ?? [],
      changes.tenantId !== undefined,
      changes.tenantId ?? null,
      changes.enabled !== undefined,
      changes.enabled ?? null,
      refilters,
      now,
    ],
  );
  return row!;
}

export async function deleteWebhook(tx: Queryable, id: string): Promise<void> {
  await tx.query('DELETE FROM webhooks WHERE id = $1', [id]);
}

/** Signs with `secret` from now on, and with the one it replaces until `previousUntil`. */
export async function rotateWebhookSecret(tx: Queryable, id: string, secret: string, previousUntil: Date, now: Date): Promise<WebhookRow> {
  const [row] = await tx.query<WebhookRow>(
    `UPDATE webhooks SET previous_secret = secret, previous_secret_until = $3, secret = $2, updated_at = $4
      WHERE id = $1 RETURNING ${COLUMNS}`,
    [id, secret, previousUntil, now],
  );
  return row!;
}

/** Delivers again from the event after `lastSeq`, at once and with a fresh count of attempts. */
export async function resetWebhookCursor(tx: Queryable, id: string, lastSeq: number, now: Date): Promise<WebhookRow> {
  const [row] = await tx.query<WebhookRow>(
    `UPDATE webhooks SET last_seq = $2, attempts = 0, next_attempt_at = NULL, generation = generation + 1, updated_at = $3
      WHERE id = $1 RETURNING ${COLUMNS}`,
    [id, lastSeq, now],
  );
  return row!;
}

// The delivery log.


export interface DeliveryRecord {
  webhookId: string;
  eventId: string | null;
  seq: number | null;
  type: string | null;
  attempt: number;
  outcome: DeliveryOutcome;
  httpStatus: number | null;
  latencyMs: number | null;
  error: string | null;
  at: Date;
}

export interface DeliveryRow {
  id: number;
  webhook_id: string;
  event_id: string | null;
  seq: number | null;
  type: string | null;
  attempt: number;
  outcome: DeliveryOutcome;
  http_status: number | null;
  latency_ms: number | null;
  error: string | null;
  attempted_at: Date;
}

const deliveryParams = (record: DeliveryRecord) => [
  record.webhookId,
  record.eventId,
  record.seq,
  record.type,
  record.attempt,
  record.outcome,
  record.httpStatus,
  record.latencyMs,
  record.error,
  record.at,
];

// Whether the endpoint still exists, its row locked against deletion (FOR KEY SHARE) until the
// statement's transaction ends. A plain EXISTS reads the statement's snapshot: a DELETE committed
// after it would leave the log row to fail its foreign key (23503) instead of being skipped. With
// the lock, a DELETE in flight is waited for and its row then counts as gone; one that comes later
// waits for this write and removes the row with the endpoint (ON DELETE CASCADE). (A row that the
// same statement has just updated is skipped by the lock, so a statement that moves the cursor
// counts its own update as proof: the update holds a stronger lock.)
const ENDPOINT_KEPT = 'EXISTS (SELECT 1 FROM webhooks WHERE id = $1::uuid FOR KEY SHARE)';

// One log row from deliveryParams() ($1 to $10), written only while its endpoint exists.
const INSERT_DELIVERY = `INSERT INTO webhook_deliveries (webhook_id, event_id, seq, type, attempt, outcome, http_status, latency_ms, error, attempted_at)
  SELECT $1::uuid, $2::uuid, $3::bigint, $4::text, $5::int, $6::text, $7::int, $8::int, $9::text, $10::timestamptz
   WHERE ${ENDPOINT_KEPT}`;

export async function insertDelivery(db: Queryable, record: DeliveryRecord): Promise<void> {
  await db.query(INSERT_DELIVERY, deliveryParams(record));
}

/** One endpoint's log, newest first, before the row `beforeId` (from the newest when null). */
export function listDeliveries(db: Queryable, webhookId: string, beforeId: number | null, limit: number): Promise<DeliveryRow[]> {
  return db.query<DeliveryRow>(
    `SELECT id, webhook_id, event_id, seq, type, attempt, outcome, http_status, latency_ms, error, attempted_at
       FROM webhook_deliveries
      WHERE webhook_id = $1 AND ($2::bigint IS NULL OR id < $2::bigint)
      ORDER BY id DESC LIMIT $3`,
    [webhookId, beforeId, limit],
  );
}

/** Deletes up to `batch` log rows older than `before`; returns how many went. */
export async function pruneDeliveries(db: Queryable, before: Date, batch: number): Promise<number> {
  const [row] = await db.query<{ deleted: number }>(
    `WITH gone AS (
       DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries WHERE attempted_at < $1 ORDER BY attempted_at LIMIT $2)
       RETURNING 1
     ) SELECT count(*)::int AS deleted FROM gone`,
    [before, batch],
  );
  return row?.deleted ?? 0;
}

// The dispatcher's reads and moves.

/** Enabled endpoints whose cursor is behind the newest event. */
export function webhooksBehind(db: Queryable): Promise<WebhookRow[]> {
  return db.query<WebhookRow>(
    `SELECT ${COLUMNS} FROM webhooks
      WHERE enabled AND last_seq < (SELECT last_seq FROM change_event_heads WHERE scope = 'global')
      ORDER BY created_at, id`,
  );
}

/** The state an endpoint's cursor is moved from, and who moves it. */
export interface CursorFence {
  id: string;
  generation: number;
  fromSeq: number;
  lease: string;
  holder: string;
}

/** Where the cursor goes: every event up to `lastSeq` handled; `attempts` made at the next one. */
export interface CursorMove {
  lastSeq: number;
  attempts: number;
  nextAttemptAt: Date | null;
}

/** What came of a fenced move: done, refused because the endpoint changed, or because the lease is gone. */
export type MoveResult = 'moved' | 'stale' | 'lease_lost';

/**
 * Moves the cursor if the fence holds, and logs the attempt either way (it was made). One
 * statement, so the move and its log row commit together.
 */
export async function moveWebhookCursor(db: Queryable, fence: CursorFence, move: CursorMove, log: DeliveryRecord | null): Promise<MoveResult> {
  const entry = log ?? { webhookId: fence.id, eventId: null, seq: null, type: null, attempt: 0, outcome: 'failed', httpStatus: null, latencyMs: null, error: null, at: new Date(0) };
  const params = [
    fence.id,
    fence.generation,
    fence.fromSeq,
    fence.lease,
    fence.holder,
    move.lastSeq,
    move.attempts,
    move.nextAttemptAt,
    log !== null,
    ...deliveryParams(entry).slice(1),
  ];
  const [row] = await db.query<{ moved: number; holding: boolean }>(
    `WITH lease AS (
       SELECT EXISTS (SELECT 1 FROM feed_consumers WHERE name = $4 AND holder = $5 AND lease_until >= now()) AS holding
     ), moved AS (
       UPDATE webhooks SET last_seq = $6, attempts = $7, next_attempt_at = $8
        WHERE id = $1 AND generation = $2 AND last_seq = $3 AND (SELECT holding FROM lease)
       RETURNING 1
     ), logged AS (
       INSERT INTO webhook_deliveries (webhook_id, event_id, seq, type, attempt, outcome, http_status, latency_ms, error, attempted_at)
       SELECT $1::uuid, $10::uuid, $11::bigint, $12::text, $13::int, $14::text, $15::int, $16::int, $17::text, $18::timestamptz
        WHERE $9 AND (EXISTS (SELECT 1 FROM moved) OR ${ENDPOINT_KEPT})
       RETURNING 1
     )
     SELECT (SELECT count(*)::int FROM moved) AS moved, (SELECT holding FROM lease) AS holding, (SELECT count(*)::int FROM logged) AS logged`,
    params,
  );
  if ((row?.moved ?? 0) > 0) return 'moved';
  return row?.holding ? 'stale' : 'lease_lost';
}
