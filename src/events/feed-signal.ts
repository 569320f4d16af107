// Tells waiting readers of the change feed (the SSE stream, the webhook dispatcher, the JetStream
// relay) that events past their cursor may exist. Each committed event NOTIFYs its seq, tenant
// and type (migration 0015); while that channel is not flowing (the listening connection
// dropped), the newest seq is polled instead. A signal only wakes readers: they read the feed
// itself, so a missed or doubled notification costs a read, never an event.
//
// A reader may say which events interest it (a stream of one tenant, of some types): it is then
// woken only by those, so a thousand streams of quiet tenants cost no reads while the busy ones
// change. What is not known (a polled head, notes older than the recent ones kept) wakes everyone.
import type { Database } from '../store/database.js';
import { feedHeads } from '../store/events.js';

const EVENTS_CHANNEL = 'registry_events';
const POLL_MS = 1_000;
// The notes of the most recent events kept to decide whether a reader's gap holds anything for it.
const RECENT_NOTES = 4_096;

/** What a notification says of a committed event. */
export interface EventNote {
  seq: number;
  tenantId: string | null;
  type: string;
}

export type EventInterest = (note: EventNote) => boolean;

export interface FeedSignal {
  /** The newest seq known to this replica. */
  readonly head: number;
  /**
   * Resolves true as soon as an event past `after` that may interest the reader is known, false
   * after `timeoutMs` without one or once `signal` aborts or the feed signal stops. Without an
   * `interest`, every event does.
   */
  wait(after: number, timeoutMs: number, signal?: AbortSignal, interest?: EventInterest): Promise<boolean>;
  stop(): Promise<void>;
}

/** A NOTIFY payload, "<seq> <tenant id or -> <type>" (a bare seq is read too); undefined when unreadable. */
export function parseNote(payload: string): { seq: number; note?: EventNote } | undefined {
  const [seqText, tenant, type] = payload.split(' ');
  const seq = Number(seqText);
  if (!Number.isSafeInteger(seq) || seq < 1) return undefined;
  if (tenant === undefined || type === undefined) return { seq };
  return { seq, note: { seq, tenantId: tenant === '-' ? null : tenant, type } };
}

export async function startFeedSignal(db: Database, options: { pollMs?: number } = {}): Promise<FeedSignal> {
  // Known once the first read answers (started below, not awaited): a database that is away
  // when the service starts delays the first wake-up, not the start.
  let head = 0;
  let stopped = false;
  const waiters = new Map<() => void, EventInterest | undefined>();
  const recent = new Map<number, EventNote>();

  /** Whether (after, head] may hold an event for the reader: unknown seqs count as yes. */
  const mayInterest = (after: number, interest: EventInterest | undefined) => {
    if (head <= after) return false;
    if (!interest || head - after > RECENT_NOTES) return true;
    for (let seq = after + 1; seq <= head; seq += 1) {
      const note = recent.get(seq);
      if (!note || interest(note)) return true;
    }
    return false;
  };

  const advance = (seq: number, note?: EventNote) => {
    if (note) {
      recent.set(seq, note);
      if (recent.size > RECENT_NOTES) recent.delete(recent.keys().next().value!);
    }
    if (seq <= head) return;
    head = seq;
    for (const [wake, interest] of [...waiters]) if (!note || !interest || interest(note)) wake();
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
      const parsed = parseNote(payload);
      if (parsed) advance(parsed.seq, parsed.note);
    },
    onState,
  );

  poll();
  return {
    get head() {
      return head;
    },
    wait(after, timeoutMs, signal, interest) {
      if (mayInterest(after, interest)) return Promise.resolve(true);
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
        waiters.set(wake, interest);
        signal?.addEventListener('abort', aborted, { once: true });
      });
    },
    async stop() {
      stopped = true;
      if (poller) clearInterval(poller);
      for (const wake of [...waiters.keys()]) wake();
      await unlisten();
    },
  };
}
