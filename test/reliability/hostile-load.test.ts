// Hostile load on the production launcher (`npm start`'s arguments: the compiled service, its heap
// bounded to 192 MiB; here the run's compiled copy of src/) against a real PostgreSQL. Two attacks that took the whole service down before:
//   heavy audit reads  a chain of 1,000 events of the largest size stored, read at once by 3
//                      chain verifications, 24 exports whose clients never read and 8 readers
//                      paging the log; the process must stay up and under 256 MiB of resident
//                      memory, refusing what it cannot take with 503/429, while key verification
//                      goes on answering.
//   refused bodies     a token with no roles sending 256 KiB bodies at its rate limit: each is
//                      refused before it is read (403, or 429 past the limit), and key
//                      verification stays within twice its idle latency.
// The figures go to RELIABILITY.md through `make reliability`.
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { cpuSecondsOf, memoryOf, migrateUp, startService, type Server } from '../../bench/support/processes.js';
import { MAX_EVENT_BYTES, eventBytes, toRecord, type AuditEventInput } from '../../src/domain/audit.js';
import { openPg } from '../../src/store/pg-driver.js';
import { appendInTransactions } from '../support/audit-seed.js';
import { DRIVERS } from '../support/drivers.js';
import { createTestPgDatabase, type TestPgDatabase } from '../support/postgres.js';
import { recordFigures } from './figures.js';

const CHAIN_EVENTS = 1_000;
const SEED_BATCH = 50;
const VERIFIERS = 3;
const STALLED_EXPORTS = 24;
const LIST_READERS = 8;
const HEAVY_LOAD_MS = 8_000;
const RSS_LIMIT = 256 * 2 ** 20;
const BODY_BYTES = 256 * 1024;
const IDLE_SAMPLE_MS = 2_000;
const FLOOD_MS = 6_000;
// The default public budget of one caller: 600 a minute.
const NO_ROLE_RATE_PER_S = 10;
// Refusals timed for the CPU figure: /proc counts CPU in 10 ms ticks, so a few hundred are needed.
const CPU_SAMPLE_BODIES = 200;
const PEPPER = 'hostile-load-pepper-that-is-at-least-32-chars';

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};
const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;

/** How many 500-character metadata values, and how long a tail, fill an event of i's digit count. */
const shapes = new Map<number, { values: number; tail: number }>();

/** An event whose canonical form is as close to MAX_EVENT_BYTES as whole characters allow. */
function largestEvent(tenantId: string, i: number): AuditEventInput {
  const base: AuditEventInput = {
    action: 'document.archived',
    crud: 'u',
    tenant_id: tenantId,
    actor: { id: `user-${i % 7}`, name: 'Load Tester' },
    target: { id: `doc-${i}`, type: 'document' },
    metadata: { note: '' },
  };
  // Values of up to 500 characters (the schema's bound), in as many keys as it takes, then a tail.
  const shaped = (values: number, tail: number | null): AuditEventInput => {
    const metadata: Record<string, string> = {};
    for (let key = 0; key < values; key += 1) metadata[`k${key}`] = `${i}-`.padEnd(500, 'x');
    return { ...base, metadata: tail === null ? metadata : { ...metadata, tail: 'y'.repeat(tail) } };
  };
  // Only i's digits vary in size between events, so each digit count is measured once.
  const digits = String(i).length;
  let shape = shapes.get(digits);
  if (!shape) {
    const measure = (input: AuditEventInput) =>
      eventBytes(toRecord(input, { id: randomUUID(), chainSeq: 99_999, prevHash: 'f'.repeat(64), received: new Date(), publisher: { sub: 'seed', client: 'seed' } }));
    let values = 0;
    while (measure(shaped(values, null)) + 520 < MAX_EVENT_BYTES) values += 1;
    // The longest tail that fits, by bisection: [fits, fitsNot).
    let [fits, fitsNot] = [0, MAX_EVENT_BYTES];
    while (fitsNot - fits > 1) {
      const middle = Math.floor((fits + fitsNot) / 2);
      if (measure(shaped(values, middle)) <= MAX_EVENT_BYTES) fits = middle;
      else fitsNot = middle;
    }
    shape = { values, tail: fits };
    shapes.set(digits, shape);
  }
  return shaped(shape.values, shape.tail);
}

