// The JetStream relay: every change event, in seq order, to the subject <prefix>.<type> of one
// JetStream stream, with Nats-Msg-Id = the event's id so the stream stores each event once however
// often it is published. Any number of replicas run it; the one holding the lease of the feed
// consumer `nats:<stream>` (feed_consumers) publishes, the others stand by and take over once the
// lease lapses, resuming from the consumer's cursor.
//
// What holds it together:
//  - The cursor moves only past events the stream acknowledged, in seq order, and only while the
//    lease is held (advanceConsumer is fenced). An event is therefore never skipped: after any
//    failure (NATS away, a lost lease, a crash) publishing resumes after the last acknowledged
//    event, and what was in flight is published again and answered "duplicate" by the stream.
//  - A new consumer (no row yet) starts from the oldest event the feed still keeps: a stream set up
//    today receives the retained history first, then every new event.
//  - NATS being away never blocks anything else: the relay waits and retries on its own timers,
//    keeps its lease (so no other replica re-publishes the same tail meanwhile) and the service
//    starts and serves without NATS.
import { Events, headers, type JetStreamClient, type NatsConnection, type PubAck } from 'nats';
import type { ChangeEvent } from '../domain/change-event.js';
import { natsRelayPublished } from '../observability/metrics.js';
import type { Database } from '../store/database.js';
import { readFeed } from '../store/events.js';
import { advanceConsumer, consumerState, DEFAULT_LEASE_MS, releaseLease, takeLease, type Lease } from '../store/feed-consumers.js';
import type { FeedSignal } from './feed-signal.js';
import { connectNats, ensureStream, natsServers } from './nats-stream.js';

export const DEFAULT_SUBJECT_PREFIX = 'tenant-registry.events';
/** The header carrying the event's seq, so a consumer checks order and gaps without parsing the body. */
export const SEQ_HEADER = 'Registry-Event-Seq';

// Events read per page; each page is one indexed range read.
const DEFAULT_BATCH = 500;
// Publishes awaiting their acknowledgement: enough to keep a round trip to NATS from pacing the
// relay, few enough that a failure re-publishes little (the stream drops those as duplicates).
const IN_FLIGHT = 64;
// One acknowledgement; a publish unanswered this long is treated as lost and published again.
const PUBLISH_TIMEOUT_MS = 5_000;
// The feed signal wakes the relay at each commit; this read catches a wake-up that went missing.
const FALLBACK_READ_MS = 5_000;
// Retries after a failure wait 250 ms, doubling up to 30 s: quick after a blip, quiet in an outage.
const BACKOFF_MIN_MS = 250;
const BACKOFF_MAX_MS = 30_000;

export interface RelayLog {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
}

export interface NatsRelayOptions {
  db: Database;
  feed: FeedSignal;
  /** nats:// URLs; a user and password in them are used to connect and never logged. */
  servers: string[];
  stream: string;
  subjectPrefix?: string;
  /** This replica's name in the lease (unique per process). */
  holder: string;
  leaseMs?: number;
  batch?: number;
  /** The max_age of a stream the relay creates (the feed's retention); null: no limit. */
  streamMaxAgeMs?: number | null;
  onError: (error: unknown) => void;
  log?: RelayLog;
}

export interface NatsRelayState {
  /** Connected to a NATS server now. */
  connected: boolean;
  /** This replica holds the lease and is the one publishing. */
  leaseHeld: boolean;
  /** Every event up to this seq is in the stream (as far as this replica knows). */
  publishedSeq: number;
  /** The newest seq of the feed known to this replica. */
  head: number;
  /** head - publishedSeq. */
  lag: number;
  /** Events this replica published that the stream stored. */
  published: number;
  /** Events this replica published that the stream already had (re-publishes after a failure). */
  duplicates: number;
  /** The last failure, for the operator; null once publishing works again. */
  lastError: string | null;
}

export interface NatsRelay {
  state(): NatsRelayState;
  /**
   * Stops publishing, waits for what is in flight, saves the cursor and (unless release is false)
   * hands the lease back so another replica takes over at once. release: false leaves the lease to
   * lapse, as a crash would.
   */
  stop(options?: { release?: boolean }): Promise<void>;
}

/**
 * <prefix>.<type>, one subject token per dotted part of the type. The registry's types are plain
 * dotted names; anything else NATS would read as a wildcard or an empty token is replaced, so no
 * event can be refused for its subject (and hold up every event after it).
 */
