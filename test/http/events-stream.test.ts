// GET /v1/events/stream (issue 19, point 2), read by a real SSE client (test/support/sse.ts) and,
// for a client that stops reading, by a raw socket: events committed after the stream opened
// arrive as `id: <seq>` + `data: <json>`; Last-Event-ID resumes exactly after the event it names
// (else `after`); bad and expired ones are refused before the stream starts; idle streams send
// heartbeats; filters apply; a stalled reader is cut with the server's buffer for it bounded; each
// caller has a cap of open streams; closing the app ends the streams.
import { connect, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ChangeEvent } from '../../src/domain/change-event.js';
import { pruneFeed } from '../../src/store/events.js';
import { until } from '../support/until.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { readWholeFeed } from '../support/feed.js';
import type { Client } from '../support/http.js';
import { identities } from '../support/identities.js';
import { startServer, type TestServer } from '../support/server.js';
import { dataOf, openSse, type SseConnection } from '../support/sse.js';

// Small, so the tests wait little; the assertions only need them to happen at all.
const HEARTBEAT_MS = 300;
const STALL_MS = 1_500;
const WAIT_MS = 30_000;
// A small budget for tenant users' streams, so the test opens few.
const TENANT_STREAMS = { perReplica: 20, perTenant: 8 };

eachDriver('GET /v1/events/stream', (driver) => {
  let server: TestServer;
  let api: Client;
  let token: string;
  const open: SseConnection[] = [];
  beforeAll(async () => {
    server = await startServer(driver, { eventStream: { heartbeatMs: HEARTBEAT_MS, tenantStreams: TENANT_STREAMS }, exportStallMs: STALL_MS });
    api = server.api;
    token = api.token!;
  });
  afterEach(() => {
    for (const connection of open.splice(0)) connection.close();
  });
  afterAll(async () => {
    // fetch's pool sometimes opens a connection it never sends a request on. Node closes neither
    // it (not idle: no request ended on it) nor, once close() began, for its headers timeout, so
    // the app's close would wait for the client's keep-alive to give up, a minute on. This is the
    // client's doing: the streams themselves ending on close is the last test's business.
    server?.app.server.closeAllConnections();
    await server?.close();
  });

  /** Opens the stream as the platform admin (or with `bearer`), closed after the test. */
  async function stream(query = '', headers: Record<string, string> = {}, bearer = token): Promise<SseConnection> {
    const connection = await openSse(`${server.url}/v1/events/stream${query}`, { authorization: `Bearer ${bearer}`, ...headers });
    open.push(connection);
    return connection;
  }

  const head = async () => (await readWholeFeed(api)).at(-1)?.seq ?? 0;
  const seqsOf = (connection: SseConnection) => connection.messages.map((message) => Number(message.id));
  const touch = async (tenantId: string, plan: string) => {
    const answer = await api.request('PATCH', `/v1/tenants/${tenantId}`, { body: { plan }, headers: { 'if-match': '*' } });
    expect(answer.status).toBe(200);
  };

  it('delivers the events committed after it opened, each as id: <seq> and data: <event>', async () => {
    const tenant = await createTenant(api);
    const from = await head();
    const connection = await stream();
    expect(connection.status).toBe(200);
    expect(connection.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(connection.headers.get('cache-control')).toBe('no-store');
    await connection.until((c) => c.retry !== null, 'the retry line');
    for (const plan of ['a', 'b', 'c']) await touch(tenant.id, plan);
    await connection.until((c) => c.messages.length >= 3, 'three events');
    const feed = (await readWholeFeed(api)).filter((event) => event.seq > from);
    expect(dataOf<ChangeEvent>(connection)).toEqual(feed);
    expect(seqsOf(connection)).toEqual([from + 1, from + 2, from + 3]);
    expect(connection.messages.every((message) => message.event === null)).toBe(true);
  });

  it('resumes after Last-Event-ID exactly: nothing repeated, nothing skipped', async () => {
    const tenant = await createTenant(api);
    const from = await head();
    const first = await stream(`?after=${from}`);
    for (const plan of ['a', 'b']) await touch(tenant.id, plan);
    await first.until((c) => c.messages.length >= 2, 'the first two events');
    first.close();
    const last = first.messages.at(-1)!.id!;
    // Written while the consumer was away.
    for (const plan of ['c', 'd', 'e']) await touch(tenant.id, plan);
    // Last-Event-ID wins over `after`, as for a reconnecting EventSource whose URL kept its query.
    const second = await stream('?after=0', { 'last-event-id': last });
    await second.until((c) => c.messages.length >= 3, 'the events written meanwhile');
    await touch(tenant.id, 'f');
    await second.until((c) => c.messages.length >= 4, 'the event written after reconnecting');
    const seen = [...seqsOf(first), ...seqsOf(second)];
    expect(seen).toEqual([1, 2, 3, 4, 5, 6].map((n) => from + n));
    expect(dataOf<ChangeEvent>(second).map((event) => event.data.fields['plan.new'])).toEqual(['c', 'd', 'e', 'f']);
  });

  it('starts after `after` when there is no Last-Event-ID', async () => {
    const tenant = await createTenant(api);
    const from = await head();
    for (const plan of ['a', 'b', 'c']) await touch(tenant.id, plan);
    const connection = await stream(`?after=${from + 1}`);
    await connection.until((c) => c.messages.length >= 2, 'the events after the cursor');
    expect(seqsOf(connection)).toEqual([from + 2, from + 3]);
  });

  it('refuses a bad Last-Event-ID or one ahead of the feed with 400 invalid_cursor', async () => {
    const now = await head();
    for (const bad of ['abc', '-1', '1e3', '1.5', '0x10', '99999999999999999999', String(now + 1), ' ']) {
      const connection = await stream('', { 'last-event-id': bad });
      expect({ bad, status: connection.status }).toEqual({ bad, status: 400 });
      expect(JSON.parse(connection.text)).toMatchObject({ status: 400, code: 'invalid_cursor' });
    }
    for (const query of ['?after=-1', '?after=abc', `?after=${'9'.repeat(5_000)}`, `?types=${'x'.repeat(10_000)}`, '?tenant_id=nope']) {
      const connection = await stream(query);
      expect({ query, status: connection.status }).toEqual({ query, status: 400 });
    }
  });

  it('sends heartbeat comments while nothing happens', async () => {
    const connection = await stream();
    await connection.until((c) => c.comments.length >= 3, 'three heartbeats');
    expect(connection.comments.slice(0, 3)).toEqual(['heartbeat', 'heartbeat', 'heartbeat']);
    expect(connection.messages).toEqual([]);
    expect(connection.ended).toBe(false);
  });

  it('applies the types and tenant filters, and lets an IT admin follow its own tenant', async () => {
    const [mine, other] = [await createTenant(api), await createTenant(api)];
    const from = await head();
    const activations = await stream(`?after=${from}&types=${encodeURIComponent('tenant.activated,tenant.cancelled')}`);
    const ofMine = await stream(`?after=${from}&tenant_id=${mine.id}&types=tenant.*`);
    const itAdmin = await server.issuer.mint(identities.itAdmin(mine.id));
    const asItAdmin = await stream(`?after=${from}&tenant_id=${mine.id}`, {}, itAdmin);
    expect([activations.status, ofMine.status, asItAdmin.status]).toEqual([200, 200, 200]);
    expect((await stream(`?tenant_id=${other.id}`, {}, itAdmin)).status).toBe(404);
    expect((await stream('', {}, itAdmin)).status).toBe(403);

    await touch(other.id, 'x');
    await touch(mine.id, 'y');
    expect((await api.post(`/v1/tenants/${other.id}/activate`)).status).toBe(200);
    expect((await api.post(`/v1/tenants/${mine.id}/activate`)).status).toBe(200);
    await touch(other.id, 'z');
    expect((await api.post(`/v1/tenants/${other.id}/cancel`)).status).toBe(200);
    // The last event, which every stream takes: once it arrived, everything before it was sent.
    expect((await api.post(`/v1/tenants/${mine.id}/cancel`)).status).toBe(200);
    const sawLast = (c: SseConnection) => {
      const last = dataOf<ChangeEvent>(c).at(-1);
      return last?.type === 'tenant.cancelled' && last.tenant_id === mine.id;
    };
    for (const connection of [activations, ofMine, asItAdmin]) await connection.until(sawLast, 'the last event');

    expect(dataOf<ChangeEvent>(activations).map((event) => [event.type, event.tenant_id])).toEqual([
      ['tenant.activated', other.id],
      ['tenant.activated', mine.id],
      ['tenant.cancelled', other.id],
      ['tenant.cancelled', mine.id],
    ]);
    expect(dataOf<ChangeEvent>(ofMine).map((event) => event.type)).toEqual(['tenant.updated', 'tenant.activated', 'tenant.cancelled']);
    expect(dataOf(asItAdmin)).toEqual(dataOf(ofMine));
  });

  it("cuts a client that stops reading, without buffering the feed for it", async () => {
    const tenant = await createTenant(api);
    const sockets: Socket[] = [];
    const onConnection = (socket: Socket) => sockets.push(socket);
    server.app.server.on('connection', onConnection);
    const client = connect(Number(new URL(server.url).port), '127.0.0.1');
    let received = '';
    let clientClosed = false;
    client.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    client.on('error', () => {});
    client.on('close', () => (clientClosed = true));
    await new Promise((resolve) => client.once('connect', resolve));
    client.write(`GET /v1/events/stream HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer ${token}\r\naccept: text/event-stream\r\n\r\n`);
    await until(() => received.includes('retry: 2000'), 'the stream to start', WAIT_MS);
    // From here on the client reads nothing: the kernel's buffers fill, then the server's.
    client.pause();
    const serverSide = sockets.find((socket) => socket.remotePort === client.localPort);
    server.app.server.off('connection', onConnection);
    expect(serverSide).toBeDefined();

    // About 16 MB of events: far more than the socket buffers of loopback hold.
    const count = 4_000;
    const pad = 'x'.repeat(4_000);
    await server.db.query(
      `INSERT INTO change_events (id, type, tenant_id, occurred_at, data)
       SELECT gen_random_uuid(), 'tenant.updated', $1, now(),
              jsonb_build_object('actor', jsonb_build_object('id', 'x', 'name', null), 'target', jsonb_build_object('id', 'y', 'type', null, 'name', null),
                                 'product', null, 'fields', jsonb_build_object('pad', $2::text))
         FROM generate_series(1, $3::int)`,
      [tenant.id, pad, count],
    );
    const totalBytes = count * pad.length;

    let mostBuffered = 0;
    await until(() => {
      mostBuffered = Math.max(mostBuffered, serverSide!.writableLength);
      return serverSide!.destroyed;
    }, 'the server to cut the stalled client', WAIT_MS);
    // What reached the socket (sent or queued in Node) is the kernel's share and a page or two.
    expect(serverSide!.bytesWritten).toBeLessThan(totalBytes / 2);
    expect(mostBuffered).toBeLessThan(2 * 1024 * 1024);

    // The client learns of it once it reads again: what was in flight, then the end.
    client.resume();
    await until(() => clientClosed, 'the client to see the connection end', WAIT_MS);
    expect(received.length).toBeLessThan(totalBytes / 2);
    // And its slot of the stream budget is free again: five more streams open.
    for (let index = 0; index < 5; index += 1) {
      await until(async () => (await stream()).status === 200, 'a stream slot', WAIT_MS);
    }
  });

  it('answers 429 too_many_heavy_reads past the per-caller stream cap, and admits again once one closes', async () => {
    const tenant = await createTenant(api);
    const caller = await server.issuer.mint(identities.itAdmin(tenant.id));
    const query = `?tenant_id=${tenant.id}`;
    const held: SseConnection[] = [];
    for (let index = 0; index < 5; index += 1) held.push(await stream(query, {}, caller));
    expect(held.map((connection) => connection.status)).toEqual([200, 200, 200, 200, 200]);
    const refused = await stream(query, {}, caller);
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.text)).toMatchObject({ status: 429, code: 'too_many_heavy_reads' });
    expect(refused.headers.get('retry-after')).not.toBeNull();
    // Another caller is not held back by this one.
    expect((await stream()).status).toBe(200);
    held[0]!.close();
    await until(async () => {
      const again = await stream(query, {}, caller);
      return again.status === 200;
    }, 'the freed slot', WAIT_MS);
  });

  it('ends a stream when its token expires: access is not checked again on an open stream', async () => {
    const tenant = await createTenant(api);
    const shortLived = await server.issuer.mint(identities.platformAdmin(), { expiresIn: 2 });
    const connection = await stream(`?tenant_id=${tenant.id}`, {}, shortLived);
    expect(connection.status).toBe(200);
    await connection.until((c) => c.ended, 'the end of the stream at the token expiry');
    // What commits afterwards never reaches it. (A reconnect needs a token that verifies: this
    // one does for the verifier's clock tolerance more, then answers 401.)
    await touch(tenant.id, 'after-expiry');
    expect(connection.messages).toEqual([]);
  });

  it("keeps half of the replica's streams from tenant users: a tenant's admins share its budget", async () => {
    const tenant = await createTenant(api);
    const admins = await Promise.all(
      [1, 2, 3].map((n) => server.issuer.mint({ ...identities.itAdmin(tenant.id), sub: `it-admin-${n}-${tenant.id}` })),
    );
    const query = `?tenant_id=${tenant.id}`;
    // TENANT_STREAMS.perTenant of them, from three admins none of whom is at their own cap.
    const held: SseConnection[] = [];
    for (let index = 0; index < TENANT_STREAMS.perTenant; index += 1) held.push(await stream(query, {}, admins[index % 3]));
    expect(held.every((connection) => connection.status === 200)).toBe(true);
    const refused = await stream(query, {}, admins[2]);
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.text)).toMatchObject({ code: 'too_many_heavy_reads' });
    // Operators, and another tenant's admin, are not held back.
    expect((await stream(query)).status).toBe(200);
    const other = await createTenant(api);
    expect((await stream(`?tenant_id=${other.id}`, {}, await server.issuer.mint(identities.itAdmin(other.id)))).status).toBe(200);
  });

  it("does not tell a tenant's admin how far the whole feed has got", async () => {
    const tenant = await createTenant(api);
    const admin = await server.issuer.mint(identities.itAdmin(tenant.id));
    const ahead = await stream(`?tenant_id=${tenant.id}`, { 'last-event-id': '999999999' }, admin);
    expect(ahead.status).toBe(400);
    expect((JSON.parse(ahead.text) as { detail: string }).detail).not.toMatch(/newest/);
    const operator = await stream('', { 'last-event-id': '999999999' });
    expect((JSON.parse(operator.text) as { detail: string }).detail).toMatch(/newest event is \d+/);
  });

  it('answers 410 cursor_expired for a Last-Event-ID past retention', async () => {
    // Retention takes the first two events.
    expect(await pruneFeed(server.db, new Date(Date.now() + 86_400_000), 2)).toBe(2);
    for (const expired of ['0', '1']) {
      const connection = await stream('', { 'last-event-id': expired });
      expect(connection.status).toBe(410);
      expect(JSON.parse(connection.text)).toMatchObject({ code: 'cursor_expired', oldest_seq: 3 });
      expect(connection.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
    const expiredAfter = await stream('?after=1');
    expect(expiredAfter.status).toBe(410);
    expect(JSON.parse(expiredAfter.text)).toMatchObject({ code: 'cursor_expired', oldest_seq: 3 });
    const atMark = await stream('', { 'last-event-id': '2' });
    await atMark.until((c) => c.messages.length >= 1, 'the oldest kept event');
    expect(atMark.messages[0]!.id).toBe('3');
  });

  describe('when the app closes', () => {
    it('ends the open streams promptly', async () => {
      const own = await startServer(driver, { eventStream: { heartbeatMs: 60_000 } });
      let closed = false;
      const connections = [
        await openSse(`${own.url}/v1/events/stream`, { authorization: `Bearer ${own.api.token!}` }),
        await openSse(`${own.url}/v1/events/stream?after=0`, { authorization: `Bearer ${own.api.token!}` }),
      ];
      try {
        for (const connection of connections) await connection.until((c) => c.retry !== null, 'the stream to start');
        const started = Date.now();
        await own.close();
        closed = true;
        // Far below the heartbeat the streams were waiting on (a minute).
        expect(Date.now() - started).toBeLessThan(20_000);
        for (const connection of connections) await connection.until((c) => c.ended, 'the end of the stream', 10_000);
      } finally {
        for (const connection of connections) connection.close();
        if (!closed) await own.close();
      }
    });
  });
});
