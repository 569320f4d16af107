// Webhook endpoints take turns (issue 19 review): an endpoint whose receiver answers slowly but
// steadily, with a long backlog, gives its slot back after a turn, so an endpoint waiting behind
// it is served long before the slow one has caught up. One slot here, so the turns are visible.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startFeedSignal, type FeedSignal } from '../../src/events/feed-signal.js';
import { parseAllowlist } from '../../src/events/url-guard.js';
import { startWebhookDispatcher, type WebhookDispatcher } from '../../src/events/webhook-dispatcher.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { startServer, type TestServer } from '../support/server.js';

// The slow receiver's answer time, and the turn: a few deliveries per turn.
const SLOW_MS = 150;
const TURN_MS = 500;
const BACKLOG = 30;

eachDriver('webhook endpoints taking turns', (driver) => {
  let server: TestServer;
  let receiver: Server;
  let feed: FeedSignal;
  let dispatcher: WebhookDispatcher | undefined;
  const arrivals: Array<{ path: string; at: number }> = [];

  beforeAll(async () => {
    server = await startServer(driver, { webhooks: { allowPrivate: parseAllowlist(['127.0.0.1']) } });
    receiver = createServer((request, response) => {
      request.resume();
      request.on('end', () => {
        arrivals.push({ path: request.url ?? '', at: performance.now() });
        setTimeout(() => response.writeHead(204).end(), request.url === '/slow' ? SLOW_MS : 0);
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    feed = await startFeedSignal(server.db);
  });
  afterAll(async () => {
    await dispatcher?.stop();
    await feed?.stop();
    receiver?.closeAllConnections();
    await new Promise<void>((resolve) => receiver?.close(() => resolve()));
    await server?.close();
  });

  it('serves a waiting endpoint long before a slow one with a backlog has caught up', async () => {
    const port = (receiver.address() as AddressInfo).port;
    const slow = await server.api.post('/v1/webhooks', { body: { url: `http://127.0.0.1:${port}/slow`, types: ['tenant.updated'] } });
    expect(slow.status).toBe(201);
    const tenant = await createTenant(server.api);
    for (let i = 0; i < BACKLOG; i += 1) {
      const edited = await server.api.request('PATCH', `/v1/tenants/${tenant.id}`, { body: { plan: `p${i}` }, headers: { 'if-match': '*' } });
      expect(edited.status).toBe(200);
    }
    // Registered after the backlog, from its first event on: it waits behind the slow endpoint.
    const fast = await server.api.post('/v1/webhooks', { body: { url: `http://127.0.0.1:${port}/fast`, types: ['tenant.updated'], from_seq: 1 } });
    expect(fast.status).toBe(201);

    dispatcher = startWebhookDispatcher({
      db: server.db,
      feed,
      holder: 'turns',
      allowPrivate: ['127.0.0.1'],
      concurrency: 1,
      turnMs: TURN_MS,
      pollMs: 100,
      onError: () => {},
    });
    const deadline = Date.now() + 60_000;
    while (arrivals.filter((arrival) => arrival.path === '/fast').length < BACKLOG || arrivals.filter((arrival) => arrival.path === '/slow').length < BACKLOG) {
      if (Date.now() > deadline) throw new Error(`gave up waiting: ${arrivals.length} arrivals`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const firstFast = arrivals.findIndex((arrival) => arrival.path === '/fast');
    const slowBefore = arrivals.slice(0, firstFast).filter((arrival) => arrival.path === '/slow').length;
    // Whichever went first, the fast endpoint did not wait for the whole backlog of the slow one.
    expect(slowBefore).toBeLessThan(BACKLOG);
    expect(slowBefore).toBeLessThanOrEqual(Math.ceil(TURN_MS / SLOW_MS) + 1);
  });
});
