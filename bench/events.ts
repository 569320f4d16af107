// Benchmark of change event delivery (issue 19): how long after a change commits each consumer
// has it, and how fast the JetStream relay drains a backlog compared with how fast PostgreSQL
// takes the events in. The compiled service runs as a child process on a scratch PostgreSQL
// database, with a webhook registered to a receiver in this process, an SSE stream open from this
// process, and the relay publishing to the machine's NATS (a stream of this run's own).
//
// 1. Latency: tenants are created at a steady rate (--rate per second, --duration seconds). A
//    write's answer comes after its commit, so the time from the answer to an event's arrival is
//    the commit-to-delivery time (short by the answer's own trip over loopback). Each channel is
//    summarized as p50/p99 and must deliver every event.
// 2. Throughput: with the service stopped, --backlog events are inserted straight into the feed
//    table the way the service writes them (one event per transaction, four connections): that is
//    PostgreSQL's insert rate, the baseline. A service whose relay starts on a new stream then
//    publishes the whole feed; its rate, from its first to its last publish, is compared with it.
//
//   make bench-events [BENCH_ARGS="--rate 100"], or npm run bench:events [-- --rate 100]
import { randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { connect, type NatsConnection } from 'nats';
import pg from 'pg';
import { exitOnHelp, integerOption } from './support/options.js';
import { buildDist, migrateUp, PROJECT_DIR, startService, type Server } from './support/processes.js';
import { commandLine, machine, sourceState, Teardown } from './support/run-info.js';
import { createScratchDatabase } from './support/scratch-database.js';
import { fixed, int, round, summarize, table, type Summary } from './support/stats.js';
import { devToken, expectStatus } from './support/verify-seed.js';

const USAGE = `usage: npm run bench:events -- [options]
  --rate N        tenant creations per second during the latency run (default 50)
  --duration S    seconds of steady writes (default 20)
  --backlog N     events in the relay throughput run (default 20000)
  --results DIR   where events-pg.json goes (default bench/results)
BENCH_PG_URL is the admin URL of the PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres);
BENCH_NATS_URL the NATS server with JetStream (default nats://127.0.0.1:4222).`;

const DEFAULT_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';
/** How long after the last write every channel may take to deliver the rest. */
const SETTLE_MS = 30_000;

interface Options {
  rate: number;
  durationS: number;
  backlog: number;
  resultsDir: string;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      rate: { type: 'string', default: '50' },
      duration: { type: 'string', default: '20' },
      backlog: { type: 'string', default: '20000' },
      results: { type: 'string', default: path.join(PROJECT_DIR, 'bench', 'results') },
      help: { type: 'boolean', default: false },
    },
  });
  exitOnHelp(values.help, USAGE);
  const count = integerOption(USAGE);
  return {
    rate: count('rate', values.rate, 1),
    durationS: count('duration', values.duration, 1),
    backlog: count('backlog', values.backlog, 100),
    resultsDir: path.resolve(values.results),
  };
}

type Channel = 'sse' | 'webhook' | 'jetstream';
const CHANNELS: Channel[] = ['sse', 'webhook', 'jetstream'];

/** When each channel saw the event about each tenant (by the tenant id, the event's target). */
class Arrivals {
  readonly at: Record<Channel, Map<string, number>> = { sse: new Map(), webhook: new Map(), jetstream: new Map() };

  seen(channel: Channel, body: string): void {
    const event = JSON.parse(body) as { type: string; data: { target: { id: string } } };
    if (event.type !== 'tenant.created') return;
    // The first arrival counts; a redelivery is not a faster one.
    if (!this.at[channel].has(event.data.target.id)) this.at[channel].set(event.data.target.id, performance.now());
  }
}

