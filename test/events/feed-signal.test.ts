// The feed signal wakes a reader only for what interests it (issue 19 review): a stream of one
// tenant sleeps through other tenants' commits, and wakes for its own. Real notifications of real
// commits, on both drivers.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { changeEventData } from '../../src/domain/change-event.js';
import { parseNote, startFeedSignal, type FeedSignal } from '../../src/events/feed-signal.js';
import { feedHeads, insertChangeEvent } from '../../src/store/events.js';
import { eachDriver, openMigratedDatabase, type TestDatabase } from '../support/drivers.js';

// Long enough that a notification of a commit has certainly arrived (it comes in milliseconds);
// a reader that is not woken waits it out.
const QUIET_MS = 1_500;

eachDriver('the feed signal', (driver) => {
  let database: TestDatabase;
  let feed: FeedSignal;
  beforeAll(async () => {
    database = await openMigratedDatabase(driver);
    feed = await startFeedSignal(database.db);
  });
  afterAll(async () => {
    await feed?.stop();
    await database?.close();
  });

  const commit = (tenantId: string, type = 'tenant.updated') =>
    database.db.transaction((tx) =>
      insertChangeEvent(tx, {
        id: randomUUID(),
        type,
        tenantId,
        occurredAt: new Date(),
        data: changeEventData({ id: 'test' }, { id: tenantId, type: 'tenant' }, null, null),
      }),
    );

  /** Waits until the signal knows the database's newest seq. */
  const caughtUp = async () => {
    const { head } = await feedHeads(database.db);
    for (const deadline = Date.now() + 20_000; feed.head < head; ) {
      if (Date.now() > deadline) throw new Error('the signal never learned the head');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return head;
  };

  it('wakes a reader of one tenant for that tenant only, and an unfiltered reader for any', async () => {
    const mine = randomUUID();
    const theirs = randomUUID();
    await commit(mine);
    const after = await caughtUp();
    const interest = (note: { tenantId: string | null }) => note.tenantId === mine;

    const quiet = feed.wait(after, QUIET_MS, undefined, interest);
    const anyone = feed.wait(after, 20_000);
    await commit(theirs);
    expect(await anyone).toBe(true);
    expect(await quiet).toBe(false);

    // The other tenant's event is known: it does not wake this reader on the next wait either.
    const head = await caughtUp();
    expect(await feed.wait(after, 200, undefined, interest)).toBe(false);
    const woken = feed.wait(head, 20_000, undefined, interest);
    await commit(mine);
    expect(await woken).toBe(true);
  });

  it('reads the notification payload: seq, tenant (or -) and type', () => {
    const tenant = randomUUID();
    expect(parseNote(`12 ${tenant} api_key.revoked`)).toEqual({ seq: 12, note: { seq: 12, tenantId: tenant, type: 'api_key.revoked' } });
    expect(parseNote('13 - webhook.created')).toEqual({ seq: 13, note: { seq: 13, tenantId: null, type: 'webhook.created' } });
    expect(parseNote('14')).toEqual({ seq: 14 });
    for (const bad of ['', 'x', '-1 - a', '1.5 - a']) expect(parseNote(bad)).toBeUndefined();
  });
});
