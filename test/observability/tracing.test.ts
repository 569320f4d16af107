// Traces of the real process: the service started as the start/dev scripts start it (the tracing
// preload before src/main.ts), a local OTLP/HTTP receiver on loopback standing in for the
// collector. One request must arrive as one trace: the HTTP server span, Fastify's request and
// handler spans under it, and with a real PostgreSQL the pg spans of its queries; the log lines
// of the request carry its trace_id. Without an endpoint no SDK starts and nothing is sent.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { REQUEST_ID_HEADER } from '../../src/http/request-id.js';
import { SERVICE_VERSION } from '../../src/version.js';
import { PROCESS_WAIT_MS, PROJECT_DIR, devToken, freePort, runMigrate } from '../process/spawn.js';
import { DRIVERS } from '../support/drivers.js';
import { randomSlug } from '../support/factories.js';
import { client } from '../support/http.js';
import { createTestPgDatabase, type TestPgDatabase } from '../support/postgres.js';

// ---------------------------------------------------------------------------------------------
// The receiver: POST /v1/traces, OTLP/JSON decoded into flat spans, protobuf kept as bytes.

interface Export {
  path: string;
  contentType: string;
  body: Buffer;
}

type AttributeValue = string | number | boolean | null | AttributeValue[];

interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client. */
  kind: number;
  scope: string;
  attributes: Record<string, AttributeValue>;
  resource: Record<string, AttributeValue>;
}

interface OtlpAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: number | string;
  doubleValue?: number;
  arrayValue?: { values?: OtlpAnyValue[] };
}
interface OtlpKeyValue {
  key: string;
  value: OtlpAnyValue;
}
interface OtlpJsonRequest {
  resourceSpans: {
    resource?: { attributes?: OtlpKeyValue[] };
    scopeSpans: {
      scope?: { name: string };
      spans: { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes?: OtlpKeyValue[] }[];
    }[];
  }[];
}

function valueOf(value: OtlpAnyValue): AttributeValue {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(valueOf);
  return null;
}

const attributesOf = (list: OtlpKeyValue[] = []) => Object.fromEntries(list.map((kv) => [kv.key, valueOf(kv.value)]));

function spansOf(request: OtlpJsonRequest): ReceivedSpan[] {
  return request.resourceSpans.flatMap((resourceSpans) => {
    const resource = attributesOf(resourceSpans.resource?.attributes);
    return resourceSpans.scopeSpans.flatMap((scopeSpans) =>
      scopeSpans.spans.map((span) => ({
        traceId: span.traceId,
        spanId: span.spanId,
        parentSpanId: span.parentSpanId ?? '',
        name: span.name,
        kind: span.kind,
        scope: scopeSpans.scope?.name ?? '',
        attributes: attributesOf(span.attributes),
        resource,
      })),
    );
  });
}

interface Receiver {
  /** The base URL, as OTEL_EXPORTER_OTLP_ENDPOINT takes it. */
  url: string;
  exports: Export[];
  /** Every span of every OTLP/JSON export received so far. */
  spans(): ReceivedSpan[];
  /** Polls until some span matches; fails at the deadline with what did arrive. */
  waitForSpan(match: (span: ReceivedSpan) => boolean, timeoutMs?: number): Promise<ReceivedSpan>;
  close(): Promise<void>;
}

