// Webhook deliveries end to end: a real registry and database, the dispatcher, and a real
// node:http receiver on 127.0.0.1 (allowed by the allowlist, as WEBHOOK_ALLOW_PRIVATE would).
// Signatures are checked with the standardwebhooks package, never with the registry's own code.
// The retry schedule is scaled down to milliseconds; every wait polls for a condition with a
// generous deadline, nothing is timed.
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChangeEvent } from '../../src/domain/change-event.js';
import { startFeedSignal, type FeedSignal } from '../../src/events/feed-signal.js';
import { createUrlGuard, parseAllowlist } from '../../src/events/url-guard.js';
import { sendAttempt } from '../../src/events/webhook-sender.js';
import { startWebhookDispatcher, WEBHOOK_LEASE, type WebhookDispatcher } from '../../src/events/webhook-dispatcher.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { pruneFeed } from '../../src/store/events.js';
import { consumerState } from '../../src/store/feed-consumers.js';
import { until } from '../support/until.js';
import { DRIVERS, type DriverName } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { startServer, type TestServer } from '../support/server.js';

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  event: ChangeEvent;
}

type Behaviour = (request: Received, response: ServerResponse) => void;

/** A webhook receiver: records every request; each path answers as its behaviour says (200 by default). */
async function startReceiver() {
  const received: Received[] = [];
  const behaviours = new Map<string, Behaviour>();
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const entry: Received = { path: request.url ?? '', headers: request.headers, body, event: JSON.parse(body) as ChangeEvent };
      received.push(entry);
      const behaviour = behaviours.get(entry.path);
      if (behaviour) behaviour(entry, response);
      else response.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (path: string) => `http://127.0.0.1:${port}${path}`,
    at: (path: string) => received.filter((entry) => entry.path === path),
    on: (path: string, behaviour: Behaviour) => behaviours.set(path, behaviour),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
type Receiver = Awaited<ReturnType<typeof startReceiver>>;

const ALLOW = ['127.0.0.1'];
// Three attempts: at once, after 200 ms, after 400 ms more; then the event is dead.
const SCHEDULE = [0, 200, 400];
// Generous: a receiver on loopback answers in milliseconds, even on a busy machine.
const TIMEOUT_MS = 2_000;

interface WebhookAnswer {
  id: string;
  secret: string;
  last_seq: number;
}

const PG_FIRST: DriverName[] = DRIVERS.includes('pg') ? ['pg', ...DRIVERS.filter((d) => d !== 'pg')] : DRIVERS;

describe.each(PG_FIRST)('webhook deliveries [%s]', (driver) => {
  let server: TestServer;
  let receiver: Receiver;
  let feed: FeedSignal;
  let dispatcher: WebhookDispatcher;
  const errors: unknown[] = [];

  beforeAll(async () => {
    server = await startServer(driver, { webhooks: { allowPrivate: parseAllowlist(ALLOW), timeoutMs: TIMEOUT_MS } });
    receiver = await startReceiver();
    feed = await startFeedSignal(server.db);
    dispatcher = startWebhookDispatcher({
      db: server.db,
      feed,
      holder: 'replica-main',
      allowPrivate: ALLOW,
      schedule: SCHEDULE,
      timeoutMs: TIMEOUT_MS,
      leaseMs: 3_000,
      pollMs: 200,
      onError: (error) => errors.push(error),
    });
  }, 60_000);
  afterAll(async () => {
    await dispatcher?.stop();
    await feed?.stop();
    await receiver?.close();
    await server?.close();
  });

  let paths = 0;
  /** A webhook at a path of its own on the receiver. */
  async function webhook(body: Record<string, unknown> = {}): Promise<WebhookAnswer & { path: string }> {
    const path = `/hook-${++paths}`;
    const answer = await server.api.post<WebhookAnswer>('/v1/webhooks', { body: { url: receiver.url(path), ...body } });
    expect(answer.status, answer.text).toBe(201);
    return { ...answer.body, path };
  }
  const feedEvents = async (query: string) =>
    (await server.api.get<{ items: ChangeEvent[] }>(`/v1/events?limit=500&${query}`)).body.items;
  const deliveries = async (id: string) =>
    (await server.api.get<{ items: Array<Record<string, unknown>> }>(`/v1/webhooks/${id}/deliveries?limit=200`)).body.items;
  const cancel = (tenant: Tenant) => server.api.post(`/v1/tenants/${tenant.id}/cancel`);
  /** The endpoint's log once it holds a delivered attempt: the dispatcher writes its row after the receiver has answered. */
  const deliveredLog = (id: string, deadlineMs?: number) =>
    until(
      async () => {
        const entries = await deliveries(id);
        return entries.some((entry) => entry.outcome === 'delivered') && entries;
      },
      'the delivery in the log',
      deadlineMs,
    );

  it('signs each delivery as Standard Webhooks says; webhook-id is the event id; the body is the event as the feed shows it', async () => {
    const hook = await webhook({ types: ['tenant.created'] });
    const tenant = await createTenant(server.api);
    const [delivery] = await until(() => receiver.at(hook.path).length > 0 && receiver.at(hook.path), 'the delivery');
    const [event] = await feedEvents(`tenant_id=${tenant.id}&types=tenant.created`);
    expect(delivery!.headers['content-type']).toBe('application/json');
    expect(delivery!.headers['webhook-id']).toBe(event!.id);
    expect(Number(delivery!.headers['webhook-timestamp'])).toBeGreaterThan(Date.now() / 1000 - 300);
    // The package checks the signature and the timestamp, and answers the parsed body.
    const verified = new Webhook(hook.secret).verify(delivery!.body, delivery!.headers as Record<string, string>);
    expect(verified).toEqual(event);
    expect(delivery!.body).toBe(JSON.stringify(event));
    // A signature by another secret, or over another body, is refused by the same package.
    expect(() => new Webhook(`whsec_${Buffer.alloc(32, 7).toString('base64')}`).verify(delivery!.body, delivery!.headers as Record<string, string>)).toThrow();
    expect(() => new Webhook(hook.secret).verify(delivery!.body.replace('tenant.created', 'tenant.cancelled'), delivery!.headers as Record<string, string>)).toThrow();
  });

  it('delivers every matching event once, in sequence order', async () => {
    const hook = await webhook({ types: ['tenant.*'] });
    const tenants: Tenant[] = [];
    for (let i = 0; i < 8; i++) tenants.push(await createTenant(server.api));
    await Promise.all(tenants.slice(0, 4).map(cancel));
    const expected = (await feedEvents(`after=${hook.last_seq}&types=tenant.*`)).map((event) => event.id);
    expect(expected.length).toBeGreaterThanOrEqual(12);
    await until(() => receiver.at(hook.path).length >= expected.length, 'every event');
    const got = receiver.at(hook.path).map((entry) => entry.event);
    expect(got.map((event) => event.id)).toEqual(expected);
    const seqs = got.map((event) => event.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    await until(async () => (await server.api.get<{ last_seq: number }>(`/v1/webhooks/${hook.id}`)).body.last_seq >= seqs.at(-1)!, 'the cursor');
  });

  it('filters by type and by tenant', async () => {
    const cancelled = await webhook({ types: ['tenant.cancelled'] });
    const [mine, other] = [await createTenant(server.api), await createTenant(server.api)];
    const oneTenant = await webhook({ tenant_id: mine.id });
    await cancel(other);
    await cancel(mine);
    await server.api.post('/v1/api-keys', { body: { tenant_id: mine.id, name: 'filter probe' } });
    const mineEvents = (await feedEvents(`tenant_id=${mine.id}&after=${oneTenant.last_seq}`)).map((event) => event.id);
    expect(mineEvents.length).toBe(2);
    await until(() => receiver.at(oneTenant.path).length >= 2 && receiver.at(cancelled.path).length >= 2, 'the filtered deliveries');
    expect(receiver.at(oneTenant.path).map((entry) => entry.event.id)).toEqual(mineEvents);
    expect(receiver.at(cancelled.path).map((entry) => [entry.event.type, entry.event.tenant_id])).toEqual([
      ['tenant.cancelled', other.id],
      ['tenant.cancelled', mine.id],
    ]);
  });

  it('retries a receiver that answers 500 by the schedule, under the same webhook-id, until it answers 200', async () => {
    const hook = await webhook({ types: ['tenant.created'] });
    let calls = 0;
    receiver.on(hook.path, (_request, response) => {
      calls += 1;
      response.writeHead(calls <= 2 ? 500 : 200).end(calls <= 2 ? 'broken' : 'ok');
    });
    const tenant = await createTenant(server.api);
    const log = await deliveredLog(hook.id);
    const ids = receiver.at(hook.path).map((entry) => entry.headers['webhook-id']);
    expect(ids).toHaveLength(3);
    expect(new Set(ids).size).toBe(1);
    for (const entry of receiver.at(hook.path)) new Webhook(hook.secret).verify(entry.body, entry.headers as Record<string, string>);
    // Newest first.
    expect(log.map((entry) => [entry.attempt, entry.outcome, entry.http_status, entry.error])).toEqual([
      [3, 'delivered', 200, null],
      [2, 'failed', 500, 'http_500'],
      [1, 'failed', 500, 'http_500'],
    ]);
    expect(log.every((entry) => entry.event_id === ids[0] && typeof entry.latency_ms === 'number')).toBe(true);
    const [event] = await feedEvents(`tenant_id=${tenant.id}&types=tenant.created`);
    expect(ids[0]).toBe(event!.id);
    // Each retry waited at least its delay in the schedule.
    const times = log.map((entry) => Date.parse(entry.attempted_at as string)).reverse();
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(SCHEDULE[1]! - 5);
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(SCHEDULE[2]! - 5);
  });

  it('gives an event up (dead) after the last attempt, then the next event flows', async () => {
    const hook = await webhook({ types: ['tenant.created'] });
    // The receiver refuses the first tenant it hears of, whichever that is: it is set up before
    // the tenant exists, since the first delivery can arrive before createTenant's answer does.
    let refused: string | null | undefined;
    receiver.on(hook.path, (request, response) => {
      refused ??= request.event.tenant_id;
      response.writeHead(request.event.tenant_id === refused ? 503 : 204).end();
    });
    const first = await createTenant(server.api);
    const second = await createTenant(server.api);
    await until(() => receiver.at(hook.path).some((entry) => entry.event.tenant_id === second.id), 'the next event');
    const sent = receiver.at(hook.path).map((entry) => entry.event.tenant_id);
    expect(refused).toBe(first.id);
    expect(sent).toEqual([first.id, first.id, first.id, second.id]);
    const log = await deliveredLog(hook.id);
    expect(log.map((entry) => [entry.attempt, entry.outcome, entry.error])).toEqual([
      [1, 'delivered', null],
      [3, 'dead', 'http_503'],
      [2, 'failed', 'http_503'],
      [1, 'failed', 'http_503'],
    ]);
  });

  it('a receiver that never answers times out, and a redirect is not followed', async () => {
    const hook = await webhook({ types: ['tenant.created'] });
    let calls = 0;
    receiver.on(hook.path, (_request, response) => {
      calls += 1;
      if (calls === 1) return; // Hangs: never answers.
      if (calls === 2) return void response.writeHead(302, { location: receiver.url('/elsewhere') }).end();
      response.writeHead(200).end();
    });
    await createTenant(server.api);
    const log = await deliveredLog(hook.id, 30_000);
    expect(log.map((entry) => [entry.attempt, entry.outcome, entry.http_status, entry.error])).toEqual([
      [3, 'delivered', 200, null],
      [2, 'failed', 302, 'http_302'],
      [1, 'failed', null, 'timeout'],
    ]);
    expect(receiver.at('/elsewhere')).toEqual([]);
  });

  it('replay from a seq delivers those events again, in order, under their ids', async () => {
    const hook = await webhook({ types: ['tenant.created'] });
    for (let i = 0; i < 3; i++) await createTenant(server.api);
    await until(() => receiver.at(hook.path).length >= 3, 'the first deliveries');
    const firstRound = receiver.at(hook.path).map((entry) => entry.event);
    const replayed = await server.api.post(`/v1/webhooks/${hook.id}/replay`, { body: { from_seq: firstRound[1]!.seq } });
    expect(replayed.status, replayed.text).toBe(200);
    await until(() => receiver.at(hook.path).length >= 5, 'the replayed deliveries');
    expect(receiver.at(hook.path).map((entry) => entry.event.id)).toEqual([...firstRound, ...firstRound.slice(1)].map((event) => event.id));
  });

  it('the test ping is signed, typed webhook.test, answered with its outcome, and not in the feed', async () => {
    const hook = await webhook();
    const answer = await server.api.post<{ id: string; outcome: string; http_status: number; latency_ms: number; error: null }>(`/v1/webhooks/${hook.id}/test`);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ outcome: 'delivered', http_status: 200, error: null });
    expect(answer.body.latency_ms).toBeGreaterThanOrEqual(0);
    const [ping] = receiver.at(hook.path).filter((entry) => entry.event.type === 'webhook.test');
    expect(ping!.headers['webhook-id']).toBe(answer.body.id);
    expect(new Webhook(hook.secret).verify(ping!.body, ping!.headers as Record<string, string>)).toMatchObject({
      id: answer.body.id,
      seq: 0,
      type: 'webhook.test',
      data: { target: { id: hook.id, type: 'webhook' } },
    });
    expect(await feedEvents('types=webhook.*')).toEqual([]);
  });

  it('after a rotation both secrets sign; each verifies alone', async () => {
    const hook = await webhook({ types: ['tenant.created'] });
    const rotated = await server.api.post<{ secret: string }>(`/v1/webhooks/${hook.id}/rotate-secret`);
    await createTenant(server.api);
    const [delivery] = await until(() => receiver.at(hook.path).length > 0 && receiver.at(hook.path), 'the delivery');
    const signatures = (delivery!.headers['webhook-signature'] as string).split(' ');
    expect(signatures).toHaveLength(2);
    expect(signatures.every((signature) => signature.startsWith('v1,'))).toBe(true);
    const headers = delivery!.headers as Record<string, string>;
    expect(() => new Webhook(rotated.body.secret).verify(delivery!.body, headers)).not.toThrow();
    expect(() => new Webhook(hook.secret).verify(delivery!.body, headers)).not.toThrow();
    // Once the grace is over, the old secret no longer signs.
    await server.db.query(`UPDATE webhooks SET previous_secret_until = now() - interval '1 second' WHERE id = $1`, [hook.id]);
    await createTenant(server.api);
    const [, later] = await until(() => receiver.at(hook.path).length > 1 && receiver.at(hook.path), 'the next delivery');
    expect((later!.headers['webhook-signature'] as string).split(' ')).toHaveLength(1);
    expect(() => new Webhook(hook.secret).verify(later!.body, later!.headers as Record<string, string>)).toThrow();
    expect(() => new Webhook(rotated.body.secret).verify(later!.body, later!.headers as Record<string, string>)).not.toThrow();
  });

  it('the delivery log holds no secret and no response body', async () => {
    const hook = await webhook({ types: ['tenant.created'] });
    receiver.on(hook.path, (_request, response) => response.writeHead(500).end('stack trace with whsec_leak'));
    await createTenant(server.api);
    await until(async () => (await deliveries(hook.id)).length > 0, 'an attempt');
    const text = JSON.stringify(await deliveries(hook.id));
    expect(text).not.toContain(hook.secret.slice(6));
    expect(text).not.toContain('whsec_');
    expect(text).not.toContain('stack trace');
    const rows = await server.db.query('SELECT * FROM webhook_deliveries WHERE webhook_id = $1', [hook.id]);
    expect(JSON.stringify(rows)).not.toContain('whsec_');
    await server.api.request('DELETE', `/v1/webhooks/${hook.id}`);
  });

  it('a disabled webhook keeps its cursor; enabled again, it resumes there', async () => {
    const hook = await webhook({ types: ['tenant.created'] });
    const witness = await webhook({ types: ['tenant.created'] });
    await server.api.request('PATCH', `/v1/webhooks/${hook.id}`, { body: { enabled: false } });
    const tenant = await createTenant(server.api);
    // The witness got the event: the dispatcher has been past it.
    await until(() => receiver.at(witness.path).some((entry) => entry.event.tenant_id === tenant.id), 'the witness delivery');
    expect(receiver.at(hook.path)).toEqual([]);
    expect((await server.api.get<{ last_seq: number }>(`/v1/webhooks/${hook.id}`)).body.last_seq).toBe(hook.last_seq);
    await server.api.request('PATCH', `/v1/webhooks/${hook.id}`, { body: { enabled: true } });
    await until(() => receiver.at(hook.path).some((entry) => entry.event.tenant_id === tenant.id), 'the delivery after enabling');
  });

  it('an endpoint whose stored URL is no longer allowed is refused at delivery, and logged so', async () => {
    const hook = await webhook({ types: ['tenant.created'] });
    // As if the allowlist had shrunk since: 127.0.0.3 is loopback and not allowed.
    await server.db.query('UPDATE webhooks SET url = $2 WHERE id = $1', [hook.id, receiver.url(hook.path).replace('127.0.0.1', '127.0.0.3')]);
    await createTenant(server.api);
    await until(async () => (await deliveries(hook.id)).length > 0, 'an attempt');
    expect((await deliveries(hook.id))[0]).toMatchObject({ outcome: 'failed', error: 'address_refused', http_status: null, attempt: 1 });
    expect(receiver.at(hook.path)).toEqual([]);
    await server.api.request('DELETE', `/v1/webhooks/${hook.id}`);
  });

  it('at connect time, a name is checked by what it resolves to then (DNS rebinding)', async () => {
    // localhost resolves to loopback: a guard that does not allow it refuses the connection
    // before it is made, though the receiver listens there; one that allows the name connects.
    const message = { id: 'msg_rebinding', payload: '{"id":"x"}', secrets: [`whsec_${Buffer.alloc(32, 1).toString('base64')}`], timestamp: new Date() };
    const url = receiver.url('/rebinding').replace('127.0.0.1', 'localhost');
    const refused = await sendAttempt(url, message, { guard: createUrlGuard(parseAllowlist([])), timeoutMs: TIMEOUT_MS });
    expect(refused).toMatchObject({ outcome: 'failed', status: null, error: 'address_refused' });
    expect(receiver.at('/rebinding')).toEqual([]);
    const allowed = await sendAttempt(url, message, { guard: createUrlGuard(parseAllowlist(['localhost'])), timeoutMs: TIMEOUT_MS });
    expect(allowed).toMatchObject({ outcome: 'delivered', status: 200, error: null });
    expect(receiver.at('/rebinding')).toHaveLength(1);
  });

  it('a cursor retention passed is logged as expired, and delivery goes on from the oldest kept event', async () => {
    const hook = await webhook({ types: ['tenant.created'] });
    await server.api.request('PATCH', `/v1/webhooks/${hook.id}`, { body: { enabled: false } });
    const tenants = [await createTenant(server.api), await createTenant(server.api)];
    // Retention deletes every event up to the first of these two.
    const [first] = await feedEvents(`tenant_id=${tenants[0]!.id}`);
    await until(async () => (await server.db.query<{ n: number }>('SELECT count(*)::int AS n FROM webhooks WHERE enabled AND last_seq < $1', [first!.seq])).every((row) => row.n === 0), 'the others to pass it');
    await pruneFeed(server.db, new Date(Date.now() + 60_000), first!.seq);
    await server.api.request('PATCH', `/v1/webhooks/${hook.id}`, { body: { enabled: true } });
    await until(() => receiver.at(hook.path).length > 0, 'the delivery');
    expect(receiver.at(hook.path).map((entry) => entry.event.tenant_id)).toEqual([tenants[1]!.id]);
    const log = await deliveredLog(hook.id);
    expect(log.map((entry) => [entry.outcome, entry.seq])).toEqual([
      ['delivered', first!.seq + 1],
      ['expired', first!.seq],
    ]);
    expect(errors).toEqual([]);
  });
});

