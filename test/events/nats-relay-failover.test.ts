// Two replicas' relays on one PostgreSQL database: the lease lets one publish at a time; when the
// holder dies without handing the lease back, the other takes over once it lapses and resumes from
// the cursor, and the stream drops what the dead one had published but not yet recorded.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startFeedSignal, type FeedSignal } from '../../src/events/feed-signal.js';
import { startNatsRelay, type NatsRelay } from '../../src/events/nats-relay.js';
import type { Database } from '../../src/store/database.js';
import { consumerState } from '../../src/store/feed-consumers.js';
import { openPg } from '../../src/store/pg-driver.js';
import { recordFigures } from '../reliability/figures.js';
import { DRIVERS, openMigratedDatabase, type TestDatabase } from '../support/drivers.js';
import { deleteStream, feedIds, readStream, streamCount, TEST_NATS_URL, uniqueStream, writeEvents } from '../support/nats.js';

const WAIT = { timeout: 60_000, interval: 50 };
// Short, so the takeover comes within seconds; the default is 15 s.
const LEASE_MS = 2_000;
// Events the dead holder published whose cursor move is taken back, as a crash between the
// stream's acknowledgement and the database write leaves them.
const UNRECORDED = 10;

interface Replica {
  db: Database;
  feed: FeedSignal;
  relay: NatsRelay;
}

describe.runIf(DRIVERS.includes('pg'))('two replicas relaying to one stream [pg]', () => {
  let database: TestDatabase;
  let stream: string;
  let prefix: string;
  const replicas: Replica[] = [];

  // Each replica has its own pool and feed signal, as separate processes would.
  const replica = async (holder: string): Promise<Replica> => {
    const db = openPg({ url: database.url!, poolSize: 3 });
    const feed = await startFeedSignal(db);
    const relay = startNatsRelay({ db, feed, servers: [TEST_NATS_URL], stream, subjectPrefix: prefix, holder, leaseMs: LEASE_MS, onError: () => {} });
    const started = { db, feed, relay };
    replicas.push(started);
    return started;
  };

  beforeEach(async () => {
    ({ stream, prefix } = uniqueStream());
    database = await openMigratedDatabase('pg');
  });

  afterEach(async () => {
    for (const { relay, feed, db } of replicas.splice(0)) {
      await relay.stop();
      await feed.stop();
      await db.close();
    }
    await database.close();
    await deleteStream(TEST_NATS_URL, stream);
  });

  it('publishes from one replica at a time; after the holder dies the other takes over, and the stream holds each event once', async () => {
    const a = await replica('replica-a');
    await vi.waitFor(() => expect(a.relay.state().leaseHeld).toBe(true), WAIT);
    const b = await replica('replica-b');

    // Both holding at once would be two publishers: watched all along.
    let bothHeld = 0;
    const watcher = setInterval(() => {
      if (a.relay.state().leaseHeld && b.relay.state().leaseHeld) bothHeld += 1;
    }, 10);
    try {
      const first = await writeEvents(database.db, 100);
      await vi.waitFor(async () => expect(await streamCount(TEST_NATS_URL, stream)).toBe(100), WAIT);
      expect(b.relay.state()).toMatchObject({ leaseHeld: false, published: 0 });
      await vi.waitFor(() => expect(b.relay.state().publishedSeq).toBe(100), WAIT);

      // Its last cursor moves taken back while it still holds the lease (idle, it writes none): after its stop, b could take over first.
      await database.db.query('UPDATE feed_consumers SET last_seq = last_seq - $2 WHERE name = $1', [`nats:${stream}`, UNRECORDED]);
      // The holder dies: it stops without handing the lease back.
      await a.relay.stop({ release: false });
      const died = performance.now();
      const meanwhile = await writeEvents(database.db, 50);
      await vi.waitFor(() => expect(b.relay.state().leaseHeld).toBe(true), WAIT);
      const takeoverMs = performance.now() - died;
      const after = await writeEvents(database.db, 50);

      await vi.waitFor(async () => expect((await consumerState(database.db, `nats:${stream}`))?.lastSeq).toBe(200), WAIT);
      const messages = await readStream(TEST_NATS_URL, stream);
      const ids = await feedIds(database.db);
      expect(ids).toEqual([...first, ...meanwhile, ...after]);
      expect(messages.map((message) => message.msgId)).toEqual(ids);
      expect(new Set(messages.map((message) => message.msgId)).size).toBe(messages.length);
      expect(await consumerState(database.db, `nats:${stream}`)).toEqual({ lastSeq: 200, holder: 'replica-b' });
      // What the dead holder had published again: answered "duplicate", stored once.
      expect(b.relay.state()).toMatchObject({ duplicates: UNRECORDED, published: 100 });
      expect(bothHeld).toBe(0);
      // Not before the lease had lapsed (less a renewal period of slack for timer and clock).
      expect(takeoverMs).toBeGreaterThan(LEASE_MS / 2);

      recordFigures('JetStream relay failover [pg]', 'two relays on one database; the holder stopped without releasing its lease while events were written, its last 10 cursor moves taken back', [
        { label: 'events written', value: ids.length },
        { label: 'messages in the stream', value: messages.length },
        { label: 'events the new holder re-published that the stream dropped as duplicates', value: b.relay.state().duplicates },
        { label: 'moments both replicas held the lease', value: bothHeld },
        { label: 'lease (ms)', value: LEASE_MS },
        { label: 'takeover after the holder died (ms)', value: Math.round(takeoverMs) },
      ]);
    } finally {
      clearInterval(watcher);
    }
  });

  it('hands over at once on a clean stop: the other replica continues from the cursor', async () => {
    const a = await replica('replica-a');
    await vi.waitFor(() => expect(a.relay.state().leaseHeld).toBe(true), WAIT);
    const b = await replica('replica-b');
    const first = await writeEvents(database.db, 20);
    await vi.waitFor(async () => expect(await streamCount(TEST_NATS_URL, stream)).toBe(20), WAIT);
    await a.relay.stop();
    expect(await consumerState(database.db, `nats:${stream}`)).toEqual({ lastSeq: 20, holder: null });
    const second = await writeEvents(database.db, 20);
    await vi.waitFor(async () => expect(await streamCount(TEST_NATS_URL, stream)).toBe(40), WAIT);
    expect((await readStream(TEST_NATS_URL, stream)).map((message) => message.msgId)).toEqual([...first, ...second]);
    expect(b.relay.state()).toMatchObject({ leaseHeld: true, published: 20, duplicates: 0 });
  });
});