async function startReceiver(): Promise<Receiver> {
  const exports: Export[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const contentType = contentTypeOf(request.headers);
      exports.push({ path: request.url ?? '', contentType, body: Buffer.concat(chunks) });
      // An empty ExportTraceServiceResponse: {} in JSON, zero bytes in protobuf.
      response.writeHead(200, { 'content-type': contentType });
      response.end(contentType === 'application/json' ? '{}' : '');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const receiver: Receiver = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    exports,
    spans: () =>
      exports
        .filter((e) => e.path === '/v1/traces' && e.contentType === 'application/json')
        .flatMap((e) => spansOf(JSON.parse(e.body.toString('utf8')) as OtlpJsonRequest)),
    async waitForSpan(match, timeoutMs = PROCESS_WAIT_MS) {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const found = receiver.spans().find(match);
        if (found) return found;
        if (performance.now() > deadline) {
          const seen = receiver.spans().map((s) => `${s.scope} ${s.name}`);
          throw new Error(`no matching span within ${timeoutMs} ms; received: ${JSON.stringify(seen)}`);
        }
        await sleep(50);
      }
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  return receiver;
}

const contentTypeOf = (headers: IncomingHttpHeaders) => (headers['content-type'] ?? '').split(';')[0]!.trim();

// ---------------------------------------------------------------------------------------------
// The service, started as package.json's scripts start it: the tracing preload, then main.ts.
// (spawn.ts starts `node --import tsx src/main.ts`, without the preload; this is its minimal
// logic with the extra --import.)

const SERVICE_ARGS = ['--import', 'tsx', '--import', './src/observability/tracing-preload.ts', 'src/main.ts'];

// Written by a probe imported before everything else, when the process exits: whether anything
// registered an OpenTelemetry global (the API's registry, Symbol.for('opentelemetry.js.api.1')).
const PROBE = `process.on('exit', () => process.stderr.write('otel-global:' + (globalThis[Symbol.for('opentelemetry.js.api.1')] !== undefined) + '\\n'));`;
const PROBE_IMPORT = ['--import', `data:text/javascript,${encodeURIComponent(PROBE)}`];

// Only what node and tsx need from the runner's environment: no variable of config.ts and no
// OTEL_* of a developer's shell reaches the child unless a test passes it.
const PASSED_THROUGH = ['PATH', 'HOME', 'TMPDIR', 'TMP', 'TEMP', 'LANG', 'LC_ALL', 'TZ', 'SYSTEMROOT'];

interface Service {
  child: ChildProcess;
  baseUrl: string;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The JSON lines of stdout. */
  lines(): Record<string, unknown>[];
}

const running = new Set<Service>();

async function startTraced(env: Record<string, string>): Promise<Service> {
  const port = await freePort();
  const childEnv: NodeJS.ProcessEnv = {};
  for (const name of PASSED_THROUGH) if (process.env[name] !== undefined) childEnv[name] = process.env[name];
  const child = spawn(process.execPath, [...PROBE_IMPORT, ...SERVICE_ARGS], {
    cwd: PROJECT_DIR,
    env: { ...childEnv, ADDR: `127.0.0.1:${port}`, LOG_LEVEL: 'info', SHUTDOWN_DRAIN_SECONDS: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal })),
  );
  const service: Service = {
    child,
    baseUrl: `http://127.0.0.1:${port}`,
    stdout: () => out,
    stderr: () => err,
    exited,
    lines: () =>
      out
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
  running.add(service);
  void exited.then(() => running.delete(service));

  const deadline = performance.now() + PROCESS_WAIT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await exited;
      throw new Error(`service exited before it was ready:\n${err}`);
    }
    try {
      const response = await fetch(`${service.baseUrl}/healthz`, { signal: AbortSignal.timeout(1_000) });
      await response.arrayBuffer();
      if (response.status === 200) return service;
    } catch {
      // Not listening yet: poll again.
    }
    if (performance.now() > deadline) throw new Error(`service not ready within ${PROCESS_WAIT_MS} ms:\n${err}`);
    await sleep(50);
  }
}

/** SIGTERM (the orchestrator's stop) and the exit. */
async function stop(service: Service) {
  service.child.kill('SIGTERM');
  return service.exited;
}

async function killAll() {
  const left = [...running];
  for (const service of left) service.child.kill('SIGKILL');
  await Promise.all(left.map((service) => service.exited));
}

afterEach(killAll);
afterAll(killAll);

// The export settings of most cases: JSON (readable here) and a short batch delay, so the spans
// of a request arrive within a fraction of a second instead of the default 5 s.
const jsonExport = (receiver: Receiver) => ({
  OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
  OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
  OTEL_BSP_SCHEDULE_DELAY: '100',
});

const HTTP_SCOPE = '@opentelemetry/instrumentation-http';
const FASTIFY_SCOPE = '@fastify/otel';
const PG_SCOPE = '@opentelemetry/instrumentation-pg';
const SERVER = 2;

/** The HTTP server span of the request to this route (as Fastify names it) with this method. */
const serverSpanOf = (method: string, route: string) => (span: ReceivedSpan) =>
  span.scope === HTTP_SCOPE && span.kind === SERVER && span.attributes['http.route'] === route && span.name === `${method} ${route}`;

