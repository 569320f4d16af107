// Queries on the audit log. Appends take the chain head's row lock for the duration of the
// caller's transaction: events of one chain get consecutive positions in commit order, while
// chains of different tenants never wait for each other.
import { randomUUID } from 'node:crypto';
import {
  PLATFORM_CHAIN,
  chainKeyOf,
  hashRecord,
  toRecord,
  type AuditEventInput,
  type AuditPublisher,
  type AuditRecord,
  type CanonicalVersion,
  type Crud,
} from '../domain/audit.js';
import type { ChainContext, ChainHead } from '../domain/audit-chain.js';
import { auditAppends } from '../observability/metrics.js';
import type { Queryable } from './database.js';

interface AuditRow {
  id: string;
  chain_key: string;
  chain_seq: number;
  prev_hash: string | null;
  hash: string | null;
  tenant_id: string | null;
  product: string | null;
  action: string;
  crud: Crud;
  group_id: string | null;
  group_name: string | null;
  actor_id: string | null;
  actor_name: string | null;
  actor_href: string | null;
  actor_fields: Record<string, string> | null;
  target_id: string | null;
  target_name: string | null;
  target_href: string | null;
  target_type: string | null;
  target_fields: Record<string, string> | null;
  source_ip: string | null;
  created: Date;
  received: Date;
  description: string | null;
  is_failure: boolean;
  is_anonymous: boolean;
  fields: Record<string, string> | null;
  metadata: Record<string, string> | null;
  component: string | null;
  version: string | null;
  external_id: string | null;
  publisher_sub: string | null;
  publisher_client: string | null;
  canonical_version: CanonicalVersion;
}

export interface StoredEvent extends AuditRecord {
  hash: string | null;
}

const COLUMNS = `id, chain_key, chain_seq, prev_hash, hash, tenant_id, product, action, crud,
  group_id, group_name, actor_id, actor_name, actor_href, actor_fields,
  target_id, target_name, target_href, target_type, target_fields, source_ip, created, received,
  description, is_failure, is_anonymous, fields, metadata, component, version, external_id,
  publisher_sub, publisher_client, canonical_version`;

function fromRow(row: AuditRow): StoredEvent {
  return {
    id: row.id,
    chain_key: row.chain_key,
    chain_seq: row.chain_seq,
    prev_hash: row.prev_hash,
    hash: row.hash,
    tenant_id: row.tenant_id,
    product: row.product,
    action: row.action,
    crud: row.crud,
    group: row.group_id === null ? null : { id: row.group_id, name: row.group_name },
    actor:
      row.actor_id === null
        ? null
        : { id: row.actor_id, name: row.actor_name, href: row.actor_href, fields: row.actor_fields },
    target:
      row.target_id === null
        ? null
        : {
            id: row.target_id,
            name: row.target_name,
            href: row.target_href,
            type: row.target_type,
            fields: row.target_fields,
          },
    source_ip: row.source_ip,
    created: row.created.toISOString(),
    received: row.received.toISOString(),
    description: row.description,
    is_failure: row.is_failure,
    is_anonymous: row.is_anonymous,
    fields: row.fields,
    metadata: row.metadata,
    component: row.component,
    version: row.version,
    external_id: row.external_id,
    publisher: row.publisher_sub === null ? null : { sub: row.publisher_sub, client: row.publisher_client },
    canonical_version: row.canonical_version,
  };
}

export interface AppendResult {
  id: string;
  hash: string;
  /** True when external_id matched an event already in the chain: nothing was appended. */
  replayed: boolean;
}

// jsonb parameters go in as JSON text; both drivers would otherwise pass a JS object through
// their own array/object conversion.
const json = (value: Record<string, string> | null | undefined) => (value == null ? null : JSON.stringify(value));

/** The INSERT of one stored event; its parameters come from eventRowParams(). */
export const INSERT_EVENT = `INSERT INTO audit_log (${COLUMNS})
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::jsonb, $16, $17, $18, $19,
          $20::jsonb, $21, $22, $23, $24, $25, $26, $27::jsonb, $28::jsonb, $29, $30, $31, $32, $33, $34)`;

/** The parameters of INSERT_EVENT for a record and its hash, in COLUMNS order. */
export function eventRowParams(record: AuditRecord, hash: string): unknown[] {
  return [
    record.id,
    record.chain_key,
    record.chain_seq,
    record.prev_hash,
    hash,
    record.tenant_id,
    record.product,
    record.action,
    record.crud,
    record.group?.id ?? null,
    record.group?.name ?? null,
    record.actor?.id ?? null,
    record.actor?.name ?? null,
    record.actor?.href ?? null,
    json(record.actor?.fields),
    record.target?.id ?? null,
    record.target?.name ?? null,
    record.target?.href ?? null,
    record.target?.type ?? null,
    json(record.target?.fields),
    record.source_ip,
    record.created,
    record.received,
    record.description,
    record.is_failure,
    record.is_anonymous,
    json(record.fields),
    json(record.metadata),
    record.component,
    record.version,
    record.external_id,
    record.publisher?.sub ?? null,
    record.publisher?.client ?? null,
    record.canonical_version,
  ];
}