/** A webhook receiver on loopback that answers 204 to every delivery. */
async function startReceiver(arrivals: Arrivals): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      arrivals.seen('webhook', Buffer.concat(chunks).toString('utf8'));
      response.writeHead(204).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address() as { port: number };
  return { url: `http://127.0.0.1:${address.port}/hook`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** Reads the SSE stream until aborted, handing each event's data to `arrivals`. */
async function followStream(baseUrl: string, token: string, arrivals: Arrivals, signal: AbortSignal): Promise<void> {
  const response = await fetch(`${baseUrl}/v1/events/stream?types=tenant.created`, { headers: { authorization: `Bearer ${token}` }, signal });
  if (response.status !== 200 || !response.body) throw new Error(`the event stream answered ${response.status}`);
  let pending = '';
  const decoder = new TextDecoder();
  try {
    for await (const chunk of response.body) {
      pending += decoder.decode(chunk as Uint8Array, { stream: true });
      let end: number;
      while ((end = pending.indexOf('\n\n')) >= 0) {
        const message = pending.slice(0, end);
        pending = pending.slice(end + 2);
        const data = message.split('\n').find((line) => line.startsWith('data: '));
        if (data) arrivals.seen('sse', data.slice('data: '.length));
      }
    }
  } catch (error) {
    if (!signal.aborted) throw error;
  }
}

interface LatencyRun {
  written: number;
  writeSummary: Summary;
  channels: Record<Channel, { delivered: number; summary: Summary }>;
}

async function latencyRun(service: Server, options: Options, natsUrl: string, subjectPrefix: string, teardown: Teardown): Promise<LatencyRun> {
  const admin = await devToken(service.baseUrl, ['platform_admin']);
  const arrivals = new Arrivals();
  const receiver = await startReceiver(arrivals);
  teardown.add(() => receiver.close());
  await expectStatus(service.baseUrl, admin, 'POST', '/v1/webhooks', { url: receiver.url, types: ['tenant.created'] }, 201);

  const nats: NatsConnection = await connect({ servers: natsUrl });
  teardown.add(() => nats.close());
  const subscription = nats.subscribe(`${subjectPrefix}.tenant.created`);
  void (async () => {
    for await (const message of subscription) arrivals.seen('jetstream', message.string());
  })();

  const streaming = new AbortController();
  const stream = followStream(service.baseUrl, admin, arrivals, streaming.signal);
  // The stream starts with the next event: give it a moment to be listening before the first write.
  await sleep(500);

  const answered = new Map<string, number>();
  const writeTimes: number[] = [];
  const intervalMs = 1000 / options.rate;
  const total = options.rate * options.durationS;
  const started = performance.now();
  const writes: Array<Promise<void>> = [];
  for (let i = 0; i < total; i += 1) {
    // Paced against the start, so a slow answer does not slow the load down.
    const due = started + i * intervalMs;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    writes.push(
      (async () => {
        const sent = performance.now();
        const text = await expectStatus(service.baseUrl, admin, 'POST', '/v1/tenants', { slug: `b-${randomBytes(6).toString('hex')}`, name: 'Bench' }, 201);
        const now = performance.now();
        writeTimes.push(now - sent);
        answered.set((JSON.parse(text) as { tenant: { id: string } }).tenant.id, now);
      })(),
    );
  }
  await Promise.all(writes);

  const deadline = performance.now() + SETTLE_MS;
  while (performance.now() < deadline && CHANNELS.some((channel) => arrivals.at[channel].size < total)) await sleep(100);
  streaming.abort();
  await stream;
  subscription.unsubscribe();

  const channels = {} as LatencyRun['channels'];
  for (const channel of CHANNELS) {
    const delays: number[] = [];
    for (const [tenant, at] of arrivals.at[channel]) {
      const commit = answered.get(tenant);
      // An arrival before its answer came back: the commit was earlier still; count it as 0.
      if (commit !== undefined) delays.push(Math.max(0, at - commit));
    }
    channels[channel] = { delivered: delays.length, summary: summarize(delays) };
  }
  return { written: total, writeSummary: summarize(writeTimes), channels };
}

/**
 * One event per transaction over four connections, into `table`: change_events numbers each at
 * commit as the service's are; a copy of it without the trigger shows what the numbering costs.
 */
async function insertRate(url: string, count: number, table = 'change_events'): Promise<{ seconds: number; perSecond: number }> {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  const tenant = randomUUID();
  const data = JSON.stringify({ actor: { id: 'bench', name: null }, target: { id: tenant, type: 'tenant', name: 'bench' }, product: null, fields: {} });
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < count) {
      next += 1;
      await pool.query(`INSERT INTO ${table} (id, type, tenant_id, occurred_at, data) VALUES ($1, 'tenant.updated', $2, now(), $3::jsonb)`, [
        randomUUID(),
        tenant,
        data,
      ]);
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  const seconds = (performance.now() - started) / 1000;
  await pool.end();
  return { seconds, perSecond: count / seconds };
}

/** Publishes of a relay that starts on a new stream with the whole feed behind it. */
async function relayRate(
  url: string,
  vars: Record<string, string>,
  head: number,
  teardown: Teardown,
): Promise<{ seconds: number; perSecond: number; published: number }> {
  const stream = `BENCH_DRAIN_${randomBytes(4).toString('hex').toUpperCase()}`;
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  teardown.add(() => pool.end());
  const service = await startService({ runtime: 'dist', vars: { ...vars, NATS_STREAM: stream, NATS_SUBJECT_PREFIX: `bench.drain.${stream.toLowerCase()}` } });
  teardown.add(() => service.stop());
  const progress = async () =>
    (await pool.query<{ last_seq: string }>('SELECT last_seq FROM feed_consumers WHERE name = $1', [`nats:${stream}`])).rows[0]?.last_seq;
  // From the first publish the relay acknowledges to the last.
  let first: { at: number; seq: number } | undefined;
  const deadline = performance.now() + 600_000;
  for (;;) {
    const seq = Number((await progress()) ?? 0);
    if (first === undefined && seq > 0) first = { at: performance.now(), seq };
    if (seq >= head) break;
    if (performance.now() > deadline) throw new Error(`the relay published up to ${seq} of ${head} in ten minutes`);
    await sleep(20);
  }
  const seconds = (performance.now() - first!.at) / 1000;
  await service.stop();
  const nats = await connect({ servers: vars.NATS_URL! });
  const manager = await nats.jetstreamManager();
  await manager.streams.delete(stream).catch(() => {});
  await nats.close();
  return { seconds, perSecond: (head - first!.seq) / seconds, published: head - first!.seq };
}

async function main(): Promise<void> {
  const options = parseOptions();
  const teardown = new Teardown();
  const stop = () => void teardown.run().finally(() => process.exit(130));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const natsUrl = process.env.BENCH_NATS_URL ?? DEFAULT_NATS_URL;
    console.log('building dist/ ...');
    buildDist();
    const scratch = await createScratchDatabase(process.env.BENCH_PG_URL ?? DEFAULT_ADMIN_URL, 'tr_bench_events');
    teardown.add(() => scratch.drop());
    await migrateUp('dist', scratch.url);
    const run = randomBytes(4).toString('hex');
    const stream = `BENCH_EVENTS_${run.toUpperCase()}`;
    const subjectPrefix = `bench.events.${run}`;
    const vars = {
      DATABASE_URL: scratch.url,
      DEV_ISSUER_WITH_DATABASE: 'true',
      LOG_LEVEL: 'warn',
      RATE_LIMIT_PER_MINUTE: '999999999',
      RATE_LIMIT_SERVICE_PER_MINUTE: '999999999',
      WEBHOOK_ALLOW_PRIVATE: '127.0.0.1',
      NATS_URL: natsUrl,
    };
    const service = await startService({ runtime: 'dist', vars: { ...vars, NATS_STREAM: stream, NATS_SUBJECT_PREFIX: subjectPrefix } });
    teardown.add(() => service.stop());
    teardown.add(async () => {
      const nats = await connect({ servers: natsUrl });
      await (await nats.jetstreamManager()).streams.delete(stream).catch(() => {});
      await nats.close();
    });

    console.log(`\nLatency: ${options.rate} tenant creations a second for ${options.durationS} s`);
    const latency = await latencyRun(service, options, natsUrl, subjectPrefix, teardown);
    await service.stop();
    const rows = CHANNELS.map((channel) => {
      const { delivered, summary } = latency.channels[channel];
      return [channel, `${int(delivered)} / ${int(latency.written)}`, fixed(summary.p50), fixed(summary.p99), fixed(summary.max)];
    });
    rows.unshift(['(the write itself)', int(latency.written), fixed(latency.writeSummary.p50), fixed(latency.writeSummary.p99), fixed(latency.writeSummary.max)]);
    console.log(table(['commit to delivery', 'delivered', 'p50 ms', 'p99 ms', 'max ms'], rows));

    console.log(`\nThroughput: ${int(options.backlog)} events`);
    const plainTable = new pg.Client({ connectionString: scratch.url });
    await plainTable.connect();
    await plainTable.query('CREATE TABLE bench_unnumbered_events (LIKE change_events INCLUDING ALL)');
    await plainTable.end();
    const unnumbered = await insertRate(scratch.url, options.backlog, 'bench_unnumbered_events');
    const inserted = await insertRate(scratch.url, options.backlog);
    console.log(`  PostgreSQL insert rate, one event per transaction over 4 connections:`);
    console.log(`    numbered at commit (the feed):  ${int(inserted.perSecond)} events/s`);
    console.log(`    the same table, no numbering:   ${int(unnumbered.perSecond)} events/s (numbering keeps ${fixed(inserted.perSecond / unnumbered.perSecond)}x)`);
    const heads = new pg.Client({ connectionString: scratch.url });
    await heads.connect();
    const head = Number((await heads.query<{ last_seq: string }>(`SELECT last_seq FROM change_event_heads WHERE scope = 'global'`)).rows[0]!.last_seq);
    await heads.end();
    const relay = await relayRate(scratch.url, vars, head, teardown);
    const ratio = relay.perSecond / inserted.perSecond;
    console.log(`  relay to a new stream: ${int(relay.published)} events in ${fixed(relay.seconds)} s, ${int(relay.perSecond)} events/s = ${fixed(ratio)}x the insert rate`);

    const undelivered = CHANNELS.filter((channel) => latency.channels[channel].delivered < latency.written);
    const result = {
      bench: 'events',
      command: commandLine('bench-events', 'bench:events', 'bench/events.ts'),
      date: new Date().toISOString(),
      machine: machine(),
      source: sourceState(),
      postgres: scratch.serverVersion,
      options,
      latency: {
        written: latency.written,
        write_ms: { p50: round(latency.writeSummary.p50), p99: round(latency.writeSummary.p99) },
        ...Object.fromEntries(
          CHANNELS.map((channel) => {
            const { delivered, summary } = latency.channels[channel];
            return [channel, { delivered, p50_ms: round(summary.p50), p99_ms: round(summary.p99), max_ms: round(summary.max) }];
          }),
        ),
      },
      throughput: {
        insert_events_per_s: round(inserted.perSecond, 1),
        insert_unnumbered_events_per_s: round(unnumbered.perSecond, 1),
        relay_events_per_s: round(relay.perSecond, 1),
        relay_to_insert_ratio: round(ratio),
      },
    };
    await mkdir(options.resultsDir, { recursive: true });
    await writeFile(path.join(options.resultsDir, 'events-pg.json'), `${JSON.stringify(result, null, 2)}\n`);
    if (undelivered.length > 0) {
      console.error(`\nNOT EVERY EVENT ARRIVED: ${undelivered.join(', ')}`);
      process.exitCode = 1;
    }
  } finally {
    await teardown.run();
  }
}

await main();