async function devToken(baseUrl: string, roles: string[], sub: string): Promise<string> {
  const response = await fetch(`${baseUrl}/dev/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ roles, sub }),
  });
  if (!response.ok) throw new Error(`dev token: ${response.status}`);
  return ((await response.json()) as { access_token: string }).access_token;
}

async function json<T>(baseUrl: string, method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: T }> {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? null : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
}

/** A request whose answer the client never reads: the socket is paused from the first byte. */
function stalledRequest(baseUrl: string, path: string, token: string): Promise<{ socket: net.Socket; status: () => number | null }> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname, () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${token}\r\n\r\n`);
      resolve({ socket, status: () => status });
    });
    let status: number | null = null;
    // Read just enough to learn the status line, then stop reading for good.
    socket.once('data', (chunk: Buffer) => {
      status = Number(/^HTTP\/1\.1 (\d{3})/.exec(chunk.toString('latin1'))?.[1] ?? 0);
      socket.pause();
    });
    socket.on('error', () => {});
    socket.once('error', reject);
  });
}

/** Hot key verification in one sequential loop until `until`; latencies in ms. */
async function verifyLoop(baseUrl: string, token: string, key: string, until: number, answers: number[], statuses: Map<number, number>) {
  const body = JSON.stringify({ key, product: 'compliance', scope: 'documents:read' });
  while (performance.now() < until) {
    const started = performance.now();
    const response = await fetch(`${baseUrl}/v1/internal/api-keys/verify`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body,
    });
    await response.arrayBuffer();
    answers.push(performance.now() - started);
    statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
  }
}

