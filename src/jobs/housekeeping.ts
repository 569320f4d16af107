// Deletes what has outlived its use: Idempotency-Key answers older than their 24 hours, and
// change events and webhook delivery log rows older than the feed's retention. Every replica may run it; each DELETE of
// expired rows is harmless to repeat or to run on two replicas at once.
import type { Database } from '../store/database.js';
import { pruneFeed } from '../store/events.js';
import { deleteExpiredIdempotencyKeys } from '../store/idempotency.js';
import { pruneDeliveries } from '../store/webhooks.js';
import type { Job } from './trial-expiry.js';

// Expired keys are already ignored when read; this only keeps the table small.
const HOUSEKEEPING_INTERVAL_MS = 60 * 60 * 1000;
// Events deleted per statement: a day of a busy registry goes in a few rounds of short locks.
const PRUNE_BATCH = 5_000;

export interface HousekeepingOptions {
  clock: () => Date;
  /** How long the change feed keeps an event (EVENT_RETENTION_DAYS). */
  eventRetentionMs: number;
  onError: (error: unknown) => void;
  intervalMs?: number;
}

/** One round: what is expired goes; the feed is pruned until nothing is older than its retention. */
export async function houseKeep(db: Database, options: Pick<HousekeepingOptions, 'clock' | 'eventRetentionMs'>): Promise<void> {
  const now = options.clock();
  await deleteExpiredIdempotencyKeys(db, now);
  const before = new Date(now.getTime() - options.eventRetentionMs);
  while ((await pruneFeed(db, before, PRUNE_BATCH)) === PRUNE_BATCH);
  // The log of a delivery is kept as long as the event it delivered.
  while ((await pruneDeliveries(db, before, PRUNE_BATCH)) === PRUNE_BATCH);
}

export function startHousekeeping(db: Database, options: HousekeepingOptions): Job {
  let running: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    running = houseKeep(db, options).catch(options.onError);
  }, options.intervalMs ?? HOUSEKEEPING_INTERVAL_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