export function subjectFor(prefix: string, type: string): string {
  const tokens = type
    .split('.')
    .filter((token) => token !== '')
    .map((token) => token.replace(/[^A-Za-z0-9_-]/g, '_'));
  return `${prefix}.${tokens.length > 0 ? tokens.join('.') : '_'}`;
}

/** Resolves after ms, or at once when signal aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

const backoff = (failures: number) => Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** Math.min(failures - 1, 20));

type Outcome = { ok: true; ack: PubAck } | { ok: false; error: Error };

export function startNatsRelay(options: NatsRelayOptions): NatsRelay {
  const { db, feed, holder } = options;
  const consumer = `nats:${options.stream}`;
  const prefix = options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const batch = options.batch ?? DEFAULT_BATCH;
  const target = natsServers(options.servers);
  const where = { servers: target.servers, stream: options.stream };
  const stopping = new AbortController();
  let release = true;

  let nc: NatsConnection | null = null;
  let connected = false;
  let streamReady = false;
  let leaseHeld = false;
  // The highest seq this process saw acknowledged with every seq before it: safe to resume after
  // even when the database refused the cursor's move (the events are in the stream all the same).
  let acked = 0;
  let publishedSeq = 0;
  let published = 0;
  let duplicates = 0;
  let lastError: string | null = null;
  let unreachableSaid = false;

  const fail = (error: unknown) => {
    lastError = error instanceof Error ? error.message : String(error);
    // While NATS is known to be away, one line said so (connection() and watch()); each retry
    // that fails for that reason is not news.
    if (!connected && (unreachableSaid || nc !== null)) return;
    options.onError(error);
  };

  /** The open connection, or a new one; throws when no server answers. */
  const connection = async (): Promise<NatsConnection> => {
    if (nc && !nc.isClosed()) return nc;
    nc = null;
    let opened: NatsConnection;
    try {
      opened = await connectNats(target, holder);
    } catch (error) {
      if (!unreachableSaid) options.log?.warn({ ...where, err: error }, 'NATS is unreachable: change events wait in the feed until it answers');
      unreachableSaid = true;
      throw error;
    }
    if (stopping.signal.aborted) {
      await opened.close();
      throw new Error('relay stopped');
    }
    nc = opened;
    connected = true;
    streamReady = false;
    if (unreachableSaid) options.log?.info(where, 'NATS answers again: publishing change events');
    unreachableSaid = false;
    void watch(opened);
    return opened;
  };

  /** Follows the connection's state: publishing pauses while it is down, the stream is checked again after. */
  const watch = async (conn: NatsConnection) => {
    for await (const status of conn.status()) {
      if (status.type === Events.Disconnect) {
        connected = false;
        options.log?.warn(where, 'lost the connection to NATS; reconnecting');
      } else if (status.type === Events.Reconnect) {
        connected = true;
        streamReady = false;
        options.log?.info(where, 'reconnected to NATS');
      }
    }
    connected = false;
  };

  /**
   * Publishes events in order with up to IN_FLIGHT awaiting their acknowledgement, moving `acked`
   * along the acknowledgements in order. Stops issuing at the first failure or when the
   * connection drops (so nothing issued later can land in the stream ahead of a lost one), waits
   * for what is in flight and throws the failure.
   */
  const publishAll = async (js: JetStreamClient, events: ChangeEvent[], signal: AbortSignal) => {
    const inFlight: { seq: number; outcome: Promise<Outcome> }[] = [];
    let failure: Error | null = null;
    const settle = async () => {
      const { seq, outcome } = inFlight.shift()!;
      const result = await outcome;
      if (!result.ok) {
        failure ??= result.error;
        return;
      }
      natsRelayPublished.inc({ result: result.ack.duplicate ? 'duplicate' : 'stored' });
      if (result.ack.duplicate) duplicates += 1;
      else published += 1;
      // After a failure the later acknowledgements do not move the cursor: the failed event and
      // everything after it are published again (and those answered "duplicate").
      if (failure === null) acked = Math.max(acked, seq);
    };
    for (const event of events) {
      if (inFlight.length >= IN_FLIGHT) await settle();
      if (failure !== null || signal.aborted) break;
      if (!connected) {
        failure = new Error('the connection to NATS dropped');
        break;
      }
      const hdrs = headers();
      hdrs.set(SEQ_HEADER, String(event.seq));
      const outcome = js
        .publish(subjectFor(prefix, event.type), JSON.stringify(event), {
          msgID: event.id,
          headers: hdrs,
          expect: { streamName: options.stream },
          timeout: PUBLISH_TIMEOUT_MS,
        })
        .then(
          (ack): Outcome => ({ ok: true, ack }),
          (error: unknown): Outcome => ({ ok: false, error: error instanceof Error ? error : new Error('publish failed', { cause: error }) }),
        );
      inFlight.push({ seq: event.seq, outcome });
    }
    while (inFlight.length > 0) await settle();
    if (failure !== null) throw failure;
  };

  /** Publishes while the lease is held; returns when it is lost or the relay stops. */
  const hold = async (lease: Lease) => {
    const lost = new AbortController();
    const signal = AbortSignal.any([stopping.signal, lost.signal]);
    let renewedAt = Date.now();
    let renewing: Promise<unknown> = Promise.resolve();
    const renew = setInterval(() => {
      renewing = takeLease(db, consumer, holder, leaseMs).then(
        (renewed) => {
          if (renewed) renewedAt = Date.now();
          else lost.abort();
        },
        (error: unknown) => {
          fail(error);
          // Unrenewed for a whole lease: another replica may hold it by now.
          if (Date.now() - renewedAt >= leaseMs) lost.abort();
        },
      );
    }, leaseMs / 3);
    renew.unref();
    leaseHeld = true;
    let saved = lease.lastSeq;
    acked = Math.max(acked, saved);
    let failures = 0;
    const save = async () => {
      if (acked <= saved) return;
      if (await advanceConsumer(db, consumer, holder, acked)) saved = acked;
      else lost.abort();
    };
    try {
      while (!signal.aborted) {
        try {
          const conn = await connection();
          if (!streamReady) {
            const check = await ensureStream(conn, options.stream, prefix, options.streamMaxAgeMs ?? null);
            for (const warning of check.warnings) options.log?.warn(where, warning);
            if (check.created) options.log?.info(where, 'created the JetStream stream');
            streamReady = true;
          }
          const page = await readFeed(db, acked, { types: [], tenantId: null }, batch);
          const first = page.events[0];
          if (first && first.seq > acked + 1) {
            // Retention deleted them before they were published (the relay was off for longer
            // than EVENT_RETENTION_DAYS): nothing is left to publish; say so, and go on.
            options.log?.warn({ ...where, from: acked + 1, to: first.seq - 1 }, 'change events were pruned from the feed before they were published');
          }
          if (page.events.length === 0) {
            if (page.next > acked) {
              options.log?.warn({ ...where, from: acked + 1, to: page.next }, 'change events were pruned from the feed before they were published');
              acked = page.next;
            }
            await save();
            failures = 0;
            lastError = null;
            await feed.wait(acked, FALLBACK_READ_MS, signal);
            continue;
          }
          try {
            await publishAll(conn.jetstream(), page.events, signal);
          } finally {
            await save();
          }
          failures = 0;
          lastError = null;
        } catch (error) {
          if (signal.aborted) break;
          // The stream may have been deleted or changed: check it again before the next page.
          streamReady = false;
          failures += 1;
          fail(error);
          await sleep(backoff(failures), signal);
        }
      }
    } finally {
      clearInterval(renew);
      await renewing;
      leaseHeld = false;
      publishedSeq = acked;
    }
  };

  const run = async () => {
    let failures = 0;
    while (!stopping.signal.aborted) {
      try {
        // Only a replica that reaches NATS competes for the lease: one that cannot leaves it to one that can.
        await connection();
        const lease = await takeLease(db, consumer, holder, leaseMs);
        if (lease) {
          await hold(lease);
        } else {
          publishedSeq = (await consumerState(db, consumer))?.lastSeq ?? publishedSeq;
          await sleep(leaseMs / 3, stopping.signal);
        }
        failures = 0;
      } catch (error) {
        if (stopping.signal.aborted) break;
        failures += 1;
        fail(error);
        await sleep(backoff(failures), stopping.signal);
      }
    }
    if (release) await releaseLease(db, consumer, holder).catch(options.onError);
    const conn = nc;
    nc = null;
    connected = false;
    // Drain sends what is buffered; nothing is awaited by then (hold waited for its acknowledgements).
    await conn?.drain().catch(() => conn.close());
  };
  const running = run();

  return {
    state() {
      const seq = leaseHeld ? acked : publishedSeq;
      const head = Math.max(feed.head, seq);
      return { connected, leaseHeld, publishedSeq: seq, head, lag: head - seq, published, duplicates, lastError };
    },
    async stop(stopOptions = {}) {
      release = stopOptions.release ?? true;
      stopping.abort();
      await running;
    },
  };
}
