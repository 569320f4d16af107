// Writes down the trials that have ended: one entitlement.trial_expired event per product trial,
// and each tenant trial moved to frozen with one tenant.trial_ended event. Reads never need this
// (a trial reads as over the moment it ends); the events are for the audit trail and for
// whoever follows it (sales, billing, Keycloak's organization). Exactly once, with any number of
// replicas running it:
//  - a transaction-scoped advisory lock lets one replica work at a time (the others skip the
//    round instead of queueing behind it);
//  - each trial is locked (FOR UPDATE SKIP LOCKED) and marked in the same transaction that
//    appends its event, so an event is never written twice nor lost to a crash in between. A
//    tenant trial is marked by its new status; a transition that reaches it first writes it
//    down itself (services/tenant-lifecycle.ts), and the job no longer finds it.
import { SYSTEM_ORIGIN, recordChange } from '../services/audit-trail.js';
import { endTrial } from '../services/tenant-lifecycle.js';
import type { Database, Queryable } from '../store/database.js';
import { lockExpiredTrials, markTrialExpiryRecorded } from '../store/entitlements.js';
import { lockEndedTrials, lockTenantForKeyShareIfFree } from '../store/tenants.js';

// Distinct from the migration lock; any constant shared by all replicas works ("trials").
const TRIAL_EXPIRY_LOCK_KEY = 0x747269616c73;
// Small batches keep each transaction short; a backlog drains over successive batches.
const BATCH_SIZE = 100;

/** One round: writes down every trial that has ended by `now`; returns how many it wrote down. */
export async function recordExpiredTrials(db: Database, now: Date): Promise<number> {
  return (await endTenantTrials(db, now)) + (await recordProductTrials(db, now));
}

/** Runs `batch` in transactions holding the job's lock until a batch does less than BATCH_SIZE. */
async function inBatches(db: Database, batch: (tx: Queryable) => Promise<number>): Promise<number> {
  let done = 0;
  for (;;) {
    const count = await db.transaction(async (tx) => {
      const [lock] = await tx.query<{ acquired: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS acquired', [
        TRIAL_EXPIRY_LOCK_KEY,
      ]);
      return lock?.acquired ? batch(tx) : 0;
    });
    done += count;
    if (count < BATCH_SIZE) return done;
  }
}

const endTenantTrials = (db: Database, now: Date) =>
  inBatches(db, async (tx) => {
    const tenants = await lockEndedTrials(tx, now, BATCH_SIZE);
    for (const tenant of tenants) await endTrial(tx, tenant, now);
    return tenants.length;
  });

const recordProductTrials = (db: Database, now: Date) =>
  inBatches(db, async (tx) => {
    const trials = await lockExpiredTrials(tx, now, BATCH_SIZE);
    let recorded = 0;
    for (const trial of trials) {
      // A tenant someone holds (an archive, a decline: they lock the tenant, then its products)
      // is left for the next round; waiting for it while holding its product could deadlock.
      const tenant = await lockTenantForKeyShareIfFree(tx, trial.tenant_id);
      if (!tenant) continue;
      recorded += 1;
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
    // A batch with a tenant left out counts less than BATCH_SIZE, so it is the last of the
    // round: the next round tries that trial again.
    return recorded;
  });

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