describe.runIf(DRIVERS.includes('pg'))('hostile load on the production launcher [pg]', () => {
  let database: TestPgDatabase;
  let service: Server;
  let admin: string;
  let registry: string;
  let tenantId: string;
  let hotKey: string;

  beforeAll(async () => {
    const compiledDir = inject('compiledDir');
    if (!compiledDir) throw new Error('no compiled copy of src/: run this file through vitest.config.ts, whose global setup makes it');
    database = await createTestPgDatabase();
    await migrateUp('dist', database.url, compiledDir);
    service = await startService({
      runtime: 'dist',
      compiledDir,
      vars: {
        DATABASE_URL: database.url,
        DEV_ISSUER_WITH_DATABASE: 'true',
        API_KEY_PEPPER: PEPPER,
        LOG_LEVEL: 'error',
        TRIAL_EXPIRY_INTERVAL_SECONDS: '0',
      },
    });
    admin = await devToken(service.baseUrl, ['platform_admin'], 'hostile-operator');
    registry = await devToken(service.baseUrl, ['registry_service'], 'hostile-product');
    const created = await json<{ tenant: { id: string } }>(service.baseUrl, 'POST', '/v1/tenants', admin, {
      slug: `hostile-${randomUUID().slice(0, 8)}`,
      name: 'Hostile load',
    });
    tenantId = created.body.tenant.id;
    expect((await json(service.baseUrl, 'PUT', `/v1/entitlements/${tenantId}/compliance`, admin, {})).status).toBe(200);
    const key = await json<{ key: string }>(service.baseUrl, 'POST', '/v1/api-keys', admin, {
      tenant_id: tenantId,
      name: 'hot key',
      scopes: ['documents:read'],
      products: ['compliance'],
    });
    hotKey = key.body.key;
    // The chain is written by the store's own append, as POST /v1/audit would, without the
    // HTTP round trips (1,000 posts of 32 KiB take a while on a loaded machine), a batch of them
    // per transaction.
    const db = openPg({ url: database.url, poolSize: 2 });
    try {
      await appendInTransactions(db, CHAIN_EVENTS, (i) => largestEvent(tenantId, i), {
        perTransaction: SEED_BATCH,
        publisher: { sub: 'seed', client: 'seed' },
        now: () => new Date(),
      });
    } finally {
      await db.close();
    }
  }, 240_000);

  afterAll(async () => {
    await service?.stop();
    await database?.drop();
  });

  it('stays up and under 256 MiB while verifications, stalled exports and readers hit a chain of the largest events', async () => {
    const base = service.baseUrl;
    const idle: number[] = [];
    await verifyLoop(base, registry, hotKey, performance.now() + IDLE_SAMPLE_MS, idle, new Map());
    const rssBefore = memoryOf(service.pid).rss;

    // Every reader its own caller, so the replica's budget (not one caller's) is what binds.
    const tokens = await Promise.all(
      Array.from({ length: STALLED_EXPORTS + VERIFIERS + LIST_READERS }, (_, i) => devToken(base, ['platform_admin'], `reader-${i}`)),
    );
    const until = performance.now() + HEAVY_LOAD_MS;
    let peakSampled = 0;
    const sampler = setInterval(() => (peakSampled = Math.max(peakSampled, memoryOf(service.pid).rss)), 100);

    const stalled = await Promise.all(
      tokens.slice(0, STALLED_EXPORTS).map((token) => stalledRequest(base, `/v1/audit/export?tenant_id=${tenantId}`, token)),
    );
    const verifyAnswers = new Map<string, number>();
    const verifications = tokens.slice(STALLED_EXPORTS, STALLED_EXPORTS + VERIFIERS).map(async (token) => {
      while (performance.now() < until) {
        const answer = await json<{ ok?: boolean; code?: string }>(base, 'GET', `/v1/audit/verify?tenant_id=${tenantId}`, token);
        const outcome = answer.status === 200 ? (answer.body.ok ? 'intact' : 'broken') : `${answer.status} ${answer.body.code}`;
        verifyAnswers.set(outcome, (verifyAnswers.get(outcome) ?? 0) + 1);
        if (answer.status !== 200) await sleep(200);
      }
    });
    let pagesRead = 0;
    const listStatuses = new Map<number, number>();
    const readers = tokens.slice(STALLED_EXPORTS + VERIFIERS).map(async (token) => {
      let cursor: string | null = null;
      while (performance.now() < until) {
        const query: string = `/v1/audit?tenant_id=${tenantId}&limit=200${cursor ? `&cursor=${cursor}` : ''}`;
        const page = await json<{ items: unknown[]; next_cursor: string | null }>(base, 'GET', query, token);
        listStatuses.set(page.status, (listStatuses.get(page.status) ?? 0) + 1);
        pagesRead += 1;
        cursor = page.status === 200 ? page.body.next_cursor : null;
      }
    });
    const hot: number[] = [];
    const hotStatuses = new Map<number, number>();
    await Promise.all([...verifications, ...readers, verifyLoop(base, registry, hotKey, until, hot, hotStatuses)]);
    clearInterval(sampler);

    const exportStatuses = new Map<number, number>();
    for (const request of stalled) exportStatuses.set(request.status() ?? 0, (exportStatuses.get(request.status() ?? 0) ?? 0) + 1);
    const { peak } = memoryOf(service.pid);
    const alive = service.running();
    for (const request of stalled) request.socket.destroy();
    // Once the stalled clients are gone, their slots are free again.
    await sleep(200);
    const after = await json<{ ok: boolean }>(base, 'GET', `/v1/audit/verify?tenant_id=${tenantId}`, admin);

    recordFigures(
      'heavy audit reads [pg]',
      `The production launcher (npm start, heap bound 192 MiB) with a chain of ${CHAIN_EVENTS} events of ${MAX_EVENT_BYTES} bytes each, ` +
        `for ${HEAVY_LOAD_MS / 1000} s: ${VERIFIERS} callers verifying the chain in a loop, ${STALLED_EXPORTS} exports whose clients never read, ` +
        `${LIST_READERS} readers paging the log (limit 200), and one loop of hot key verifications.`,
      [
        { label: 'peak resident memory (MiB; target under 256)', value: round(peak / 2 ** 20) },
        { label: 'resident memory before the load (MiB)', value: round(rssBefore / 2 ** 20) },
        { label: 'process still running afterwards', value: alive ? 'yes' : 'no' },
        { label: 'stalled exports admitted (200, held until cut)', value: exportStatuses.get(200) ?? 0 },
        { label: 'stalled exports refused 503 busy', value: exportStatuses.get(503) ?? 0 },
        { label: 'chain verifications: intact', value: verifyAnswers.get('intact') ?? 0 },
        { label: 'chain verifications refused 503 busy', value: verifyAnswers.get('503 busy') ?? 0 },
        { label: 'list pages read (all 200)', value: listStatuses.get(200) ?? 0 },
        { label: 'hot key verify p50 / p99 idle (ms)', value: `${round(percentile(idle, 50), 2)} / ${round(percentile(idle, 99), 2)}` },
        { label: 'hot key verify p50 / p99 under this load (ms)', value: `${round(percentile(hot, 50), 2)} / ${round(percentile(hot, 99), 2)}` },
        { label: 'hot key verifications answered (all 200)', value: hotStatuses.get(200) ?? 0 },
      ],
    );

    expect(alive).toBe(true);
    expect(peak).toBeLessThan(RSS_LIMIT);
    // The budget admitted some exports and refused the rest; none failed otherwise.
    expect((exportStatuses.get(200) ?? 0) + (exportStatuses.get(503) ?? 0)).toBe(STALLED_EXPORTS);
    expect(exportStatuses.get(503) ?? 0).toBeGreaterThan(0);
    expect(verifyAnswers.get('broken') ?? 0).toBe(0);
    expect([...verifyAnswers.keys()].every((outcome) => outcome === 'intact' || outcome === '503 busy')).toBe(true);
    expect([...listStatuses.keys()]).toEqual([200]);
    expect(pagesRead).toBeGreaterThan(LIST_READERS);
    expect([...hotStatuses.keys()]).toEqual([200]);
    // tenant.created, entitlement.granted and api_key.created come before the seeded events.
    expect(after).toEqual({ status: 200, body: { ok: true, checked: CHAIN_EVENTS + 3 } });
  }, 120_000);

  it('refuses 256 KiB bodies from a token with no roles before reading them, and key verification stays quick', async () => {
    const base = service.baseUrl;
    const noRoles = await devToken(base, [], `no-roles-${randomUUID()}`);
    // 25,000 unknown fields: the body that cost ~200 ms of CPU and a 2.4 MB answer before.
    const fields: Record<string, string> = { slug: 'abc', name: 'x' };
    // Each field adds `,"f<i>":"v"` to the text.
    for (let i = 0, length = 28; length < BODY_BYTES - 16; i += 1, length += String(i).length + 9) fields[`f${i}`] = 'v';
    const body = JSON.stringify(fields);
    expect(body.length).toBeLessThanOrEqual(BODY_BYTES);

    const refuse = async (token: string, payload: string) => {
      const response = await fetch(`${base}/v1/tenants`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: payload,
      });
      return { status: response.status, bytes: (await response.arrayBuffer()).byteLength };
    };
    /** Server CPU (ms) per refusal over `count` sequential ones, after a warm-up, by a fresh caller. */
    const cpuPerRefusal = async (payload: string, count: number) => {
      const token = await devToken(base, [], `no-roles-${randomUUID()}`);
      for (let i = 0; i < 20; i += 1) await refuse(token, payload);
      const before = cpuSecondsOf(service.pid);
      for (let i = 0; i < count; i += 1) expect((await refuse(token, payload)).status).toBe(403);
      const after = cpuSecondsOf(service.pid);
      return ((after.user + after.system - before.user - before.system) * 1000) / count;
    };
    const bigCpuMs = await cpuPerRefusal(body, CPU_SAMPLE_BODIES);
    const emptyCpuMs = await cpuPerRefusal('{}', CPU_SAMPLE_BODIES);

    const idle: number[] = [];
    await verifyLoop(base, registry, hotKey, performance.now() + IDLE_SAMPLE_MS, idle, new Map());
    const refusals = new Map<number, number>();
    let answerBytes = 0;
    const started = performance.now();
    const until = started + FLOOD_MS;
    const flood = (async () => {
      for (let sent = 0; performance.now() < until; sent += 1) {
        const due = started + (sent * 1000) / NO_ROLE_RATE_PER_S;
        if (due > performance.now()) await sleep(due - performance.now());
        const answer = await refuse(noRoles, body);
        answerBytes = Math.max(answerBytes, answer.bytes);
        refusals.set(answer.status, (refusals.get(answer.status) ?? 0) + 1);
      }
    })();
    const loaded: number[] = [];
    const statuses = new Map<number, number>();
    await Promise.all([flood, verifyLoop(base, registry, hotKey, until, loaded, statuses)]);
    const sent = [...refusals.values()].reduce((a, b) => a + b, 0);
    const idleP99 = percentile(idle, 99);
    const loadedP99 = percentile(loaded, 99);

    recordFigures(
      'refused bodies [pg]',
      `A token with no roles sent ${BODY_BYTES / 1024} KiB JSON bodies (25,000 unknown fields) to POST /v1/tenants at its rate limit ` +
        `(${NO_ROLE_RATE_PER_S} a second) for ${FLOOD_MS / 1000} s against the production launcher, while one loop verified the hot key.`,
      [
        { label: 'bodies sent', value: sent },
        { label: 'refused 403 forbidden (before the body was read)', value: refusals.get(403) ?? 0 },
        { label: 'refused 429 rate_limited', value: refusals.get(429) ?? 0 },
        { label: 'largest refusal answer (bytes)', value: answerBytes },
        { label: `server CPU per refused ${BODY_BYTES / 1024} KiB body (ms; ${CPU_SAMPLE_BODIES} in a row, after a warm-up)`, value: round(bigCpuMs, 2) },
        { label: 'server CPU per refused empty body, for comparison (ms)', value: round(emptyCpuMs, 2) },
        { label: 'hot key verify p50 / p99 idle (ms)', value: `${round(percentile(idle, 50), 2)} / ${round(idleP99, 2)}` },
        { label: 'hot key verify p50 / p99 during the flood (ms)', value: `${round(percentile(loaded, 50), 2)} / ${round(loadedP99, 2)}` },
        { label: 'p99 during the flood / idle p99 (target at most 2)', value: round(loadedP99 / idleP99, 2) },
      ],
    );

    expect([...refusals.keys()].every((status) => status === 403 || status === 429)).toBe(true);
    expect(refusals.get(403) ?? 0).toBeGreaterThan(0);
    expect(answerBytes).toBeLessThan(1_024);
    expect([...statuses.keys()]).toEqual([200]);
    // Timing on a shared 2-core machine is noisy; the bound is generous, the figure is recorded.
    expect(loadedP99).toBeLessThan(Math.max(4 * idleP99, idleP99 + 20));
  }, 120_000);
});
