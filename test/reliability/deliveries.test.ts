// Nothing lost, nothing doubled (issue 19, point 5): two replicas of the service on one
// PostgreSQL database deliver the change feed to a webhook endpoint and to a JetStream stream
// while the faults a deployment meets happen to them, one after the other, with changes written
// all along:
//   1. the replica that holds the delivery leases is killed (SIGKILL) right after a burst of
//      commits, before it could deliver them; it is started again later;
//   2. the webhook receiver goes away for a while (connections refused), then comes back;
//   3. NATS is killed and started again on the same store.
// Afterwards every event of the feed reached the endpoint and the stream exactly once by id (the
// endpoint may be sent one again, the at-least-once repeat a receiver drops by webhook-id), the
// endpoint got them in sequence order, and every delivery's signature verifies with the
// `standardwebhooks` package.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devToken, freePort, runMigrate, startService, stopAll, stopService, type ServiceProcess } from '../process/spawn.js';
import { DRIVERS } from '../support/drivers.js';
import { call } from '../support/http.js';
import { privateNats, readStream, uniqueStream, type PrivateNats } from '../support/nats.js';
import { createTestPgDatabase, type TestPgDatabase } from '../support/postgres.js';
import { recordFigures } from './figures.js';

// Short leases and retries, so that takeovers and redeliveries happen within the test.
const LEASE_SECONDS = 3;
// Retries a second or two apart, for longer than the receiver is away: nothing is given up.
const RETRY_SECONDS = Array.from({ length: 20 }, (_, i) => (i < 4 ? 1 : 2)).join(',');
const RECEIVER_AWAY_MS = 6_000;
/** How long everything may take to arrive once the writes stop (a wait, not a measurement). */
const SETTLE_MS = 120_000;

interface Replica {
  service: ServiceProcess;
  admin: string;
}

interface Delivery {
  id: string;
  seq: number;
  verified: boolean;
}

/** A webhook endpoint on a fixed port that can be taken away and brought back. */
class Receiver {
  readonly deliveries: Delivery[] = [];
  private server: http.Server | null = null;
  private verifier: Webhook | null = null;
  /** How long each answer waits: a slow receiver lets committed events pile up undelivered. */
  delayMs = 0;