describe.each(DRIVERS.filter((driver) => driver === 'pg'))('webhook dispatch by one replica at a time [%s]', (driver) => {
  let server: TestServer;
  let receiver: Receiver;
  const feeds: FeedSignal[] = [];
  beforeAll(async () => {
    server = await startServer(driver, { webhooks: { allowPrivate: parseAllowlist(ALLOW) } });
    receiver = await startReceiver();
  }, 60_000);
  afterAll(async () => {
    for (const feed of feeds) await feed.stop();
    await receiver?.close();
    await server?.close();
  });

  async function replica(holder: string): Promise<WebhookDispatcher> {
    const feed = await startFeedSignal(server.db);
    feeds.push(feed);
    return startWebhookDispatcher({
      db: server.db,
      feed,
      holder,
      allowPrivate: ALLOW,
      schedule: SCHEDULE,
      timeoutMs: TIMEOUT_MS,
      // Short, so a lapse is seen soon; renewed every third of it.
      leaseMs: 1_500,
      pollMs: 200,
      onError: () => {},
    });
  }

  it('two dispatchers on one database: one holds the lease, each event arrives once; a crashed holder is replaced once its lease lapses', async () => {
    const answer = await server.api.post<WebhookAnswer>('/v1/webhooks', { body: { url: receiver.url('/both'), types: ['tenant.created'] } });
    const a = await replica('replica-a');
    const b = await replica('replica-b');
    const holder = await until(async () => (await consumerState(server.db, WEBHOOK_LEASE))?.holder ?? undefined, 'a holder');
    expect(['replica-a', 'replica-b']).toContain(holder);
    for (let i = 0; i < 6; i++) await createTenant(server.api);
    await until(() => receiver.at('/both').length >= 6, 'six deliveries');
    const last = receiver.at('/both').at(-1)!.event.seq;
    await until(async () => (await server.api.get<{ last_seq: number }>(`/v1/webhooks/${answer.body.id}`)).body.last_seq >= last, 'the cursor');
    // The holder stops as a crash would: no release. The other waits out the lease and takes over.
    const [stopped, standing] = holder === 'replica-a' ? [a, b] : [b, a];
    await stopped.stop({ release: false });
    for (let i = 0; i < 4; i++) await createTenant(server.api);
    await until(() => receiver.at('/both').length >= 10, 'the deliveries after the takeover', 30_000);
    expect((await consumerState(server.db, WEBHOOK_LEASE))?.holder).toBe(holder === 'replica-a' ? 'replica-b' : 'replica-a');
    const ids = receiver.at('/both').map((entry) => entry.headers['webhook-id']);
    expect(new Set(ids).size).toBe(ids.length);
    const seqs = receiver.at('/both').map((entry) => entry.event.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    const expected = (await server.api.get<{ items: ChangeEvent[] }>(`/v1/events?types=tenant.created&after=${answer.body.last_seq}`)).body.items;
    expect(ids).toEqual(expected.map((event) => event.id));
    await standing.stop();
    expect((await consumerState(server.db, WEBHOOK_LEASE))?.holder).toBeNull();
  });
});
