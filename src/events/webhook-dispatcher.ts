// Delivers the change feed to webhook endpoints. One replica dispatches at a time: the holder of
// the `webhooks` lease (feed_consumers), renewed while it works and given up on a clean stop;
// the others wait and take over once it lapses. Each endpoint is worked on its own, strictly in
// sequence order and one event at a time: the event after its cursor is sent until a 2xx answers
// it, retried by the schedule (domain/webhook.ts) while it fails, and given up (dead) after the
// last attempt, after which the next event flows. So delivery is at least once: an attempt whose
// answer was lost, or whose cursor move did not happen (lease lost, endpoint replayed meanwhile),
// is sent again, under the same webhook-id.
//
// Endpoints run side by side, at most `concurrency` at once, each for a turn of TURN_MS at most;
// a slow or failing endpoint holds only its own slot, and one waiting for its next attempt holds
// none. The dispatcher wakes when
// an event commits (the feed signal), when the earliest retry is due, when a slot frees, and every
// `pollMs` to notice endpoints another replica created, enabled or replayed.
import type { ChangeEvent } from '../domain/change-event.js';
import { afterFailure, RETRY_SCHEDULE_MS } from '../domain/webhook.js';
import { webhookDelay, webhookDeliveries } from '../observability/metrics.js';
import type { Database } from '../store/database.js';
import { readFeed } from '../store/events.js';
import { DEFAULT_LEASE_MS, releaseLease, takeLease } from '../store/feed-consumers.js';
import { findWebhook, moveWebhookCursor, webhooksBehind, type CursorFence, type DeliveryRecord, type WebhookRow } from '../store/webhooks.js';
import type { FeedSignal } from './feed-signal.js';
import { createUrlGuard, parseAllowlist, type Allowlist, type UrlGuard } from './url-guard.js';
import { DEFAULT_ATTEMPT_TIMEOUT_MS, sendAttempt } from './webhook-sender.js';

/** The consumer name of the dispatch lease in feed_consumers. */
export const WEBHOOK_LEASE = 'webhooks';

// Endpoints delivered to at once; each holds at most one request and one connection of the pool.
const DEFAULT_CONCURRENCY = 8;
// How soon a change made on another replica (a replay, an enabled endpoint) is noticed.
const DEFAULT_POLL_MS = 5_000;
// Events read per query for one endpoint; each is still sent and acknowledged one by one.
const BATCH = 20;
// How long one endpoint keeps a slot before the others waiting get their turn: a receiver that
// answers every delivery just inside the timeout cannot keep its slot for good.
const TURN_MS = 5_000;
// After a failed round (the database away), the next one waits this long.
const ERROR_PAUSE_MS = 1_000;

export interface WebhookDispatcherOptions {
  db: Database;
  feed: FeedSignal;
  /** This replica's name in the lease: unique per process. */
  holder: string;
  /** WEBHOOK_ALLOW_PRIVATE (read or not yet). */
  allowPrivate: readonly string[] | Allowlist;
  /** Delays before each attempt (RETRY_SCHEDULE_MS); tests scale it down. */
  schedule?: readonly number[];
  /** How long one attempt may take (DEFAULT_ATTEMPT_TIMEOUT_MS). */
  timeoutMs?: number;
  leaseMs?: number;
  concurrency?: number;
  /** How long one endpoint keeps its slot while others wait (TURN_MS). */
  turnMs?: number;
  pollMs?: number;
  clock?: () => Date;
  onError: (error: unknown) => void;
}

export interface WebhookDispatcher {
  /**
   * Stops: attempts under way are cut (and sent again by the next holder), and the lease is
   * given up at once unless `release` is false (as a crashed process would leave it).
   */
  stop(options?: { release?: boolean }): Promise<void>;
}

/** The secrets a delivery is signed with at `now`: the current one, and the previous one during its grace. */
export function signingSecrets(row: Pick<WebhookRow, 'secret' | 'previous_secret' | 'previous_secret_until'>, now: Date): string[] {
  const previous = row.previous_secret !== null && row.previous_secret_until !== null && row.previous_secret_until > now;
  return previous ? [row.secret, row.previous_secret!] : [row.secret];
}

/**
 * The body of a delivery: the event exactly as GET /v1/events shows it, members in the order of
 * its schema. The stored event comes out of jsonb with its keys reordered; written as read, the
 * same event would be other bytes on the wire than in the feed.
 */