/**
 * Locks the chain's head row until the transaction ends, creating it on the chain's first event.
 * The common case is one SELECT ... FOR UPDATE, which writes nothing.
 */
async function lockChainHead(tx: Queryable, chainKey: string): Promise<{ last_seq: number; last_hash: string | null }> {
  const lock = () =>
    tx.query<{ last_seq: number; last_hash: string | null }>(
      'SELECT last_seq, last_hash FROM audit_chains WHERE chain_key = $1 FOR UPDATE',
      [chainKey],
    );
  const [head] = await lock();
  if (head) return head;
  await tx.query('INSERT INTO audit_chains (chain_key, last_seq) VALUES ($1, 0) ON CONFLICT (chain_key) DO NOTHING', [chainKey]);
  return (await lock())[0]!;
}

/**
 * Appends one event inside the caller's transaction. `publisher` is the authenticated caller of
 * POST /v1/audit; the registry's own events have none.
 */
export async function appendEvent(
  tx: Queryable,
  input: AuditEventInput,
  now: Date,
  publisher: AuditPublisher | null = null,
): Promise<AppendResult> {
  const chainKey = chainKeyOf(input.tenant_id);
  const head = await lockChainHead(tx, chainKey);
  if (input.external_id) {
    const [existing] = await tx.query<{ id: string; hash: string }>(
      'SELECT id, hash FROM audit_log WHERE chain_key = $1 AND external_id = $2',
      [chainKey, input.external_id],
    );
    if (existing) return { ...existing, replayed: true };
  }

  const record = toRecord(input, {
    id: randomUUID(),
    chainSeq: head.last_seq + 1,
    prevHash: head.last_hash,
    received: now,
    publisher,
  });
  const hash = hashRecord(record);
  // The row and the new head in one statement: one round trip less while the head is locked.
  await tx.query(
    `WITH appended AS (${INSERT_EVENT} RETURNING chain_key, chain_seq, hash)
     UPDATE audit_chains SET last_seq = appended.chain_seq, last_hash = appended.hash
     FROM appended WHERE audit_chains.chain_key = appended.chain_key`,
    eventRowParams(record, hash),
  );
  auditAppends.inc();
  return { id: record.id, hash, replayed: false };
}

export interface AuditFilters {
  tenant_id?: string;
  product?: string;
  actor_id?: string;
  /** Exact, or a prefix when it ends with '*'. */
  action?: string;
  target_id?: string;
  target_type?: string;
  crud?: Crud;
  is_failure?: boolean;
  since?: string;
  until?: string;
}

/** A position in the (created, id) order: the last event of the previous page. */
export type AuditPosition = { created: string; id: string };

const escapeLike = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

function whereClause(filters: AuditFilters, after: AuditPosition | null): { sql: string; params: unknown[] } {
  const conditions: string[] = [];
  const params: unknown[] = [];
  const add = (condition: (placeholder: string) => string, value: unknown) => {
    params.push(value);
    conditions.push(condition(`$${params.length}`));
  };
  const equal = ['tenant_id', 'product', 'actor_id', 'target_id', 'target_type', 'crud', 'is_failure'] as const;
  for (const column of equal) {
    const value = filters[column];
    if (value !== undefined) add((p) => `${column} = ${p}`, value);
  }
  if (filters.action !== undefined) {
    if (filters.action.endsWith('*')) add((p) => `action LIKE ${p}`, `${escapeLike(filters.action.slice(0, -1))}%`);
    else add((p) => `action = ${p}`, filters.action);
  }
  if (filters.since !== undefined) add((p) => `created >= ${p}`, filters.since);
  // A cursor before `until` already bounds the scan from above; PostgreSQL 18 (PGlite) would
  // otherwise start the index scan at `until` and walk every row down to the cursor.
  const cursorBounds = after !== null && filters.until !== undefined && Date.parse(after.created) < Date.parse(filters.until);
  if (filters.until !== undefined && !cursorBounds) add((p) => `created < ${p}`, filters.until);
  if (after) {
    params.push(after.created, after.id);
    conditions.push(`(created, id) < ($${params.length - 1}, $${params.length})`);
  }
  return { sql: conditions.length === 0 ? '' : `WHERE ${conditions.join(' AND ')}`, params };
}