  constructor(readonly port: number) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks/registry`;
  }

  useSecret(secret: string): void {
    this.verifier = new Webhook(secret);
  }

  async start(): Promise<void> {
    const server = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let verified = false;
        try {
          this.verifier?.verify(body, request.headers as Record<string, string>);
          verified = this.verifier !== null;
        } catch {
          verified = false;
        }
        const event = JSON.parse(body) as { id: string; seq: number; type: string };
        if (event.type !== 'webhook.test') this.deliveries.push({ id: String(request.headers['webhook-id']), seq: event.seq, verified });
        setTimeout(() => response.writeHead(204).end(), this.delayMs);
      });
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  distinctIds(): Set<string> {
    return new Set(this.deliveries.map((delivery) => delivery.id));
  }
}

describe.runIf(DRIVERS.includes('pg'))('change event delivery through faults [pg]', () => {
  let database: TestPgDatabase;
  let sql: pg.Client;
  let nats: PrivateNats;
  const { stream, prefix } = uniqueStream();
  let receiver: Receiver;
  const replicas: Record<'a' | 'b', Replica | null> = { a: null, b: null };
  let env: Record<string, string>;

  const startReplica = async (): Promise<Replica> => {
    const service = await startService(env);
    return { service, admin: await devToken(service.baseUrl, ['platform_admin']) };
  };

  /** The replica whose process holds the webhook dispatcher's lease (holder ids carry the pid). */
  const leaseHolder = async (): Promise<'a' | 'b' | null> => {
    const rows = await sql.query<{ holder: string | null }>(`SELECT holder FROM feed_consumers WHERE name = 'webhooks' AND lease_until > now()`);
    const pid = rows.rows[0]?.holder?.split(':')[1];
    for (const name of ['a', 'b'] as const) if (pid !== undefined && String(replicas[name]?.service.child.pid) === pid) return name;
    return null;
  };

  /** One change through the replica: a new tenant, then an edit of its plan (two events). */
  const change = async (replica: Replica) => {
    const created = await call<{ tenant: { id: string } }>(
      replica.service.baseUrl,
      'POST',
      '/v1/tenants',
      { body: { slug: `d-${randomBytes(5).toString('hex')}`, name: 'Delivery' } },
      replica.admin,
    );
    expect(created.status).toBe(201);
    const edited = await call(
      replica.service.baseUrl,
      'PATCH',
      `/v1/tenants/${created.body.tenant.id}`,
      { body: { plan: 'enterprise' }, headers: { 'if-match': '*' } },
      replica.admin,
    );
    expect(edited.status).toBe(200);
  };

  const burst = async (replica: Replica, changes: number) => {
    for (let i = 0; i < changes; i += 1) await change(replica);
  };

  const feed = async (): Promise<Array<{ id: string; seq: number }>> =>
    (await sql.query<{ id: string; seq: string }>('SELECT id, seq FROM change_events ORDER BY seq')).rows.map((row) => ({ id: row.id, seq: Number(row.seq) }));

  beforeAll(async () => {
    database = await createTestPgDatabase();
    const migrated = await runMigrate(['up'], { DATABASE_URL: database.url });
    expect(migrated.code, migrated.stderr).toBe(0);
    sql = new pg.Client({ connectionString: database.url });
    await sql.connect();
    nats = await privateNats();
    await nats.start();
    receiver = new Receiver(await freePort());
    await receiver.start();
    env = {
      APP_ENV: 'dev',
      DATABASE_URL: database.url,
      DEV_ISSUER_WITH_DATABASE: 'true',
      RATE_LIMIT_PER_MINUTE: '999999999',
      TRIAL_EXPIRY_INTERVAL_SECONDS: '0',
      NATS_URL: nats.url,
      NATS_STREAM: stream,
      NATS_SUBJECT_PREFIX: prefix,
      WEBHOOK_ALLOW_PRIVATE: '127.0.0.1',
      WEBHOOK_RETRY_SECONDS: RETRY_SECONDS,
      FEED_LEASE_SECONDS: String(LEASE_SECONDS),
    };
    [replicas.a, replicas.b] = await Promise.all([startReplica(), startReplica()]);
  });

  afterAll(async () => {
    await stopAll();
    await receiver?.stop();
    await nats?.remove();
    await sql?.end();
    await database?.drop();
  });

  it('delivers every event to the endpoint and the stream exactly once by id, in order, through a killed replica, a missing receiver and a NATS restart', async () => {
    const a = replicas.a!;
    const registered = await call<{ id: string; secret: string }>(a.service.baseUrl, 'POST', '/v1/webhooks', { body: { url: receiver.url } }, a.admin);
    expect(registered.status, registered.text).toBe(201);
    receiver.useSecret(registered.body.secret);

    // Both jobs run somewhere before the first fault.
    await burst(a, 5);
    let holder: 'a' | 'b' | null = null;
    for (const deadline = Date.now() + 60_000; holder === null && Date.now() < deadline; ) {
      holder = await leaseHolder();
      if (holder === null) await sleep(100);
    }
    expect(holder, 'a replica holds the webhook lease').not.toBeNull();
    const survivor = holder === 'a' ? 'b' : 'a';

    // 1. A burst through the holder, then it dies at once: what it committed but had not yet
    //    delivered is the survivor's to deliver once the lease lapses. The receiver answers slowly
    //    meanwhile, so the burst is still mostly undelivered when the holder dies.
    receiver.delayMs = 250;
    await burst(replicas[holder!]!, 10);
    const killedAt = performance.now();
    await stopService(replicas[holder!]!.service, 'SIGKILL');
    const undeliveredAtKill = (await feed()).filter((event) => !receiver.distinctIds().has(event.id)).length;
    expect(undeliveredAtKill, 'events committed but not yet delivered when the holder died').toBeGreaterThan(5);
    receiver.delayMs = 0;
    replicas[holder!] = null;
    await burst(replicas[survivor]!, 10);

    // 2. The receiver goes away while changes go on, and comes back.
    await receiver.stop();
    await burst(replicas[survivor]!, 10);
    await sleep(RECEIVER_AWAY_MS);
    await receiver.start();

    // The killed replica comes back (a new process: a new holder).
    replicas[holder!] = await startReplica();
    await burst(replicas[holder!]!, 5);

    // 3. NATS dies mid-burst and comes back on the same store.
    const writing = burst(replicas[survivor]!, 10);
    await sleep(200);
    await nats.stop('SIGKILL');
    await writing;
    await burst(replicas[holder!]!, 5);
    await nats.start();
    await burst(replicas[survivor]!, 5);

    // Everything arrives.
    const events = await feed();
    expect(events.map((event) => event.seq)).toEqual(events.map((_, i) => i + 1));
    const ids = new Set(events.map((event) => event.id));
    let streamed = await readStream(nats.url, stream).catch(() => []);
    for (const deadline = performance.now() + SETTLE_MS; performance.now() < deadline; ) {
      if ([...ids].every((id) => receiver.distinctIds().has(id)) && streamed.length >= ids.size) break;
      await sleep(250);
      streamed = await readStream(nats.url, stream).catch(() => []);
    }
    const settledAfterMs = performance.now() - killedAt;

    // The endpoint: every event, only events of the feed, each signature good.
    expect([...receiver.distinctIds()].sort()).toEqual([...ids].sort());
    expect(receiver.deliveries.every((delivery) => delivery.verified)).toBe(true);
    // In order: leaving out repeats of what had arrived, the seqs only go up.
    const firsts: number[] = [];
    const seen = new Set<string>();
    for (const delivery of receiver.deliveries) {
      if (seen.has(delivery.id)) continue;
      seen.add(delivery.id);
      firsts.push(delivery.seq);
    }
    expect(firsts).toEqual(events.map((event) => event.seq));
    // A repeat is only ever the event that was in flight when something failed.
    const repeats = receiver.deliveries.length - seen.size;

    // The stream: one message per event, in seq order, with the event id as Nats-Msg-Id.
    expect(streamed.map((message) => message.msgId)).toEqual(events.map((event) => event.id));
    expect(streamed.map((message) => message.event.seq)).toEqual(events.map((event) => event.seq));

    recordFigures(
      'change event delivery through faults [pg]',
      'Two replicas delivered the change feed to a webhook and to JetStream while the lease holder was killed right after a burst, the receiver refused connections for 6 s, and NATS was killed and restarted; changes were written throughout.',
      [
        { label: 'change events written', value: events.length },
        { label: 'events committed but not delivered when the lease holder was killed', value: undeliveredAtKill },
        { label: 'events the endpoint received (distinct ids)', value: seen.size },
        { label: 'repeated deliveries (dropped by webhook-id)', value: repeats },
        { label: 'deliveries out of sequence order', value: 0 },
        { label: 'signatures that failed standardwebhooks verification', value: receiver.deliveries.filter((d) => !d.verified).length },
        { label: 'messages in the stream (one per event id)', value: streamed.length },
        { label: 'seconds from the kill until everything had arrived', value: Math.round(settledAfterMs / 100) / 10 },
      ],
    );
  });
});
