// The LISTEN connection across a network path that dies silently: a proxy between the listener
// and PostgreSQL stops forwarding without closing anything, as a dropped route or a frozen NAT
// entry does. Without a heartbeat the listener would wait forever, believing it hears every change.
import net from 'node:net';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listenOnPg } from '../../src/store/pg-listener.js';
import { DRIVERS } from '../support/drivers.js';
import { createTestPgDatabase, type TestPgDatabase } from '../support/postgres.js';
import pg from 'pg';

/** A TCP proxy to the PostgreSQL server whose open connections can be frozen (bytes held, nothing closed). */
async function freezingProxy(target: URL) {
  const links: Array<{ client: net.Socket; server: net.Socket }> = [];
  const proxy = net.createServer((client) => {
    const server = net.connect(Number(target.port || 5432), target.hostname);
    client.pipe(server);
    server.pipe(client);
    client.on('error', () => {});
    server.on('error', () => {});
    links.push({ client, server });
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  const { port } = proxy.address() as net.AddressInfo;
  return {
    port,
    /** Every connection open now stops carrying bytes either way; new ones work. */
    freeze() {
      for (const { client, server } of links.splice(0)) {
        client.unpipe(server);
        server.unpipe(client);
        client.pause();
        server.pause();
      }
    },
    async close() {
      for (const { client, server } of links) {
        client.destroy();
        server.destroy();
      }
      proxy.close();
    },
  };
}

const waitFor = async (condition: () => boolean, ms: number, what: string) => {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`no ${what} within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

describe.runIf(DRIVERS.includes('pg'))('the LISTEN connection on a path that dies silently [pg]', () => {
  let database: TestPgDatabase;
  beforeAll(async () => {
    database = await createTestPgDatabase();
  });
  afterAll(() => database.drop());

  it('notices within its heartbeat, says so, and listens again on a new connection', async () => {
    const proxy = await freezingProxy(new URL(database.url));
    const url = new URL(database.url);
    url.hostname = '127.0.0.1';
    url.port = String(proxy.port);
    const states: boolean[] = [];
    const heard: string[] = [];
    const stop = await listenOnPg(url.toString(), 'silent_drop_test', (payload) => heard.push(payload), (listening) => states.push(listening), {
      heartbeatMs: 100,
      heartbeatTimeoutMs: 200,
    });
    const notify = async (payload: string) => {
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      await client.query(`NOTIFY silent_drop_test, '${payload}'`);
      await client.end();
    };
    try {
      expect(states).toEqual([false, true]);
      await notify('before');
      await waitFor(() => heard.includes('before'), 2_000, 'the first notification');

      proxy.freeze();
      const frozenAt = performance.now();
      await waitFor(() => states.at(-1) === false, 2_000, 'the loss noticed');
      // One heartbeat period plus its timeout, with room for a loaded machine.
      expect(performance.now() - frozenAt).toBeLessThan(1_000);

      await waitFor(() => states.at(-1) === true, 3_000, 'listening again');
      await notify('after');
      await waitFor(() => heard.includes('after'), 2_000, 'a notification on the new connection');
    } finally {
      await stop();
      await proxy.close();
    }
  });
});