export function payloadOf(event: ChangeEvent): string {
  const { actor, target, product, fields } = event.data;
  return JSON.stringify({
    id: event.id,
    seq: event.seq,
    type: event.type,
    tenant_id: event.tenant_id,
    tenant_prev_seq: event.tenant_prev_seq,
    occurred_at: event.occurred_at,
    data: {
      actor: { id: actor.id, name: actor.name },
      target: { id: target.id, type: target.type, name: target.name },
      product,
      fields,
    },
  });
}

const pause = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

export function startWebhookDispatcher(options: WebhookDispatcherOptions): WebhookDispatcher {
  const { db, feed, holder, onError } = options;
  const allow = Array.isArray(options.allowPrivate) ? parseAllowlist(options.allowPrivate as readonly string[]) : (options.allowPrivate as Allowlist);
  const guard: UrlGuard = createUrlGuard(allow);
  const schedule = options.schedule ?? RETRY_SCHEDULE_MS;
  const timeoutMs = options.timeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  const pollMs = options.pollMs ?? DEFAULT_POLL_MS;
  const turnMs = options.turnMs ?? TURN_MS;
  const clock = options.clock ?? (() => new Date());

  const stopping = new AbortController();
  let release = true;
  // A round of the tenure loop is asked for (a slot freed, the lease lost, a stop).
  let kicked = false;
  let wakeup = new AbortController();
  const kick = () => {
    kicked = true;
    wakeup.abort();
  };

  /**
   * Works one endpoint until it is caught up, waits for a retry, or the tenure ends. `lost` ends
   * the tenure: a move refused for want of the lease means another replica may be working.
   */
  async function work(id: string, signal: AbortSignal, lost: () => void): Promise<void> {
    // A turn is bounded: an endpoint that answers slowly but steadily gives its slot back, and
    // the next round serves the endpoints that waited longest first (`lastTurn` below).
    const turnEnds = Date.now() + turnMs;
    for (;;) {
      if (signal.aborted || Date.now() > turnEnds) return;
      const row = await findWebhook(db, id);
      if (!row || !row.enabled) return;
      if (row.next_attempt_at !== null && row.next_attempt_at > clock()) return;
      const read = await readFeed(db, row.last_seq, { types: row.types, tenantId: row.tenant_id }, BATCH);
      const fence: CursorFence = { id, generation: row.generation, fromSeq: row.last_seq, lease: WEBHOOK_LEASE, holder };
      const move = async (lastSeq: number, attempts: number, nextAttemptAt: Date | null, log: DeliveryRecord | null): Promise<boolean> => {
        const result = await moveWebhookCursor(db, fence, { lastSeq, attempts, nextAttemptAt }, log);
        if (result === 'lease_lost') lost();
        if (result !== 'moved') return false;
        fence.fromSeq = lastSeq;
        return true;
      };

      if (read.pruned > row.last_seq) {
        // Retention deleted events this endpoint had not had: say so in its log, go on from the oldest kept.
        const log: DeliveryRecord = {
          webhookId: id, eventId: null, seq: read.pruned, type: null, attempt: 0, outcome: 'expired',
          httpStatus: null, latencyMs: null, error: 'past_retention', at: clock(),
        };
        await move(read.pruned, 0, null, log);
        continue;
      }

      // Whether every event of the read was handled; if not, the endpoint is read again.
      let through = true;
      let attempts = row.attempts;
      for (const event of read.events) {
        // Every event before this one was moved past: the next turn starts here.
        if (Date.now() > turnEnds) return;
        const at = clock();
        const result = await sendAttempt(
          row.url,
          { id: event.id, payload: payloadOf(event), secrets: signingSecrets(row, at), timestamp: at },
          { guard, timeoutMs, signal },
        );
        // Cut by a stop or a lost lease: not an attempt; the next holder sends it again.
        if (signal.aborted) return;
        const attempt = attempts + 1;
        const log = (outcome: DeliveryRecord['outcome']): DeliveryRecord => ({
          webhookId: id, eventId: event.id, seq: event.seq, type: event.type, attempt, outcome,
          httpStatus: result.status, latencyMs: result.latencyMs, error: result.error, at,
        });
        const next = result.outcome === 'delivered' ? 'delivered' : afterFailure(schedule, attempt);
        if (next === 'delivered' || next === 'dead') {
          webhookDeliveries.inc({ outcome: next });
          if (next === 'delivered') webhookDelay.observe(Math.max(0, (Date.now() - Date.parse(event.occurred_at)) / 1000));
          if (!(await move(event.seq, 0, null, log(next)))) {
            through = false;
            break;
          }
          attempts = 0;
          continue;
        }
        webhookDeliveries.inc({ outcome: 'failed' });
        // Everything before this event was handled (it did not match): the cursor waits just before it.
        await move(event.seq - 1, attempt, new Date(clock().getTime() + next.retryInMs), log('failed'));
        // The dispatcher wakes for the retry when it is due; one due at once is read again here.
        if (next.retryInMs > 0) return;
        through = false;
        break;
      }
      if (!through) continue;
      // Past the events it returned, the read passed events that did not match.
      if (read.next > fence.fromSeq && !(await move(read.next, 0, null, null))) continue;
      if (read.next >= read.head) return;
    }
  }

  /** Dispatches while this replica holds the lease; returns when it stops holding it or stops. */
  async function tenure(): Promise<void> {
    const ended = new AbortController();
    const end = () => {
      ended.abort();
      kick();
    };
    stopping.signal.addEventListener('abort', end, { once: true });
    const renewal = setInterval(() => {
      takeLease(db, WEBHOOK_LEASE, holder, leaseMs).then(
        (lease) => {
          if (!lease) end();
        },
        onError,
      );
    }, Math.max(1, Math.floor(leaseMs / 3)));
    const running = new Map<string, Promise<void>>();
    // When each endpoint last began a turn: the ones waiting longest get the free slots first.
    const lastTurn = new Map<string, number>();
    // An endpoint whose work failed (a query, not a delivery) rests a moment rather than spin.
    const resting = new Map<string, number>();
    let seenHead = feed.head;
    try {
      while (!ended.signal.aborted) {
        kicked = false;
        seenHead = Math.max(seenHead, feed.head);
        let waitMs = pollMs;
        try {
          const now = clock().getTime();
          const behind = (await webhooksBehind(db)).sort((a, b) => (lastTurn.get(a.id) ?? 0) - (lastTurn.get(b.id) ?? 0));
          for (const row of behind) {
            if (running.has(row.id)) continue;
            const due = Math.max(row.next_attempt_at?.getTime() ?? 0, resting.get(row.id) ?? 0);
            if (due > now) {
              waitMs = Math.min(waitMs, due - now);
              continue;
            }
            // The rest wait for a slot; a finishing endpoint kicks the next round.
            if (running.size >= concurrency) continue;
            resting.delete(row.id);
            lastTurn.set(row.id, performance.now());
            const task = work(row.id, ended.signal, end)
              .catch((error: unknown) => {
                resting.set(row.id, clock().getTime() + ERROR_PAUSE_MS);
                onError(error);
              })
              .finally(() => {
                running.delete(row.id);
                kick();
              });
            running.set(row.id, task);
          }
        } catch (error) {
          onError(error);
          waitMs = ERROR_PAUSE_MS;
        }
        if (kicked || ended.signal.aborted) continue;
        wakeup = new AbortController();
        await feed.wait(seenHead, Math.max(1, waitMs), AbortSignal.any([wakeup.signal, ended.signal]));
      }
    } finally {
      clearInterval(renewal);
      stopping.signal.removeEventListener('abort', end);
      await Promise.allSettled(running.values());
    }
  }

  async function run(): Promise<void> {
    while (!stopping.signal.aborted) {
      let held = false;
      try {
        held = (await takeLease(db, WEBHOOK_LEASE, holder, leaseMs)) !== undefined;
      } catch (error) {
        onError(error);
      }
      if (held) await tenure();
      // Standing by: ask again well within one lease period, so a lapse is noticed soon.
      else await pause(Math.max(50, Math.floor(leaseMs / 3)), stopping.signal);
    }
    if (release) await releaseLease(db, WEBHOOK_LEASE, holder).catch(onError);
  }

  const done = run();
  return {
    async stop(stopOptions = {}) {
      release = stopOptions.release ?? true;
      stopping.abort();
      kick();
      await done;
    },
  };
}
