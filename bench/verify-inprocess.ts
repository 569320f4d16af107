// Micro-benchmark of @tenant-registry/verify's hot path: verify() of a key whose answer is held,
// on one core, beside the two costs it cannot go below, measured in the same run: a bare Map
// lookup and a SHA-256 of the key (the cache knows keys only by their hash). Target: at most
// 2 µs per verify.
//
// The registry here is a stand-in on loopback (a verify answer and an event stream that sends
// heartbeats): it answers the first sight of the key and keeps the stream live, and is never
// asked during the measured loops (the run checks that and says so). The real registry's side
// is bench/verify.ts.
//
//   npm run bench:verify-inprocess [-- --iterations 1000000 --rounds 7]
import { createHash, hash as sha256 } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { createKeyVerifier } from '@tenant-registry/verify';
import { generateApiKey } from '../src/domain/api-key.js';
import { machine } from './support/run-info.js';
import { fixed, table } from './support/stats.js';

const TARGET_US = 2;

const { values } = parseArgs({
  options: { iterations: { type: 'string', default: '1000000' }, rounds: { type: 'string', default: '7' } },
});
const ITERATIONS = Number(values.iterations);
const ROUNDS = Number(values.rounds);

const key = generateApiKey();
const keyId = '00000000-0000-4000-8000-000000000001';
const tenantId = '00000000-0000-4000-8000-000000000002';

function startStandIn(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((request, response) => {
    if (request.url?.startsWith('/v1/events/stream')) {
      response.writeHead(200, { 'content-type': 'text/event-stream' });
      response.write('retry: 2000\n\n');
      const timer = setInterval(() => response.write(': heartbeat\n\n'), 1_000);
      response.on('close', () => clearInterval(timer));
      return;
    }
    request.resume();
    request.on('end', () => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({
          valid: true,
          code: 'VALID',
          key_id: keyId,
          tenant_id: tenantId,
          slug: 'bench',
          tenant_status: 'active',
          plan: null,
          scopes: ['documents:read'],
          products: [],
          expires_at: null,
          valid_until: null,
        }),
      );
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        close: () => {
          server.closeAllConnections();
          return new Promise((done) => server.close(() => done()));
        },
      }),
    ),
  );
}

/** ns per operation of each round of `run` (which does ITERATIONS operations). */
async function measure(run: () => unknown): Promise<number[]> {
  const samples: number[] = [];
  await run(); // warm-up: let the optimising compiler see the loop first
  for (let round = 0; round < ROUNDS; round += 1) {
    const start = process.hrtime.bigint();
    await run();
    samples.push(Number(process.hrtime.bigint() - start) / ITERATIONS);
  }
  return samples.sort((a, b) => a - b);
}

const standIn = await startStandIn();
const verifier = createKeyVerifier({ registryUrl: standIn.url, token: 'bench', heartbeatMs: 1_000 });
await verifier.whenLive();
if (!(await verifier.verify(key)).valid) throw new Error('the first sight of the key did not answer VALID');
const callsBefore = verifier.stats().registryCalls;

// The bare Map: as many entries as a busy product holds, keyed like the cache (64 hex characters).
const map = new Map<string, object>();
for (let i = 0; i < 10_000; i += 1) map.set(createHash('sha256').update(String(i)).digest('hex'), { i });
const present = createHash('sha256').update('5000').digest('hex');
let sink = 0;

const results = {
  'Map.get (10,000 entries)': await measure(() => {
    for (let i = 0; i < ITERATIONS; i += 1) if (map.get(present) !== undefined) sink += 1;
  }),
  'SHA-256 of the key (hex)': await measure(() => {
    for (let i = 0; i < ITERATIONS; i += 1) sink += sha256('sha256', key, 'hex').length;
  }),
  'verify(key), awaited': await measure(async () => {
    for (let i = 0; i < ITERATIONS; i += 1) if ((await verifier.verify(key)).valid) sink += 1;
  }),
  'verify(key, { scope }), awaited': await measure(async () => {
    for (let i = 0; i < ITERATIONS; i += 1) if ((await verifier.verify(key, { scope: 'documents:read' })).valid) sink += 1;
  }),
  // What the Fastify plugin and the Connect middleware call first: no promise when the answer is held.
  'verifyNow(key), no promise': await measure(() => {
    for (let i = 0; i < ITERATIONS; i += 1) if (verifier.verifyNow(key)?.valid) sink += 1;
  }),
};

const callsDuring = verifier.stats().registryCalls - callsBefore;
await verifier.close();
await standIn.close();

const median = (samples: number[]) => samples[Math.floor(samples.length / 2)]!;
const rows = Object.entries(results).map(([name, samples]) => [
  name,
  fixed(median(samples) / 1_000, 3),
  fixed(samples[0]! / 1_000, 3),
  fixed(samples.at(-1)! / 1_000, 3),
]);
const hot = median(results['verify(key), awaited']) / 1_000;
const info = machine();
process.stdout.write(
  `in-process verify, ${ITERATIONS.toLocaleString('en-US')} calls x ${ROUNDS} rounds, one core (${info.cpu_model}, ${info.cpu_count} CPUs, Node ${process.version})\n\n` +
    table(['operation', 'µs/op (median)', 'min', 'max'], rows) +
    `\n\nhot verify: ${fixed(hot, 3)} µs per call, target ≤ ${TARGET_US} µs: ${hot <= TARGET_US ? 'met' : 'MISSED'}` +
    `; registry calls during the loops: ${callsDuring} (sink ${sink > 0 ? 'used' : 'empty'})\n`,
);
