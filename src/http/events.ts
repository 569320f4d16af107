// /v1/events: the change feed, read page by page or followed as Server-Sent Events. Both read the
// same sequence with the same cursor (an event's seq), so a consumer can switch between them.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { typeMatcher, type ChangeEvent } from '../domain/change-event.js';
import type { EventInterest, FeedSignal } from '../events/feed-signal.js';
import type { Database } from '../store/database.js';
import { readFeed, type FeedFilters, type FeedRead } from '../store/events.js';
import { AppError, invalidInput } from '../problems.js';
import { tenantFrom, type Access } from './access.js';
import { HeavyReadGate } from './heavy-reads.js';
import { sendStreamed } from './streamed-answer.js';
import { EventListQuery, EventPageSchema, EventStreamQuery, SEQ_PATTERN, parseTypeFilters } from './schemas/event.js';
import { RefTo } from './schemas/parts.js';

export interface EventStreamOptions {
  /** How long a stream without events goes before it sends a comment line (proxies cut idle ones). */
  heartbeatMs: number;
  /**
   * How long one stream lasts at most (never past its token's expiry): access is checked when a
   * stream opens, so a caller who lost a role or whose token ran out is cut at the latest then.
   * EventSource reconnects with Last-Event-ID, and a fresh token, and misses nothing.
   */
  maxLifetimeMs: number;
  /** Streams of tenant users (IT admins) at once: per tenant, and in all on this replica. */
  tenantStreams: { perReplica: number; perTenant: number };
}

// Tenant users may hold half of the replica's streams (DEFAULT_HEAVY_READS in app.ts gives it
// 200): however many IT admins open them, operators and service accounts keep the other half.
export const DEFAULT_EVENT_STREAM: EventStreamOptions = {
  heartbeatMs: 15_000,
  maxLifetimeMs: 15 * 60_000,
  tenantStreams: { perReplica: 100, perTenant: 10 },
};

// Operators and service accounts read every tenant's events; an IT admin reads its own tenant's.
const READ_FEED: Access = { allow: ['platform_admin', 'service', 'it_admin'], tenant: tenantFrom.query('tenant_id') };

// Events per read of the stream: each read is one chunk held until the client takes it, and at
// most one more chunk waits for a client that reads slowly (sendStreamed reads one ahead), so this bounds
// the memory a slow reader costs before its stall cuts it.
const STREAM_PAGE = 100;

const SEQ = new RegExp(SEQ_PATTERN);

function filtersOf(query: { types?: string; tenant_id?: string }): FeedFilters {
  const types = parseTypeFilters(query.types);
  if (types === undefined) {
    throw invalidInput([
      { path: '/types', in: 'querystring', message: 'must be comma-separated event types (a.b or a.*), at most 20' },
    ]);
  }
  return { types, tenantId: query.tenant_id ?? null };
}

/**
 * Refuses a cursor retention has passed (410) or one this feed never reached (400). The newest
 * seq is named to operators only: to a tenant's admin it would tell how busy every tenant is.
 */
function checkCursor(after: number | null, read: Pick<FeedRead, 'head' | 'pruned'>, nameHead: boolean): void {
  if (after === null) return;
  if (after < read.pruned) {
    throw new AppError('cursor_expired', {
      detail: `events up to ${read.pruned} are past retention; read again without a cursor to start from the oldest kept`,
      extensions: { oldest_seq: read.pruned + 1 },
    });
  }
  if (after > read.head) {
    throw new AppError('invalid_cursor', {
      detail: `the feed has not reached ${after}${nameHead ? ` (its newest event is ${read.head})` : ''}; this cursor is from another feed`,
      errors: [{ path: '/after', in: 'querystring', message: 'is ahead of the newest event' }],
    });
  }
}

/** Where a stream starts: Last-Event-ID (a reconnecting EventSource), else `after`, else now. */
function streamStart(request: FastifyRequest, after: string | undefined): number | null {
  const header = request.headers['last-event-id'];
  if (header === undefined) return after === undefined ? null : Number(after);
  if (typeof header !== 'string' || !SEQ.test(header.trim())) {
    throw new AppError('invalid_cursor', {
      detail: 'Last-Event-ID must be the id of an event this stream sent',
      errors: [{ path: '/last-event-id', in: 'headers', message: 'is not an event seq' }],
    });
  }
  return Number(header.trim());
}

/** Whether the principal reads every tenant's events (operators, service accounts). */
const readsEveryTenant = (request: FastifyRequest) => request.principal?.isPlatformAdmin === true || request.principal?.isService === true;

/** What wakes a stream: an event of its tenant and types. */
function interestIn(filters: FeedFilters): EventInterest | undefined {
  if (filters.tenantId === null && filters.types.length === 0) return undefined;
  const typeMatches = typeMatcher(filters.types);
  return (note) => (filters.tenantId === null || note.tenantId === filters.tenantId) && typeMatches(note.type);
}

const sseOf = (event: ChangeEvent) => `id: ${event.seq}\ndata: ${JSON.stringify(event)}\n\n`;

