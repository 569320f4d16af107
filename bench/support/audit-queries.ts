// Page latency of GET /v1/audit at the store level: queryEvents with limit + 1 rows and the
// keyset cursor encoded and decoded by the API's own functions, first pages against deep ones.
import { decodeCursor, encodeCursor } from '../../src/http/cursor.js';
import { queryEvents, type AuditFilters, type AuditPosition } from '../../src/store/audit.js';
import type { Database } from '../../src/store/database.js';
import { summarize, type Summary } from './stats.js';

export interface PageQuery {
  name: string;
  filters: AuditFilters;
  /** Events before the page in the query's order; 0 is the first page. */
  depth: number;
}

export interface PageResult {
  query: PageQuery;
  latency: Summary;
}

export const PAGE_LIMIT = 50;

/** Position of the event `offset` events into the query's order (newest first), by OFFSET. */
async function positionAt(db: Database, filters: AuditFilters, offset: number): Promise<{ created: Date; id: string }> {
  const conditions: string[] = [];
  const params: unknown[] = [];
  const add = (condition: (placeholder: string) => string, value: unknown) => {
    params.push(value);
    conditions.push(condition(`$${params.length}`));
  };
  if (filters.tenant_id !== undefined) add((p) => `tenant_id = ${p}`, filters.tenant_id);
  if (filters.since !== undefined) add((p) => `created >= ${p}`, filters.since);
  if (filters.until !== undefined) add((p) => `created < ${p}`, filters.until);
  const unsupported = Object.keys(filters).filter((key) => !['tenant_id', 'since', 'until'].includes(key));
  if (unsupported.length > 0) throw new Error(`positionAt: filters ${unsupported.join(', ')} are not supported`);
  params.push(offset);
  const [row] = await db.query<{ created: Date; id: string }>(
    `SELECT created, id FROM audit_log ${conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : ''}
      ORDER BY created DESC, id DESC OFFSET $${params.length} LIMIT 1`,
    params,
  );
  if (!row) throw new Error(`no event ${offset} deep for filters ${JSON.stringify(filters)}`);
  return row;
}

/**
 * The cursor a client holds after reading `depth` events page by page: the position of the
 * last event of the previous page, as the API encodes it (created as a millisecond ISO string).
 * Checked once: the page it opens must start at the very next event.
 */
async function cursorFor(db: Database, query: PageQuery): Promise<string | null> {
  if (query.depth === 0) return null;
  const last = await positionAt(db, query.filters, query.depth - 1);
  const cursor = encodeCursor([last.created.toISOString(), last.id]);
  const expected = await positionAt(db, query.filters, query.depth);
  const [first] = (await queryEvents(db, query.filters, afterOf(cursor), 1)).events;
  if (first?.id !== expected.id) {
    throw new Error(`${query.name}: the cursor page starts at ${first?.id ?? 'nothing'}, expected ${expected.id}`);
  }
  return cursor;
}

// The check GET /v1/audit applies to a cursor before using it: a millisecond ISO time, then a uuid.
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const isIssuedTimestamp = (text: string) => {
  const time = Date.parse(text);
  return !Number.isNaN(time) && new Date(time).toISOString() === text;
};
const validPart = (part: string, index: number) => (index === 0 ? isIssuedTimestamp(part) : UUID.test(part));

function afterOf(cursor: string | null): AuditPosition | null {
  if (cursor === null) return null;
  const [created, id] = decodeCursor(cursor, 2, validPart);
  return { created: created!, id: id! };
}

/** One request's worth of work: decode the cursor, fetch a page, encode the next cursor. */
async function page(db: Database, filters: AuditFilters, cursor: string | null): Promise<number> {
  const { events, more } = await queryEvents(db, filters, afterOf(cursor), PAGE_LIMIT);
  const last = events.at(-1);
  if (!more || !last) throw new Error('a benchmark page must be followed by another page');
  encodeCursor([last.created, last.id]);
  return events.length;
}

/**
 * Runs the queries round-robin, so a drift over time (autovacuum, a checkpoint) touches all of
 * them alike: `warmup` untimed rounds, then `repeats` timed ones.
 */
export async function measurePages(
  db: Database,
  queries: readonly PageQuery[],
  options: { warmup: number; repeats: number },
): Promise<PageResult[]> {
  const cursors = [];
  for (const query of queries) cursors.push(await cursorFor(db, query));
  const samples = queries.map((): number[] => []);
  for (let round = 0; round < options.warmup + options.repeats; round += 1) {
    for (const [index, query] of queries.entries()) {
      const t0 = performance.now();
      await page(db, query.filters, cursors[index]!);
      if (round >= options.warmup) samples[index]!.push(performance.now() - t0);
    }
  }
  return queries.map((query, index) => ({ query, latency: summarize(samples[index]!) }));
}
