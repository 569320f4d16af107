// The delivery log while its endpoint is deleted (src/store/webhooks.ts): a row for an endpoint
// that a concurrent transaction deletes is skipped, never a foreign-key error. The dispatcher
// logs each attempt as it ends, and an operator may delete the endpoint meanwhile; that must not
// surface as a failure (it did once, in the webhook delivery tests). PostgreSQL only: the
// embedded database has one connection, so nothing runs concurrently there.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Queryable } from '../../src/store/database.js';
import { deleteWebhook, insertDelivery, insertWebhook, moveWebhookCursor, type DeliveryRecord } from '../../src/store/webhooks.js';
import { DRIVERS } from '../support/driver-selection.js';
import { openMigratedDatabase, type TestDatabase } from '../support/drivers.js';

const record = (webhookId: string): DeliveryRecord => ({
  webhookId,
  eventId: randomUUID(),
  seq: 1,
  type: 'tenant.created',
  attempt: 1,
  outcome: 'delivered',
  httpStatus: 200,
  latencyMs: 3,
  error: null,
  at: new Date(),
});

/** The two statements that log an attempt: the test ping's, and the dispatcher's (with its cursor move). */
const writers: Array<[string, (db: Queryable, webhookId: string) => Promise<unknown>]> = [
  ['insertDelivery', (db, id) => insertDelivery(db, record(id))],
  [
    'moveWebhookCursor',
    (db, id) =>
      moveWebhookCursor(db, { id, generation: 0, fromSeq: 0, lease: 'webhooks', holder: 'test' }, { lastSeq: 1, attempts: 0, nextAttemptAt: null }, record(id)),
  ],
];

describe.runIf(DRIVERS.includes('pg'))('the delivery log while its endpoint is deleted [pg]', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await openMigratedDatabase('pg');
  });
  afterAll(async () => {
    await database?.close();
  });

  const endpoint = async () =>
    (
      await insertWebhook(database.db, {
        id: randomUUID(),
        url: 'https://hooks.example.com/in',
        description: null,
        secret: `whsec_${Buffer.alloc(32, 1).toString('base64')}`,
        types: [],
        tenantId: null,
        enabled: true,
        lastSeq: 0,
        createdBy: 'test',
        now: new Date(),
      })
    ).id;

  /** Sessions of this database waiting for a lock. */
  const waiting = async () =>
    (
      await database.db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
      )
    )[0]!.n;

  it.each(writers)('%s skips the row when the deletion commits while it waits', async (_name, write) => {
    const id = await endpoint();
    let commit!: () => void;
    const committing = new Promise<void>((resolve) => (commit = resolve));
    let deleted!: () => void;
    const deletedUncommitted = new Promise<void>((resolve) => (deleted = resolve));
    const deleter = database.db.transaction(async (tx) => {
      await deleteWebhook(tx, id);
      deleted();
      await committing;
    });
    await deletedUncommitted;
    // The write starts while the deletion is uncommitted (its snapshot still has the endpoint),
    // and waits on the row's lock; then the deletion commits.
    const written = write(database.db, id);
    const settled = written.then(
      () => null,
      (error: unknown) => error,
    );
    for (const deadline = Date.now() + 20_000; (await waiting()) === 0; ) {
      if (Date.now() > deadline) throw new Error('the write never waited for the deletion');
      await sleep(10);
    }
    commit();
    await deleter;
    expect(await settled).toBeNull();
    expect(await database.db.query('SELECT 1 FROM webhook_deliveries WHERE webhook_id = $1', [id])).toEqual([]);
  });

  it.each(writers)('%s logs the attempt while the endpoint stands', async (_name, write) => {
    const id = await endpoint();
    await write(database.db, id);
    expect(await database.db.query('SELECT outcome FROM webhook_deliveries WHERE webhook_id = $1', [id])).toEqual([{ outcome: 'delivered' }]);
  });

  it('moveWebhookCursor moves the cursor and logs the attempt in one statement, its lease held', async () => {
    const id = await endpoint();
    await database.db.query(
      "INSERT INTO feed_consumers (name, holder, lease_until) VALUES ('webhooks-test', 'test', now() + interval '1 minute')",
    );
    const fence = { id, generation: 0, fromSeq: 0, lease: 'webhooks-test', holder: 'test' };
    expect(await moveWebhookCursor(database.db, fence, { lastSeq: 1, attempts: 0, nextAttemptAt: null }, record(id))).toBe('moved');
    expect(await database.db.query('SELECT last_seq::int AS last_seq FROM webhooks WHERE id = $1', [id])).toEqual([{ last_seq: 1 }]);
    expect(await database.db.query('SELECT outcome FROM webhook_deliveries WHERE webhook_id = $1', [id])).toEqual([{ outcome: 'delivered' }]);
  });
});