async function* streamLines(
  db: Database,
  feed: FeedSignal,
  from: number,
  filters: FeedFilters,
  options: EventStreamOptions,
  signal: AbortSignal,
): AsyncGenerator<string> {
  // Clients reconnect after this long when the stream drops.
  yield 'retry: 2000\n\n';
  let cursor = from;
  const interest = interestIn(filters);
  while (!signal.aborted) {
    const read = await readFeed(db, cursor, filters, STREAM_PAGE);
    if (read.events.length > 0) yield read.events.map(sseOf).join('');
    cursor = read.next;
    if (cursor < read.head) continue;
    const woken = await feed.wait(cursor, options.heartbeatMs, signal, interest);
    if (!woken && !signal.aborted) yield ': heartbeat\n\n';
  }
}

export const eventRoutes: FastifyPluginAsyncTypebox<{
  db: Database;
  feed: FeedSignal;
  stream: EventStreamOptions;
  stallMs: number;
}> = async (app, { db, feed, stream, stallMs }) => {
  // Open streams end when the app closes; they would otherwise hold the listener open until the
  // shutdown deadline. Ending the answer alone is not enough: its keep-alive connection then sits
  // idle, after Fastify closed the idle ones, and server.close() waits for it until the keep-alive
  // timeout (72 s). So each stream's connection is ended once its answer's last chunk is out.
  const open = new Set<() => void>();
  const tenantStreams = new HeavyReadGate(
    { perReplica: stream.tenantStreams.perReplica, perCaller: stream.tenantStreams.perTenant },
    'event streams of tenant users',
  );
  app.addHook('preClose', (done) => {
    for (const end of open) end();
    done();
  });

  app.get(
    '/v1/events',
    {
      config: { access: READ_FEED, problems: ['invalid_cursor', 'cursor_expired'] },
      schema: {
        operationId: 'listEvents',
        tags: ['events'],
        summary: 'Change events in sequence order, after a cursor',
        description:
          'Every change the registry makes, one event each, committed with the change. `seq` has no gaps, so a consumer that follows `next_cursor` misses nothing; `tenant_prev_seq` lets a consumer of one tenant check the same. Events older than the retention (EVENT_RETENTION_DAYS) are gone: a cursor before them answers 410 cursor_expired.',
        querystring: EventListQuery,
        response: { 200: RefTo(EventPageSchema) },
      },
    },
    async (request) => {
      const filters = filtersOf(request.query);
      const after = request.query.after === undefined ? null : Number(request.query.after);
      const read = await readFeed(db, after, filters, request.query.limit ?? 100);
      checkCursor(after, read, readsEveryTenant(request));
      return { items: read.events, next_cursor: String(read.next), has_more: read.next < read.head };
    },
  );

  app.get(
    '/v1/events/stream',
    {
      config: { access: READ_FEED, heavyRead: 'stream', problems: ['invalid_cursor', 'cursor_expired'] },
      schema: {
        operationId: 'streamEvents',
        tags: ['events'],
        summary: 'Change events as Server-Sent Events, as they commit',
        description:
          'Each event is one SSE message whose `id` is its seq and whose `data` is the event as JSON. A reconnecting EventSource sends `Last-Event-ID` and resumes after it; without it the stream starts after `after`, or with the next event. A comment line comes when nothing happened for 15 seconds. A stream ends after 15 minutes, or when its token expires: reconnect with Last-Event-ID (and a fresh token). A client that stops reading is disconnected rather than buffered for.',
        querystring: EventStreamQuery,
        response: {
          200: {
            description: 'The stream',
            content: { 'text/event-stream': { schema: { type: 'string', description: 'id: <seq>, data: <ChangeEvent JSON>' } } },
          },
        },
      },
    },
    async (request, reply) => {
      const filters = filtersOf(request.query);
      const start = streamStart(request, request.query.after);
      // The first read checks the cursor before the answer starts; the stream reads it again.
      const probe = await readFeed(db, start, filters, 1);
      checkCursor(start, probe, readsEveryTenant(request));
      // A tenant user's stream also takes a slot of its tenant's (the access rules made sure it
      // names its tenant): tenant users never hold all of the replica's streams.
      const release = readsEveryTenant(request) ? () => {} : tenantStreams.admit(filters.tenantId ?? request.ip);
      const controller = new AbortController();
      const socket = request.raw.socket;
      const end = () => {
        reply.raw.once('finish', () => socket.end(() => socket.destroy()));
        controller.abort();
      };
      open.add(end);
      const expiresAt = request.principal?.expiresAt || Number.POSITIVE_INFINITY;
      const lifetime = setTimeout(() => controller.abort(), Math.max(0, Math.min(stream.maxLifetimeMs, expiresAt - Date.now())));
      reply.raw.once('close', () => {
        clearTimeout(lifetime);
        release();
        controller.abort();
        open.delete(end);
      });
      return sendStreamed(request, reply, streamLines(db, feed, start ?? probe.head, filters, stream, controller.signal), {
        contentType: 'text/event-stream; charset=utf-8',
        stallMs,
        headers: { 'cache-control': 'no-store', 'x-accel-buffering': 'no' },
      });
    },
  );
};
