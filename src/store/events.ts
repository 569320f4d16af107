// The change event feed (migration 0015): appended in the transaction of each change, numbered
// at its commit, read by sequence. Every read of a page takes the heads and the events in one
// statement, so the page, the newest seq and the retention mark all come from one snapshot.
import type { ChangeEvent, ChangeEventData } from '../domain/change-event.js';
import type { Queryable } from './database.js';

export interface NewChangeEvent {
  id: string;
  type: string;
  tenantId: string | null;
  occurredAt: Date;
  data: ChangeEventData;
}

/** Writes the event unnumbered; the commit numbers it (change_events_number). */
export async function insertChangeEvent(tx: Queryable, event: NewChangeEvent): Promise<void> {
  await tx.query('INSERT INTO change_events (id, type, tenant_id, occurred_at, data) VALUES ($1, $2, $3, $4, $5::jsonb)', [
    event.id,
    event.type,
    event.tenantId,
    event.occurredAt,
    JSON.stringify(event.data),
  ]);
}

interface EventRow {
  id: string;
  seq: number;
  type: string;
  tenant_id: string | null;
  tenant_prev_seq: number | null;
  occurred_at: Date;
  data: ChangeEventData;
}

const toEvent = (row: EventRow): ChangeEvent => ({
  id: row.id,
  seq: row.seq,
  type: row.type,
  tenant_id: row.tenant_id,
  tenant_prev_seq: row.tenant_prev_seq,
  occurred_at: row.occurred_at.toISOString(),
  data: row.data,
});

export interface FeedFilters {
  /** Exact types and `namespace.*` prefixes; any type when empty. */
  types: readonly string[];
  tenantId: string | null;
}

export interface FeedRead {
  /** The last position read, when the caller gave none: the retention mark. */
  after: number;
  events: ChangeEvent[];
  /** Where the next read starts: everything up to it that matched was returned. */
  next: number;
  /** The newest seq handed out when the page was read. */
  head: number;
  /** Events up to this seq have been deleted by retention. */
  pruned: number;
}

// A filtered read looks at no more than this many sequence numbers: a filter that matches
// rarely answers an empty page with a cursor further on, rather than walking the whole feed.
export const FEED_SCAN_WINDOW = 10_000;

/**
 * Up to `limit` events after `after` (from the oldest kept when null) that pass the filters. The
 * cursor that comes back has passed every event up to it, matching or not, so a consumer that
 * follows it sees each matching event exactly once.
 */
export async function readFeed(db: Queryable, after: number | null, filters: FeedFilters, limit: number): Promise<FeedRead> {
  const exact = filters.types.filter((type) => !type.endsWith('.*'));
  const prefixes = filters.types.filter((type) => type.endsWith('.*')).map((type) => type.slice(0, -1));
  const filtered = filters.types.length > 0;
  const rows = await db.query<EventRow & { head: number; pruned: number; from_seq: number; upto: number }>(
    `WITH heads AS (
       SELECT (SELECT last_seq FROM change_event_heads WHERE scope = 'global') AS head,
              (SELECT last_seq FROM change_event_heads WHERE scope = 'pruned') AS pruned
     ), bounds AS (
       SELECT head, pruned, COALESCE($1::bigint, pruned) AS from_seq,
              CASE WHEN $5 THEN LEAST(head, COALESCE($1::bigint, pruned) + $6) ELSE head END AS upto
         FROM heads
     )
     SELECT b.head, b.pruned, b.from_seq, b.upto, e.*
       FROM bounds b
       LEFT JOIN LATERAL (
         SELECT id, seq, type, tenant_id, tenant_prev_seq, occurred_at, data
           FROM change_events
          WHERE seq > b.from_seq AND seq <= b.upto
            AND ($2::uuid IS NULL OR tenant_id = $2::uuid)
            AND (NOT $5 OR type = ANY($3::text[]) OR EXISTS (SELECT 1 FROM unnest($4::text[]) AS p WHERE starts_with(type, p)))
          ORDER BY seq
          LIMIT $7
       ) e ON true`,
    [after, filters.tenantId, exact, prefixes, filtered, FEED_SCAN_WINDOW, limit],
  );
  const first = rows[0]!;
  const events = rows.filter((row) => row.id !== null).map(toEvent);
  const full = events.length === limit;
  // A full page stops at its last event; a short one has seen everything up to its bound.
  const next = full ? events[events.length - 1]!.seq : Math.max(first.from_seq, first.upto);
  return { after: first.from_seq, events, next, head: first.head, pruned: first.pruned };
}

/** The newest seq handed out, and the retention mark. */
export async function feedHeads(db: Queryable): Promise<{ head: number; pruned: number }> {
  const rows = await db.query<{ scope: string; last_seq: number }>(
    `SELECT scope, last_seq FROM change_event_heads WHERE scope IN ('global', 'pruned')`,
  );
  const of = (scope: string) => rows.find((row) => row.scope === scope)?.last_seq ?? 0;
  return { head: of('global'), pruned: of('pruned') };
}

/**
 * Deletes the oldest events, up to `batch` of them, among those that occurred before `before`,
 * and moves the retention mark past them. Only a prefix of the sequence is ever deleted, so every
 * cursor at or after the mark still reads every event after it. Returns how many went.
 */
export async function pruneFeed(db: Queryable, before: Date, batch: number): Promise<number> {
  const rows = await db.query<{ deleted: number }>(
    `WITH last_old AS (
       SELECT seq FROM change_events WHERE occurred_at < $1 AND seq IS NOT NULL ORDER BY occurred_at DESC LIMIT 1
     ), upto AS (
       -- A join, not LEAST over two subqueries: LEAST ignores a NULL, so with no old event it
       -- answered the mark plus a batch, and housekeeping deleted the newest events batch after
       -- batch until the feed was empty. With no old event there is no row here, and no delete.
       SELECT LEAST(old.seq, mark.last_seq + $2) AS seq
         FROM last_old old, change_event_heads mark
        WHERE mark.scope = 'pruned'
     ), gone AS (
       DELETE FROM change_events WHERE seq <= (SELECT seq FROM upto) RETURNING seq
     ), mark AS (
       UPDATE change_event_heads SET last_seq = GREATEST(last_seq, (SELECT max(seq) FROM gone))
        WHERE scope = 'pruned' AND EXISTS (SELECT 1 FROM gone) RETURNING 1
     )
     SELECT count(*)::int AS deleted FROM gone`,
    [before, batch],
  );
  return rows[0]?.deleted ?? 0;
}
