// Writes one entitlement.trial_expired audit event per trial that has ended. Reads never need
// this (a trial reads as expired the moment it ends); the event is for the audit trail and for
// whoever follows it (sales, billing). Exactly once, with any number of replicas running it:
//  - a transaction-scoped advisory lock lets one replica work at a time (the others skip the
//    round instead of queueing behind it);
//  - each trial is locked (FOR UPDATE SKIP LOCKED) and marked in the same transaction that
//    appends its event, so an event is never written twice nor lost to a crash in between.
import { SYSTEM_ORIGIN, recordChange } from '../services/audit-trail.js';
import type { Database } from '../store/database.js';
import { lockExpiredTrials, markTrialExpiryRecorded } from '../store/entitlements.js';
import { lockTenantForKeyShare } from '../store/tenants.js';

// Distinct from the migration lock; any constant shared by all replicas works ("trials").
const TRIAL_EXPIRY_LOCK_KEY = 0x747269616c73;
// Small batches keep each transaction short; a backlog drains over successive batches.
const BATCH_SIZE = 100;

/** One round: records every trial that has ended by `now`; returns how many it recorded. */
export async function recordExpiredTrials(db: Database, now: Date): Promise<number> {
  let recorded = 0;
  for (;;) {
    const batch = await db.transaction(async (tx) => {
      const [lock] = await tx.query<{ acquired: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS acquired', [
        TRIAL_EXPIRY_LOCK_KEY,
      ]);
      if (!lock?.acquired) return 0;
      const trials = await lockExpiredTrials(tx, now, BATCH_SIZE);
      for (const trial of trials) {
        // The entitlement row cascades with its tenant, so a locked trial's tenant exists.
        const tenant = (await lockTenantForKeyShare(tx, trial.tenant_id))!;
        await recordChange(
          tx,
          SYSTEM_ORIGIN,
          {
            action: 'entitlement.trial_expired',
            crud: 'u',
            tenant,
            product: trial.product,
            target: { id: trial.product, type: 'product', name: trial.product },
            fields: { trial_ends_at: trial.trial_ends_at!.toISOString() },
          },
          now,
        );
        await markTrialExpiryRecorded(tx, trial.tenant_id, trial.product, now);
      }
      return trials.length;
    });
    recorded += batch;
    if (batch < BATCH_SIZE) return recorded;
  }
}

export interface Job {
  stop(): Promise<void>;
}

/** Runs recordExpiredTrials every intervalMs until stopped; a failed round is logged and retried next time. */
export function startTrialExpiryJob(
  db: Database,
  options: { intervalMs: number; clock: () => Date; onError: (error: unknown) => void },
): Job {
  let running: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    running = recordExpiredTrials(db, options.clock()).catch(options.onError);
  }, options.intervalMs);
  // The job alone must not keep the process alive.
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
