// Traces of the real process: the service started as the start/dev scripts start it (the tracing
// preload before src/main.ts), a local OTLP/HTTP receiver on loopback standing in for the
// collector. One request must arrive as one trace: the HTTP server span, Fastify's request and
// handler spans under it, and with a real PostgreSQL the pg spans of its queries; the log lines
// of the request carry its trace_id; buffered spans are flushed at shutdown. (tracing-off.test.ts:
// without an endpoint no SDK starts and nothing is sent.)
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { REQUEST_ID_HEADER } from '../../src/http/request-id.js';
import { SERVICE_VERSION } from '../../src/version.js';
import { PROCESS_TEST_TIMEOUT_MS, PROCESS_WAIT_MS, devToken, runMigrate } from '../process/spawn.js';
import { DRIVERS } from '../support/drivers.js';
import { randomSlug } from '../support/factories.js';
import { client } from '../support/http.js';
import { createTestPgDatabase, type TestPgDatabase } from '../support/postgres.js';
import { FASTIFY_SCOPE, HTTP_SCOPE, PG_SCOPE, SERVER, descendantsOf, jsonExport, killAll, serverSpanOf, startReceiver, startTraced, stop, type Receiver, type Service } from './traced-service.js';

afterEach(killAll);
afterAll(killAll);

describe('tracing on, embedded database (OTLP/JSON)', { timeout: PROCESS_TEST_TIMEOUT_MS }, () => {
  let receiver: Receiver;
  let service: Service;
  let readRequestId: string;
  let createRequestId: string;

  beforeAll(async () => {
    receiver = await startReceiver();
    service = await startTraced(jsonExport(receiver));
    const api = client(service.baseUrl, await devToken(service.baseUrl));
    const read = await api.get('/v1/tenants/by-slug/acme');
    expect(read.status).toBe(200);
    readRequestId = read.headers.get(REQUEST_ID_HEADER)!;
    const slug = randomSlug('otel');
    const created = await api.post('/v1/tenants', { body: { slug, name: `Tenant ${slug}` } });
    expect(created.status, created.text).toBe(201);
    createRequestId = created.headers.get(REQUEST_ID_HEADER)!;
  });
  afterAll(async () => {
    await killAll();
    await receiver.close();
  });

  it('exports to <endpoint>/v1/traces with service.name tenant-registry and the version', async () => {
    await receiver.waitForSpan(serverSpanOf('GET', '/v1/tenants/by-slug/:slug'));
    expect(receiver.exports.map((e) => `${e.path} ${e.contentType}`)).toContain('/v1/traces application/json');
    for (const span of receiver.spans()) {
      expect(span.resource['service.name']).toBe('tenant-registry');
      expect(span.resource['service.version']).toBe(SERVICE_VERSION);
    }
  });

  it('one request is one trace: HTTP server span, Fastify request and handler spans under it', async () => {
    const server = await receiver.waitForSpan(serverSpanOf('GET', '/v1/tenants/by-slug/:slug'));
    expect(server.parentSpanId).toBe('');
    expect(server.attributes['http.response.status_code'] ?? server.attributes['http.status_code']).toBe(200);

    const below = descendantsOf(server, receiver.spans());
    const request = below.find((span) => span.scope === FASTIFY_SCOPE && span.name === 'request');
    expect(request, JSON.stringify(below.map((s) => s.name))).toBeDefined();
    expect(request!.parentSpanId).toBe(server.spanId);
    expect(request!.attributes['http.route']).toBe('/v1/tenants/by-slug/:slug');
    const handler = below.find((span) => span.scope === FASTIFY_SCOPE && span.name.startsWith('handler'));
    expect(handler, JSON.stringify(below.map((s) => s.name))).toBeDefined();
    expect(handler!.parentSpanId).toBe(request!.spanId);
  });

  it('the write gets its own trace; the embedded database (PGlite) makes no pg spans', async () => {
    const read = await receiver.waitForSpan(serverSpanOf('GET', '/v1/tenants/by-slug/:slug'));
    const write = await receiver.waitForSpan(serverSpanOf('POST', '/v1/tenants'));
    expect(write.traceId).not.toBe(read.traceId);
    expect(descendantsOf(write, receiver.spans()).some((span) => span.scope === FASTIFY_SCOPE)).toBe(true);
    expect(receiver.spans().filter((span) => span.scope === PG_SCOPE)).toEqual([]);
  });

  it('health probes are not traced', async () => {
    await receiver.waitForSpan(serverSpanOf('POST', '/v1/tenants'));
    // startTraced polled /healthz until it answered.
    const probes = receiver.spans().filter((span) => /healthz|readyz/.test(`${span.name} ${JSON.stringify(span.attributes)}`));
    expect(probes).toEqual([]);
  });

  // Needs the integration in src/service.ts: createLogger(config, { mixin: traceLogMixin() }).
  it('the log line of each request carries the trace_id of its spans', async () => {
    const read = await receiver.waitForSpan(serverSpanOf('GET', '/v1/tenants/by-slug/:slug'));
    const write = await receiver.waitForSpan(serverSpanOf('POST', '/v1/tenants'));
    const lineOf = (requestId: string) => service.lines().find((line) => line.request_id === requestId && line.msg === 'request');
    expect(lineOf(readRequestId), service.stdout()).toBeDefined();
    expect(lineOf(readRequestId)).toMatchObject({ trace_id: read.traceId });
    expect(lineOf(readRequestId)?.span_id).toMatch(/^[0-9a-f]{16}$/);
    expect(lineOf(createRequestId)).toMatchObject({ trace_id: write.traceId });
    // Lines outside any request (boot) carry none.
    const ready = service.lines().find((line) => line.msg === 'tenant-registry ready');
    expect(ready).toBeDefined();
    expect(ready).not.toHaveProperty('trace_id');
  });
});