/**
 * How much one read of the log holds at once: at most BATCH_ROWS rows, and no more rows than fit
 * in BATCH_BYTES of their stored size (the first row always comes, so every batch moves on). A
 * thousand small events or eight of the largest: either way a reader, an export stalled by its
 * client or a chain verification keeps a quarter of a megabyte of events in memory, and the work
 * on one batch (hashing, serializing) is short enough not to hold up the hot paths for long.
 */
export const BATCH_ROWS = 1000;
export const BATCH_BYTES = 256 * 1024;

/** Rows of one read, and whether more match after the last of them. */
export interface Batch {
  events: StoredEvent[];
  more: boolean;
}

const ORDERS = { page: 'created DESC, id DESC', chain: 'chain_seq' } as const;

/**
 * The rows matching `where`, in `order`: at most `limits.rows`, and only as many as fit in
 * `limits.bytes` of their stored size (the first always comes). One statement, so one snapshot:
 * the running size and the id of the row after each are window functions over the same ordered
 * index scan; rows past the budget are filtered out before they are sent, and the row after the
 * last one sent says whether more follow.
 */
async function boundedRead(
  db: Queryable,
  where: { sql: string; params: unknown[] },
  order: keyof typeof ORDERS,
  limits: { rows: number; bytes: number },
): Promise<Batch> {
  const rows = await db.query<AuditRow & { next_id: string | null }>(
    `SELECT ${COLUMNS}, next_id FROM (
       SELECT ${COLUMNS}, sum(size_bytes) OVER w - size_bytes AS bytes_before, lead(id) OVER w AS next_id
         FROM audit_log ${where.sql}
       WINDOW w AS (ORDER BY ${ORDERS[order]} ROWS UNBOUNDED PRECEDING)
        ORDER BY ${ORDERS[order]} LIMIT ${Number(limits.rows)}
     ) AS batch
     WHERE bytes_before < ${Number(limits.bytes)}
     ORDER BY ${ORDERS[order]}`,
    where.params,
  );
  return { events: rows.map(fromRow), more: (rows.at(-1)?.next_id ?? null) !== null };
}

/**
 * One page, newest first by (created, id), strictly after `after`: up to `limit` events, fewer
 * when they are large (a page holds at most `bytes` of them), and whether another page follows.
 */
export function queryEvents(
  db: Queryable,
  filters: AuditFilters,
  after: AuditPosition | null,
  limit: number,
  bytes = BATCH_BYTES,
): Promise<Batch> {
  return boundedRead(db, whereClause(filters, after), 'page', { rows: limit, bytes });
}

/** Every matching event, newest first, batch by batch so memory stays flat. */
export async function* scanEvents(db: Queryable, filters: AuditFilters, limits = { rows: BATCH_ROWS, bytes: BATCH_BYTES }): AsyncGenerator<StoredEvent> {
  let after: AuditPosition | null = null;
  for (;;) {
    const batch = await boundedRead(db, whereClause(filters, after), 'page', limits);
    yield* batch.events;
    const last = batch.events.at(-1);
    if (!batch.more || !last) return;
    after = { created: last.created, id: last.id };
  }
}

/** The events of one chain in chain order, batch by batch. */
export async function* walkChain(db: Queryable, chainKey: string, limits = { rows: BATCH_ROWS, bytes: BATCH_BYTES }): AsyncGenerator<StoredEvent> {
  let afterSeq = 0;
  for (;;) {
    const where = { sql: 'WHERE chain_key = $1 AND chain_seq > $2', params: [chainKey, afterSeq] };
    const batch = await boundedRead(db, where, 'chain', limits);
    yield* batch.events;
    const last = batch.events.at(-1);
    if (!batch.more || !last) return;
    afterSeq = last.chain_seq;
  }
}

export async function chainHead(db: Queryable, chainKey: string): Promise<ChainHead | undefined> {
  const [head] = await db.query<ChainHead>(
    'SELECT last_seq, last_hash, legacy_rows FROM audit_chains WHERE chain_key = $1',
    [chainKey],
  );
  return head;
}

/** What verification checks the rows against besides the head: see ChainContext. */
export async function chainContext(db: Queryable, chainKey: string): Promise<ChainContext> {
  const [row] = await db.query<{ tenant_exists: boolean; hashed_since: Date | null }>(
    `SELECT EXISTS (SELECT 1 FROM tenants WHERE id = $1::uuid) AS tenant_exists,
            (SELECT applied_at FROM schema_migrations WHERE version = 2) AS hashed_since`,
    [chainKey === PLATFORM_CHAIN ? null : chainKey],
  );
  return { tenantExists: row?.tenant_exists ?? false, hashedSince: row?.hashed_since?.toISOString() ?? null };
}
