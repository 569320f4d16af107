// Tells waiting readers of the change feed (the SSE stream, the webhook dispatcher, the JetStream
// relay) that events past their cursor may exist. Each committed event NOTIFYs its seq
// (migration 0015); while that channel is not flowing (the listening connection dropped), the
// newest seq is polled instead. A signal only wakes readers: they read the feed itself, so a
// missed or doubled notification costs a read, never an event.
import type { Database } from '../store/database.js';
import { feedHeads } from '../store/events.js';

export const EVENTS_CHANNEL = 'registry_events';
const POLL_MS = 1_000;

export interface FeedSignal {
  /** The newest seq known to this replica. */
  readonly head: number;
  /**
   * Resolves true as soon as an event past `after` is known, false after `timeoutMs` without one
   * or once `signal` aborts or the feed signal stops.
   */
  wait(after: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
  stop(): Promise<void>;
}

export async function startFeedSignal(db: Database, options: { pollMs?: number } = {}): Promise<FeedSignal> {
  // Known once the first read answers (started below, not awaited): a database that is away
  // when the service starts delays the first wake-up, not the start.
  let head = 0;
  let stopped = false;
  const waiters = new Set<() => void>();
  const advance = (seq: number) => {
    if (seq <= head) return;
    head = seq;
    for (const wake of [...waiters]) wake();
  };
  let poller: NodeJS.Timeout | undefined;
  const poll = () => void feedHeads(db).then((heads) => advance(heads.head), () => {});
  const onState = (listening: boolean) => {
    if (listening) {
      if (poller) clearInterval(poller);
      poller = undefined;
      // What committed while the channel was down.
      poll();
      return;
    }
    if (poller) return;
    poller = setInterval(poll, options.pollMs ?? POLL_MS);
    poller.unref();
  };
  const unlisten = await db.listen(
    EVENTS_CHANNEL,
    (payload) => {
      const seq = Number(payload);
      if (Number.isSafeInteger(seq)) advance(seq);
    },
    onState,
  );

  poll();
  return {
    get head() {
      return head;
    },
    wait(after, timeoutMs, signal) {
      if (head > after) return Promise.resolve(true);
      if (stopped || signal?.aborted) return Promise.resolve(false);
      return new Promise<boolean>((resolve) => {
        const finish = (woken: boolean) => {
          clearTimeout(timer);
          waiters.delete(wake);
          signal?.removeEventListener('abort', aborted);
          resolve(woken);
        };
        const wake = () => finish(!stopped);
        const aborted = () => finish(false);
        const timer = setTimeout(() => finish(false), timeoutMs);
        waiters.add(wake);
        signal?.addEventListener('abort', aborted, { once: true });
      });
    },
    async stop() {
      stopped = true;
      if (poller) clearInterval(poller);
      for (const wake of [...waiters]) wake();
      await unlisten();
    },
  };
}