describe.skipIf(!DRIVERS.includes('pg'))('tracing on, PostgreSQL (DATABASE_URL)', { timeout: PROCESS_TEST_TIMEOUT_MS }, () => {
  let receiver: Receiver;
  let database: TestPgDatabase;
  let service: Service;

  beforeAll(async () => {
    receiver = await startReceiver();
    database = await createTestPgDatabase();
    const migrated = await runMigrate(['up'], { DATABASE_URL: database.url });
    expect(migrated.code, migrated.stderr).toBe(0);
    // Tokens come from the development issuer, on this throwaway database.
    service = await startTraced({ ...jsonExport(receiver), DATABASE_URL: database.url, DEV_ISSUER_WITH_DATABASE: 'true' });
  });
  afterAll(async () => {
    await killAll();
    await receiver.close();
    await database?.drop();
  });

  it('the queries of a request are pg spans inside its trace', async () => {
    const api = client(service.baseUrl, await devToken(service.baseUrl));
    const slug = randomSlug('otel');
    const created = await api.post('/v1/tenants', { body: { slug, name: `Tenant ${slug}` } });
    expect(created.status, created.text).toBe(201);

    const server = await receiver.waitForSpan(serverSpanOf('POST', '/v1/tenants'));
    const queries = descendantsOf(server, receiver.spans()).filter((span) => span.scope === PG_SCOPE);
    const statements = queries.map((span) => span.name);
    expect(statements.some((name) => name.startsWith('pg.query:INSERT')), JSON.stringify(statements)).toBe(true);
    expect(statements).toContain(`pg.query:BEGIN ${database.name}`);
    expect(statements).toContain(`pg.query:COMMIT ${database.name}`);
    const insert = queries.find((span) => span.name.startsWith('pg.query:INSERT'))!;
    expect(insert.kind).toBe(3); // client
    expect(insert.attributes['db.system'] ?? insert.attributes['db.system.name']).toBe('postgresql');
    expect(insert.attributes['db.name'] ?? insert.attributes['db.namespace']).toBe(database.name);
    // Parameters are not recorded (enhancedDatabaseReporting is off): the slug appears nowhere.
    expect(JSON.stringify(queries)).not.toContain(slug);
  });

  it('background queries outside a request make no spans', async () => {
    await receiver.waitForSpan(serverSpanOf('POST', '/v1/tenants'));
    const servers = receiver.spans().filter((span) => span.kind === SERVER && span.scope === HTTP_SCOPE);
    const inRequests = new Set(servers.map((span) => span.traceId));
    // The schema check at boot and the key-usage and invalidation rounds run outside requests.
    expect(receiver.spans().filter((span) => span.scope === PG_SCOPE && !inRequests.has(span.traceId))).toEqual([]);
  });
});

describe('tracing on, default protocol', { timeout: PROCESS_TEST_TIMEOUT_MS }, () => {
  it('sends OTLP/HTTP protobuf to <endpoint>/v1/traces', async () => {
    const receiver = await startReceiver();
    try {
      const service = await startTraced({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '100' });
      const api = client(service.baseUrl, await devToken(service.baseUrl));
      expect((await api.get('/v1/tenants/by-slug/acme')).status).toBe(200);
      const deadline = performance.now() + PROCESS_WAIT_MS;
      const carries = (text: string) => receiver.exports.some((e) => e.body.includes(Buffer.from(text)));
      while (!carries('/v1/tenants/by-slug/:slug') && performance.now() < deadline) await sleep(50);
      expect(receiver.exports.length).toBeGreaterThan(0);
      for (const e of receiver.exports) expect(`${e.path} ${e.contentType}`).toBe('/v1/traces application/x-protobuf');
      // Protobuf carries strings as they are: the service name and the route are in the bytes.
      expect(carries('tenant-registry')).toBe(true);
      expect(carries('/v1/tenants/by-slug/:slug')).toBe(true);
    } finally {
      await killAll();
      await receiver.close();
    }
  });
});

// Needs the integration in src/service.ts: `await shutdownTracing()` before process.exit(0).
describe('graceful shutdown', { timeout: PROCESS_TEST_TIMEOUT_MS }, () => {
  it('flushes the spans still buffered before the process exits', async () => {
    const receiver = await startReceiver();
    try {
      // A batch delay far beyond the test: only the flush at shutdown can send the spans.
      const service = await startTraced({ ...jsonExport(receiver), OTEL_BSP_SCHEDULE_DELAY: '600000' });
      const api = client(service.baseUrl, await devToken(service.baseUrl));
      expect((await api.get('/v1/tenants/by-slug/acme')).status).toBe(200);
      await sleep(300);
      expect(receiver.spans()).toEqual([]);
      const exit = await stop(service);
      expect(exit.code, service.stderr()).toBe(0);
      expect(receiver.spans().some(serverSpanOf('GET', '/v1/tenants/by-slug/:slug'))).toBe(true);
    } finally {
      await killAll();
      await receiver.close();
    }
  });
});
