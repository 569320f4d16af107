// Races of the shared LISTEN connection (store/pg-listener.ts): subscribers coming and going while
// a reconnect is LISTENing again. The window is held open deterministically: pg.Client's query is
// wrapped so that one chosen LISTEN is sent to the server at once but its answer is handed back
// only when the test releases it.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createPgListener } from '../../src/store/pg-listener.js';
import { DRIVERS } from '../support/drivers.js';
import { createTestPgDatabase, type TestPgDatabase } from '../support/postgres.js';
import { until } from '../support/until.js';

type Query = (...args: unknown[]) => unknown;
const clientPrototype = pg.Client.prototype as unknown as { query: Query };
const originalQuery = clientPrototype.query;

/** The LISTEN/UNLISTEN statements sent by any client, and the answers held back. */
const sent: string[] = [];
const held: Array<{ text: string; release(): void }> = [];
/** The next LISTEN/UNLISTEN whose text matches is held (once). */
let holdNext: RegExp | undefined;

function wrapQuery() {
  clientPrototype.query = function (this: pg.Client, ...args: unknown[]) {
    const result = originalQuery.apply(this, args);
    const text = typeof args[0] === 'string' ? args[0] : undefined;
    if (text === undefined || !/^(UN)?LISTEN /.test(text)) return result;
    sent.push(text);
    if (!holdNext?.test(text)) return result;
    holdNext = undefined;
    const answer = result as Promise<unknown>;
    // Held, its rejection (the connection ended meanwhile) must not count as unhandled.
    answer.catch(() => {});
    return new Promise((resolve, reject) => {
      held.push({ text, release: () => void answer.then(resolve, reject) });
    });
  };
}

describe.runIf(DRIVERS.includes('pg'))('the shared LISTEN connection under racing subscribers [pg]', () => {
  let database: TestPgDatabase;
  let admin: pg.Client;
  const APP = 'tr_listener_races';
  let url: string;

  beforeAll(async () => {
    database = await createTestPgDatabase();
    admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    const withName = new URL(database.url);
    withName.searchParams.set('application_name', APP);
    url = withName.toString();
    wrapQuery();
  });
  afterEach(() => {
    holdNext = undefined;
    for (const one of held.splice(0)) one.release();
    sent.splice(0);
  });
  afterAll(async () => {
    clientPrototype.query = originalQuery;
    await admin?.end();
    await database?.drop();
  });

  const backends = async () =>
    (await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1', [APP])).rows.map(
      (row) => row.pid,
    );
  const subscriber = () => {
    const heard = { payloads: [] as string[], states: [] as boolean[] };
    return { heard, onMessage: (payload: string) => heard.payloads.push(payload), onState: (listening: boolean) => heard.states.push(listening) };
  };
  /** Ends the listener's session on the server and waits until the reconnect's LISTEN is held. */
  const dropAndHoldRelisten = async (channel: string) => {
    const [pid] = await until(async () => {
      const now = await backends();
      return now.length === 1 ? now : undefined;
    }, 'the listening session');
    holdNext = new RegExp(`^LISTEN "${channel}"$`);
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    await until(() => held.length === 1, 'the reconnect LISTENing again', 5_000);
  };

  it('a subscriber arriving just after the last one left, while a reconnect LISTENs, gets a connection and is told true', async () => {
    const listener = createPgListener(url);
    const a = subscriber();
    const stopA = await listener.subscribe('race_first', a.onMessage, a.onState);
    expect(a.heard.states).toEqual([false, true]);

    // The session drops; the reconnect's LISTEN is on its way when the only subscriber leaves...
    await dropAndHoldRelisten('race_first');
    await stopA();
    // ...and another arrives before that reconnect attempt has ended.
    const b = subscriber();
    const subscribed = listener.subscribe('race_first', b.onMessage, b.onState);
    held.splice(0).forEach((one) => one.release());
    const stopB = await subscribed;
    try {
      // A first version let B join the abandoned attempt (`connecting` is still set), which ends
      // without a connection and without a retry: B is never told true and nothing reconnects.
      await until(() => b.heard.states.at(-1) === true, 'the new subscriber listening', 5_000);
      expect(b.heard.states).toEqual([false, true]);
      expect(await backends()).toHaveLength(1);
      await admin.query(`NOTIFY race_first, 'after'`);
      await until(() => b.heard.payloads.includes('after'), 'a notification for the new subscriber', 5_000);
    } finally {
      await stopB();
    }
    await until(async () => (await backends()).length === 0, 'the connection closed', 5_000);
  });

  /** Two subscribers on two channels; the session drops and `leave` unsubscribes while its channel's LISTEN is on the wire. */
  const leaveDuringRelisten = async (prefix: string) => {
    const listener = createPgListener(url);
    const stay = subscriber();
    const leave = subscriber();
    const stopStay = await listener.subscribe(`${prefix}_stay`, stay.onMessage, stay.onState);
    const stopLeave = await listener.subscribe(`${prefix}_leave`, leave.onMessage, leave.onState);
    expect(leave.heard.states).toEqual([false, true]);
    await dropAndHoldRelisten(`${prefix}_leave`);
    expect(leave.heard.states).toEqual([false, true, false]);
    // It leaves (its unsubscribe may wait for the statements before it), then the LISTEN succeeds.
    const leaving = stopLeave();
    held.splice(0).forEach((one) => one.release());
    await leaving;
    await until(() => stay.heard.states.at(-1) === true, 'the staying subscriber listening again', 5_000);
    // A later subscription's LISTEN is queued behind the held one: once it resolves, the catch-up
    // that held it is over.
    const probe = subscriber();
    const stopProbe = await listener.subscribe(`${prefix}_probe`, probe.onMessage, probe.onState);
    await stopProbe();
    return {
      leave,
      stop: async () => {
        await stopStay();
        await until(async () => (await backends()).length === 0, 'the connection closed', 5_000);
      },
    };
  };

  it('a subscriber leaving while a reconnect LISTENs its channel again is not told true after it left', async () => {
    const { leave, stop } = await leaveDuringRelisten('told');
    try {
      // A first version told it onState(true) in the catch-up, after its unsubscribe resolved.
      expect(leave.heard.states).toEqual([false, true, false]);
    } finally {
      await stop();
    }
  });

  it('a channel whose last subscriber left while a reconnect LISTENed it again is UNLISTENed', async () => {
    const { stop } = await leaveDuringRelisten('unlisten');
    try {
      // In a first version the unsubscribe saw the channel not yet in `listened` and did
      // nothing; the LISTEN then landed and the channel stays LISTENed with nobody subscribed.
      await until(() => sent.includes('UNLISTEN "unlisten_leave"'), 'unlisten_leave UNLISTENed', 2_000);
    } finally {
      await stop();
    }
  });

  it('the last subscriber leaving while a reconnect LISTENs closes that connection and leaves nothing behind', async () => {
    const listener = createPgListener(url);
    const a = subscriber();
    const stopA = await listener.subscribe('race_last', a.onMessage, a.onState);
    await dropAndHoldRelisten('race_last');
    await stopA();
    held.splice(0).forEach((one) => one.release());
    await until(async () => (await backends()).length === 0, 'the connection closed', 5_000);
    expect(a.heard.states).toEqual([false, true, false]);
  });
});
