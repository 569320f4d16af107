// The LISTEN connection across a network path that dies silently: a proxy between the listener
// and PostgreSQL stops forwarding without closing anything, as a dropped route or a frozen NAT
// entry does. Without a heartbeat the listener would wait forever, believing it hears every change.
import net from 'node:net';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgListener } from '../../src/store/pg-listener.js';
import { DRIVERS } from '../support/drivers.js';
import { createTestPgDatabase, type TestPgDatabase } from '../support/postgres.js';
import pg from 'pg';
import { until } from '../support/until.js';

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
    const listener = createPgListener(url.toString(), { heartbeatMs: 100, heartbeatTimeoutMs: 200 });
    const stop = await listener.subscribe('silent_drop_test', (payload) => heard.push(payload), (listening) => states.push(listening));
    const notify = async (payload: string) => {
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      await client.query(`NOTIFY silent_drop_test, '${payload}'`);
      await client.end();
    };
    try {
      expect(states).toEqual([false, true]);
      await notify('before');
      await until(() => heard.includes('before'), 'the first notification', 2_000);

      proxy.freeze();
      const frozenAt = performance.now();
      await until(() => states.at(-1) === false, 'the loss noticed', 2_000);
      // One heartbeat period plus its timeout, with room for a loaded machine.
      expect(performance.now() - frozenAt).toBeLessThan(1_000);

      await until(() => states.at(-1) === true, 'listening again', 3_000);
      await notify('after');
      await until(() => heard.includes('after'), 'a notification on the new connection', 2_000);
    } finally {
      await stop();
      await proxy.close();
    }
  });
});

describe.runIf(DRIVERS.includes('pg'))('one LISTEN connection for every channel of a database handle [pg]', () => {
  let database: TestPgDatabase;
  let admin: pg.Client;
  const APP = 'tr_listener_test';
  beforeAll(async () => {
    database = await createTestPgDatabase();
    admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
  });
  afterAll(async () => {
    await admin.end();
    await database.drop();
  });

  const notify = (channel: string, payload: string) => admin.query('SELECT pg_notify($1, $2)', [channel, payload]);
  /** The listener's sessions on the server, and the channels each of them LISTENs on. */
  const backends = async () =>
    (await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1', [APP])).rows.map(
      (row) => row.pid,
    );

  it('carries several channels and subscribers on one connection, listens again on all after a drop, and closes after the last', async () => {
    const url = new URL(database.url);
    url.searchParams.set('application_name', APP);
    const listener = createPgListener(url.toString());
    type Heard = { payloads: string[]; states: boolean[] };
    const subscriber = () => {
      const heard: Heard = { payloads: [], states: [] };
      return { heard, onMessage: (payload: string) => heard.payloads.push(payload), onState: (listening: boolean) => heard.states.push(listening) };
    };
    const a1 = subscriber();
    const a2 = subscriber();
    const b = subscriber();
    const stopA1 = await listener.subscribe('chan_a', a1.onMessage, a1.onState);
    const stopA2 = await listener.subscribe('chan_a', a2.onMessage, a2.onState);
    const stopB = await listener.subscribe('chan_b', b.onMessage, b.onState);
    try {
      for (const one of [a1, a2, b]) expect(one.heard.states).toEqual([false, true]);
      const [pid, ...more] = await backends();
      expect(pid).toBeDefined();
      expect(more).toEqual([]);

      await notify('chan_a', 'a-1');
      await notify('chan_b', 'b-1');
      await until(() => a1.heard.payloads.length === 1 && a2.heard.payloads.length === 1 && b.heard.payloads.length === 1, 'the first notifications');
      expect([a1.heard.payloads, a2.heard.payloads, b.heard.payloads]).toEqual([['a-1'], ['a-1'], ['b-1']]);

      // The server ends the session: every subscriber hears it is not listening, then listening again.
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      await until(() => [a1, a2, b].every((one) => one.heard.states.length === 4), 'every subscriber listening again', 10_000);
      for (const one of [a1, a2, b]) expect(one.heard.states).toEqual([false, true, false, true]);
      const [again, ...extra] = await until(async () => {
        const now = await backends();
        return now.length > 0 && now[0] !== pid ? now : undefined;
      }, 'the new session');
      expect(extra).toEqual([]);
      expect(again).not.toBe(pid);
      await notify('chan_a', 'a-2');
      await notify('chan_b', 'b-2');
      await until(() => a2.heard.payloads.length === 2 && b.heard.payloads.length === 2, 'notifications on the new connection');

      // One subscriber of chan_a leaves: the other still hears it. The last of chan_b leaves: UNLISTEN.
      await stopA1();
      await stopB();
      await notify('chan_b', 'b-3');
      await notify('chan_a', 'a-3');
      await until(() => a2.heard.payloads.includes('a-3'), 'chan_a after the others left');
      expect(a1.heard.payloads).toEqual(['a-1', 'a-2']);
      expect(b.heard.payloads).toEqual(['b-1', 'b-2']);
      expect(await backends()).toEqual([again]);
    } finally {
      await stopA1();
      await stopB();
      await stopA2();
    }
    // The last subscriber gone, the connection is closed.
    await until(async () => (await backends()).length === 0, 'the connection closed');
  });

  it('keeps serving the others when the callbacks of one subscriber throw, and still replaces a lost connection', async () => {
    const url = new URL(database.url);
    url.searchParams.set('application_name', APP);
    const listener = createPgListener(url.toString());
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    const states: boolean[] = [];
    const heard: string[] = [];
    const stopFaulty = await listener.subscribe(
      'chan_faulty',
      () => {
        throw new Error('a faulty onMessage');
      },
      () => {
        throw new Error('a faulty onState');
      },
    );
    const stopGood = await listener.subscribe('chan_faulty', (payload) => heard.push(payload), (listening) => states.push(listening));
    try {
      expect(states).toEqual([false, true]);
      await notify('chan_faulty', 'one');
      await until(() => heard.includes('one'), 'the good subscriber hearing past the faulty one');

      const [pid] = await backends();
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
      await until(() => states.length === 3, 'the good subscriber told of the loss', 10_000);
      await until(() => states.length === 4, 'the good subscriber listening again', 10_000);
      expect(states).toEqual([false, true, false, true]);
      await notify('chan_faulty', 'two');
      await until(() => heard.includes('two'), 'a notification on the new connection');
      await until(() => warnings.some((warning) => warning.message === 'a faulty onMessage'), 'the faulty onMessage reported');
      expect(warnings.some((warning) => warning.message === 'a faulty onState')).toBe(true);
    } finally {
      process.off('warning', onWarning);
      await stopFaulty();
      await stopGood();
    }
    await until(async () => (await backends()).length === 0, 'the connection closed');
  });
});
