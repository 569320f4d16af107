// A long audit log for tests that need one and are not about the route that appends: events
// appended by the store's own append, as POST /v1/audit appends them (same chains, same hashes),
// many per transaction rather than one request and one transaction each.
import type { AuditEventInput, AuditPublisher } from '../../src/domain/audit.js';
import type { Database } from '../../src/store/database.js';
import { appendEvent, type AppendResult } from '../../src/store/audit.js';

export interface SeedOptions {
  perTransaction: number;
  publisher: AuditPublisher;
  /** The time each event is received at. */
  now: () => Date;
}

/** Appends `eventAt(0)` ... `eventAt(count - 1)` in order; the results in the same order. */
export async function appendInTransactions(
  db: Database,
  count: number,
  eventAt: (i: number) => AuditEventInput,
  { perTransaction, publisher, now }: SeedOptions,
): Promise<AppendResult[]> {
  const appended: AppendResult[] = [];
  for (let first = 0; first < count; first += perTransaction) {
    const results = await db.transaction(async (tx) => {
      const done: AppendResult[] = [];
      for (let i = first; i < Math.min(first + perTransaction, count); i += 1) done.push(await appendEvent(tx, eventAt(i), now(), publisher));
      return done;
    });
    appended.push(...results);
  }
  return appended;
}
