// Deletes what has outlived its use: Idempotency-Key answers older than their 24 hours. Every
// replica may run it; a DELETE of expired rows is harmless to repeat.
import type { Database } from '../store/database.js';
import { deleteExpiredIdempotencyKeys } from '../store/idempotency.js';
import type { Job } from './trial-expiry.js';

// Expired keys are already ignored when read; this only keeps the table small.
const HOUSEKEEPING_INTERVAL_MS = 60 * 60 * 1000;

export function startHousekeeping(db: Database, options: { clock: () => Date; onError: (error: unknown) => void }): Job {
  let running: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    running = deleteExpiredIdempotencyKeys(db, options.clock()).catch(options.onError);
  }, HOUSEKEEPING_INTERVAL_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
