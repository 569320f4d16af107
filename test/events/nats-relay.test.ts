// The JetStream relay against the machine's NATS: every event reaches the stream once, in seq
// order, on <prefix>.<type>, with Nats-Msg-Id = its id; a relay started again resumes from its
// cursor; an operator's stream is used as it is. Each test has a stream and prefix of its own.
import { nanos, StorageType } from 'nats';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startFeedSignal, type FeedSignal } from '../../src/events/feed-signal.js';
import { startNatsRelay, subjectFor, type NatsRelay, type NatsRelayOptions } from '../../src/events/nats-relay.js';
import { DUPLICATE_WINDOW_MS, natsServers, subjectCovers } from '../../src/events/nats-stream.js';
import { consumerState } from '../../src/store/feed-consumers.js';
import { eachDriver, openMigratedDatabase, type TestDatabase } from '../support/drivers.js';
import { deleteStream, feedIds, NATS_TESTS_ON, readStream, streamCount, TEST_NATS_URL, uniqueStream, withNats, writeEvents } from '../support/nats.js';

const WAIT = { timeout: 30_000, interval: 50 };

describe('subjectCovers', () => {
  it.each([
    ['trtest.a.events.>', true],
    ['trtest.>', true],
    ['>', true],
    ['trtest.*.events.>', true],
    ['trtest.a.events.*', false],
    ['trtest.a.events', false],
    ['trtest.b.events.>', false],
    ['trtest.a.events.tenant.>', false],
  ])('%s takes every subject under trtest.a.events: %s', (subject, covers) => {
    expect(subjectCovers(subject, 'trtest.a.events')).toBe(covers);
  });
});

describe('subjectFor', () => {
  it.each([
    ['tenant.created', 'p.events.tenant.created'],
    ['api_key.revoked', 'p.events.api_key.revoked'],
    ['odd>type.*', 'p.events.odd_type._'],
    ['a..b.', 'p.events.a.b'],
    ['', 'p.events._'],
  ])('publishes %j to %s', (type, subject) => {
    expect(subjectFor('p.events', type)).toBe(subject);
  });
});

describe('natsServers', () => {
  it('takes the user and password out of the URLs, so no logged address carries them', () => {
    expect(natsServers(['nats://relay:s3cr%40t@nats-1:4222', 'nats://nats-2:4222'])).toEqual({
      servers: ['nats://nats-1:4222', 'nats://nats-2:4222'],
      user: 'relay',
      pass: 's3cr@t',
    });
    expect(natsServers(['nats://127.0.0.1:4222'])).toEqual({ servers: ['nats://127.0.0.1:4222'] });
  });
});

