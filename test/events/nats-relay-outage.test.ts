// NATS going away: a private nats-server is stopped while events are written and started again;
// the stream ends with every event exactly once. And the service itself, started with NATS down,
// serves as usual, says so in its log and metrics, and publishes the backlog once NATS answers.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startFeedSignal, type FeedSignal } from '../../src/events/feed-signal.js';
import { startNatsRelay, type NatsRelay } from '../../src/events/nats-relay.js';
import { consumerState } from '../../src/store/feed-consumers.js';
import { devToken, freePort, startService, stopAll, stopService } from '../process/spawn.js';
import { recordFigures } from '../reliability/figures.js';
import { DRIVERS, openMigratedDatabase, type TestDatabase } from '../support/drivers.js';
import { randomSlug } from '../support/factories.js';
import { call } from '../support/http.js';
import { feedIds, privateNats, readStream, streamCount, uniqueStream, writeEvents, type PrivateNats } from '../support/nats.js';

const WAIT = { timeout: 90_000, interval: 100 };
const EVENTS = 300;

/** The value of an unlabelled series in a /metrics text. */
function metric(text: string, name: string): number | undefined {
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : undefined;
}

describe.runIf(DRIVERS.includes('pg'))('the JetStream relay while NATS is away [pg]', () => {
  let database: TestDatabase;
  let nats: PrivateNats;
  let feed: FeedSignal | undefined;
  let relay: NatsRelay | undefined;
  let stream: string;
  let prefix: string;

  beforeEach(async () => {
    ({ stream, prefix } = uniqueStream());
    database = await openMigratedDatabase('pg');
    nats = await privateNats();
  });

  afterEach(async () => {
    await relay?.stop();
    await feed?.stop();
    relay = undefined;
    feed = undefined;
    await stopAll();
    await nats.remove();
    await database.close();
  });

  it('keeps every event once in the stream when NATS restarts while events are written', async () => {
    await nats.start();
    feed = await startFeedSignal(database.db);
    const errors: unknown[] = [];
    relay = startNatsRelay({
      db: database.db,
      feed,
      servers: [nats.url],
      stream,
      subjectPrefix: prefix,
      holder: 'relay',
      leaseMs: 2_000,
      batch: 50,
      onError: (error) => errors.push(error),
    });
    const writing = writeEvents(database.db, EVENTS);
    await vi.waitFor(async () => expect(await streamCount(nats.url, stream)).toBeGreaterThanOrEqual(50), WAIT);

    // Killed, not stopped: whatever it had in flight gets no answer.
    await nats.stop('SIGKILL');
    const down = performance.now();
    await vi.waitFor(() => expect(relay!.state().connected).toBe(false), WAIT);
    // Events keep committing while NATS is away, and the relay keeps its lease.
    const countAtStop = (await feedIds(database.db)).length;
    await vi.waitFor(async () => expect((await feedIds(database.db)).length).toBeGreaterThan(countAtStop + 50), WAIT);
    expect(relay.state().leaseHeld).toBe(true);
    const lagWhileDown = relay.state().lag;
    expect(lagWhileDown).toBeGreaterThan(0);
    await nats.start();
    const outageMs = performance.now() - down;
    const up = performance.now();

    const ids = await writing;
    await vi.waitFor(async () => expect((await consumerState(database.db, `nats:${stream}`))?.lastSeq).toBe(EVENTS), WAIT);
    const caughtUpMs = performance.now() - up;
    const messages = await readStream(nats.url, stream);
    expect(messages).toHaveLength(EVENTS);
    expect(new Set(messages.map((message) => message.msgId))).toEqual(new Set(ids));
    expect(messages.map((message) => message.msgId).sort()).toEqual([...ids].sort());
    const state = relay.state();
    expect(state).toMatchObject({ connected: true, leaseHeld: true, lag: 0, published: EVENTS });
    const inOrder = messages.every((message, index) => message.seqHeader === index + 1);

    recordFigures('JetStream relay through a NATS restart [pg]', `${EVENTS} events written one transaction each; the private nats-server killed (SIGKILL) once 50 were in the stream and started again after 50 more had committed`, [
      { label: 'events written', value: ids.length },
      { label: 'messages in the stream', value: messages.length },
      { label: 'distinct event ids in the stream', value: new Set(messages.map((message) => message.msgId)).size },
      { label: 're-published events the stream dropped as duplicates', value: state.duplicates },
      { label: 'stream in seq order', value: inOrder ? 'yes' : 'no' },
      { label: 'lag while NATS was down (events)', value: lagWhileDown },
      { label: 'NATS down (ms)', value: Math.round(outageMs) },
      { label: 'caught up after NATS came back (ms)', value: Math.round(caughtUpMs) },
    ]);
  });

  it('lets the service start and serve without NATS, says so without the credentials, and publishes the backlog once NATS answers', async () => {
    const service = await startService({
      APP_ENV: 'dev',
      DATABASE_URL: database.url!,
      DEV_ISSUER_WITH_DATABASE: 'true',
      TRIAL_EXPIRY_INTERVAL_SECONDS: '0',
      // Nothing listens there yet; the password must never reach a log line.
      NATS_URL: `nats://relay:hunter2-secret@127.0.0.1:${nats.port}`,
      NATS_STREAM: stream,
      NATS_SUBJECT_PREFIX: prefix,
    });
    const token = await devToken(service.baseUrl);
    const slugs = [randomSlug(), randomSlug(), randomSlug()];
    for (const slug of slugs) {
      const answer = await call(service.baseUrl, 'POST', '/v1/tenants', { body: { slug, name: `Tenant ${slug}` } }, token);
      expect(answer.status).toBe(201);
    }
    const events = await call<{ items: Array<{ id: string }> }>(service.baseUrl, 'GET', '/v1/events', {}, token);
    expect(events.status).toBe(200);
    const written = events.body.items.length;
    expect(written).toBeGreaterThanOrEqual(slugs.length);

    const scrape = async () => (await fetch(`${service.baseUrl}/metrics`)).text();
    await vi.waitFor(async () => {
      const text = await scrape();
      expect(metric(text, 'tenant_registry_nats_relay_connected')).toBe(0);
      expect(metric(text, 'tenant_registry_nats_relay_lease_held')).toBe(0);
      expect(metric(text, 'tenant_registry_nats_relay_lag')).toBe(written);
    }, WAIT);
    await vi.waitFor(() => expect(service.stdout() + service.stderr()).toContain('NATS is unreachable'), WAIT);

    await nats.start();
    await vi.waitFor(async () => expect(await streamCount(nats.url, stream)).toBe(written), WAIT);
    await vi.waitFor(async () => {
      const text = await scrape();
      expect(metric(text, 'tenant_registry_nats_relay_connected')).toBe(1);
      expect(metric(text, 'tenant_registry_nats_relay_lease_held')).toBe(1);
      expect(metric(text, 'tenant_registry_nats_relay_lag')).toBe(0);
    }, WAIT);
    expect((await readStream(nats.url, stream)).map((message) => message.msgId)).toEqual(events.body.items.map((event) => event.id));
    const text = await scrape();
    expect(text).toMatch(new RegExp(`^tenant_registry_nats_relay_published_total\\{result="stored"\\} ${written}$`, 'm'));

    // A clean stop hands the lease back for the next replica.
    const exit = await stopService(service);
    expect(exit?.code).toBe(0);
    expect(await consumerState(database.db, `nats:${stream}`)).toEqual({ lastSeq: written, holder: null });
    expect(service.stdout() + service.stderr()).not.toContain('hunter2');
  });

  it('starts on a port nothing listens on without failing anything else', async () => {
    // The relay alone, pointed at a closed port: no lease taken (another replica may reach NATS).
    feed = await startFeedSignal(database.db);
    relay = startNatsRelay({ db: database.db, feed, servers: [`nats://127.0.0.1:${await freePort()}`], stream, subjectPrefix: prefix, holder: 'alone', leaseMs: 2_000, onError: () => {} });
    await writeEvents(database.db, 4);
    await vi.waitFor(() => expect(relay!.state()).toMatchObject({ connected: false, leaseHeld: false, lag: 4 }), WAIT);
    expect(await consumerState(database.db, `nats:${stream}`)).toBeUndefined();
  });
});