/** Every span of the trace that descends from the given span (itself excluded). */
function descendantsOf(root: ReceivedSpan, spans: ReceivedSpan[]): ReceivedSpan[] {
  const inTrace = spans.filter((span) => span.traceId === root.traceId);
  const found: ReceivedSpan[] = [];
  let frontier = [root.spanId];
  while (frontier.length > 0) {
    const children = inTrace.filter((span) => frontier.includes(span.parentSpanId));
    found.push(...children);
    frontier = children.map((span) => span.spanId);
  }
  return found;
}

// ---------------------------------------------------------------------------------------------

describe('tracing on, embedded database (OTLP/JSON)', () => {
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

  // Needs the integration in src/main.ts: createLogger(config, { mixin: traceLogMixin() }).
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

describe.skipIf(!DRIVERS.includes('pg'))('tracing on, PostgreSQL (DATABASE_URL)', () => {
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

describe('tracing on, default protocol', () => {
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

// Needs the integration in src/main.ts: `await shutdownTracing()` before process.exit(0).
describe('graceful shutdown', () => {
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

describe('tracing off', () => {
  it.each([
    ['OTEL_EXPORTER_OTLP_ENDPOINT unset', (_receiver: Receiver) => ({})],
    ['OTEL_EXPORTER_OTLP_ENDPOINT empty', (_receiver: Receiver) => ({ OTEL_EXPORTER_OTLP_ENDPOINT: '' })],
    [
      'OTEL_SDK_DISABLED=true',
      (receiver: Receiver) => ({ ...jsonExport(receiver), OTEL_SDK_DISABLED: 'true' }),
    ],
  ])('%s: no SDK, nothing sent, no trace_id in the logs', async (_title, envFor) => {
    const receiver = await startReceiver();
    try {
      // Everything else a traced process would use is set: only the endpoint decides.
      const service = await startTraced({ OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', ...envFor(receiver) });
      const api = client(service.baseUrl, await devToken(service.baseUrl));
      expect((await api.get('/v1/tenants/by-slug/acme')).status).toBe(200);
      await sleep(500); // five batch delays
      const exit = await stop(service);
      expect(exit.code, service.stderr()).toBe(0);

      expect(receiver.exports).toEqual([]);
      expect(service.stderr()).toContain('otel-global:false');
      const requestLines = service.lines().filter((line) => line.msg === 'request');
      expect(requestLines.length).toBeGreaterThan(0);
      for (const line of requestLines) expect(line).not.toHaveProperty('trace_id');
    } finally {
      await killAll();
      await receiver.close();
    }
  });

  it('the probe sees the SDK when tracing is on (the check above is not vacuous)', async () => {
    const receiver = await startReceiver();
    try {
      const service = await startTraced(jsonExport(receiver));
      const exit = await stop(service);
      expect(exit.code, service.stderr()).toBe(0);
      expect(service.stderr()).toContain('otel-global:true');
    } finally {
      await killAll();
      await receiver.close();
    }
  });
});

describe('bad tracing variables stop the process at boot', () => {
  it.each([
    ['OTEL_EXPORTER_OTLP_ENDPOINT', { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }],
    ['OTEL_EXPORTER_OTLP_ENDPOINT', { OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://user:hunter2secret@collector' }],
    ['OTEL_EXPORTER_OTLP_PROTOCOL', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }],
  ])('%s: one line naming it, exit 1, the value not echoed', async (variable, env) => {
    const port = await freePort();
    const childEnv: NodeJS.ProcessEnv = {};
    for (const name of PASSED_THROUGH) if (process.env[name] !== undefined) childEnv[name] = process.env[name];
    const child = spawn(process.execPath, SERVICE_ARGS, {
      cwd: PROJECT_DIR,
      env: { ...childEnv, ADDR: `127.0.0.1:${port}`, LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const [code] = (await once(child, 'close')) as [number | null];
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^tenant-registry: invalid [A-Z_]+: expected [^\n]+\n$/);
    expect(stderr).toContain(variable);
    expect(stderr).not.toContain('hunter2secret');
  });
});