describe.runIf(NATS_TESTS_ON)('with a NATS server', () => eachDriver('the JetStream relay', (driver) => {
  let database: TestDatabase;
  let feed: FeedSignal;
  let stream: string;
  let prefix: string;
  const relays: NatsRelay[] = [];
  const errors: unknown[] = [];

  const start = (overrides: Partial<NatsRelayOptions> = {}) => {
    const relay = startNatsRelay({
      db: database.db,
      feed,
      servers: [TEST_NATS_URL],
      stream,
      subjectPrefix: prefix,
      holder: `test-${relays.length}`,
      leaseMs: 2_000,
      onError: (error) => errors.push(error),
      ...overrides,
    });
    relays.push(relay);
    return relay;
  };

  beforeEach(async () => {
    ({ stream, prefix } = uniqueStream());
    errors.length = 0;
    database = await openMigratedDatabase(driver);
    feed = await startFeedSignal(database.db);
  });

  afterEach(async () => {
    for (const relay of relays.splice(0)) await relay.stop();
    await feed.stop();
    await database.close();
    await deleteStream(TEST_NATS_URL, stream);
  });

  it('publishes every event once, in seq order, to <prefix>.<type> with Nats-Msg-Id = its id and its seq in a header', async () => {
    // Written before the relay's first start: a new relay starts from the oldest event kept.
    const before = await writeEvents(database.db, 30, 'tenant.created');
    const relay = start({ batch: 7 });
    const after = [...(await writeEvents(database.db, 20, 'api_key.revoked')), ...(await writeEvents(database.db, 5, 'entitlement.granted'))];
    await vi.waitFor(async () => expect(await streamCount(TEST_NATS_URL, stream)).toBe(55), WAIT);

    const ids = await feedIds(database.db);
    expect(ids).toEqual([...before, ...after]);
    const messages = await readStream(TEST_NATS_URL, stream);
    expect(messages.map((message) => message.msgId)).toEqual(ids);
    expect(messages.map((message) => message.event.id)).toEqual(ids);
    expect(messages.map((message) => message.seqHeader)).toEqual(ids.map((_, index) => index + 1));
    expect(messages.map((message) => message.event.seq)).toEqual(ids.map((_, index) => index + 1));
    for (const message of messages) expect(message.subject).toBe(`${prefix}.${message.event.type}`);
    expect(messages[0]!.subject).toBe(`${prefix}.tenant.created`);

    await vi.waitFor(() => expect(relay.state()).toMatchObject({ connected: true, leaseHeld: true, publishedSeq: 55, lag: 0, published: 55, duplicates: 0 }), WAIT);
    await vi.waitFor(async () => expect((await consumerState(database.db, `nats:${stream}`))?.lastSeq).toBe(55), WAIT);
    expect(errors).toEqual([]);
  });

  it('creates the stream with file storage, its subjects and a duplicate window that covers a re-publish', async () => {
    start();
    await writeEvents(database.db, 1);
    await vi.waitFor(async () => expect(await streamCount(TEST_NATS_URL, stream)).toBe(1), WAIT);
    const config = await withNats(TEST_NATS_URL, async (nc) => (await (await nc.jetstreamManager()).streams.info(stream)).config);
    expect(config.subjects).toEqual([`${prefix}.>`]);
    expect(config.storage).toBe(StorageType.File);
    expect(config.duplicate_window).toBe(nanos(DUPLICATE_WINDOW_MS));
  });

  it('resumes from its cursor: events written while it was stopped are published when it starts again', async () => {
    const first = start();
    const early = await writeEvents(database.db, 10);
    await vi.waitFor(async () => expect(await streamCount(TEST_NATS_URL, stream)).toBe(10), WAIT);
    await first.stop();
    expect(await consumerState(database.db, `nats:${stream}`)).toEqual({ lastSeq: 10, holder: null });

    const late = await writeEvents(database.db, 15);
    // Nothing publishes while no relay runs.
    expect(await streamCount(TEST_NATS_URL, stream)).toBe(10);
    const second = start();
    await vi.waitFor(async () => expect(await streamCount(TEST_NATS_URL, stream)).toBe(25), WAIT);
    const messages = await readStream(TEST_NATS_URL, stream);
    expect(messages.map((message) => message.msgId)).toEqual([...early, ...late]);
    // It published only what was new: the stream answered no re-publish as a duplicate.
    await vi.waitFor(() => expect(second.state()).toMatchObject({ publishedSeq: 25, published: 15, duplicates: 0 }), WAIT);
  });

  it("uses an operator's stream as it is: its settings stay, a shorter duplicate window is reported", async () => {
    const warnings: string[] = [];
    await withNats(TEST_NATS_URL, async (nc) => {
      const jsm = await nc.jetstreamManager();
      await jsm.streams.add({
        name: stream,
        subjects: [`${prefix}.>`],
        storage: StorageType.Memory,
        duplicate_window: nanos(60_000),
        max_msgs: 1_000,
        description: 'the operator set this up',
      });
    });
    start({ log: { info: () => {}, warn: (_details, message) => warnings.push(message) } });
    const ids = await writeEvents(database.db, 5);
    await vi.waitFor(async () => expect(await streamCount(TEST_NATS_URL, stream)).toBe(5), WAIT);
    expect((await readStream(TEST_NATS_URL, stream)).map((message) => message.msgId)).toEqual(ids);
    const config = await withNats(TEST_NATS_URL, async (nc) => (await (await nc.jetstreamManager()).streams.info(stream)).config);
    expect(config).toMatchObject({ storage: StorageType.Memory, duplicate_window: nanos(60_000), max_msgs: 1_000, description: 'the operator set this up' });
    expect(warnings.some((warning) => warning.includes('de-duplicates over 60 s'))).toBe(true);
  });

  it('publishes nothing to a stream that does not take its subjects, and says why', async () => {
    await withNats(TEST_NATS_URL, async (nc) => {
      const jsm = await nc.jetstreamManager();
      await jsm.streams.add({ name: stream, subjects: [`${prefix}-other.>`], storage: StorageType.Memory });
    });
    const relay = start();
    await writeEvents(database.db, 3);
    await vi.waitFor(() => expect(relay.state().lastError).toContain(`does not take the subjects ${prefix}.>`), WAIT);
    expect(await streamCount(TEST_NATS_URL, stream)).toBe(0);
    // The lag counts from the head the feed signal has heard of; on PostgreSQL its NOTIFY may
    // arrive after the relay has already met the stream's refusal.
    await vi.waitFor(() => expect(relay.state()).toMatchObject({ leaseHeld: true, publishedSeq: 0, lag: 3 }), WAIT);
    // The cursor stayed: nothing was skipped.
    expect((await consumerState(database.db, `nats:${stream}`))?.lastSeq).toBe(0);
  });
}));
