// The traced service and a stand-in collector, for the tracing and OTLP export tests: the service
// started as the start/dev scripts start it (the tracing preload before src/main.ts), and a local
// OTLP/HTTP receiver on loopback that decodes OTLP/JSON into flat spans, metrics and log records,
// and keeps protobuf as bytes.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { embeddedDatabaseFor, entryArgs, PROCESS_WAIT_MS, PROJECT_DIR, freePort } from '../process/spawn.js';

// ---------------------------------------------------------------------------------------------
// The receiver: every POST kept; OTLP/JSON of /v1/traces, /v1/metrics and /v1/logs decoded into
// flat spans, metrics and log records; protobuf kept as bytes.

export interface Export {
  path: string;
  contentType: string;
  body: Buffer;
}

export type AttributeValue = string | number | boolean | null | AttributeValue[] | { [key: string]: AttributeValue };

export interface ReceivedSpan {
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

export interface OtlpAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: number | string;
  doubleValue?: number;
  arrayValue?: { values?: OtlpAnyValue[] };
  kvlistValue?: { values?: OtlpKeyValue[] };
}
export interface OtlpKeyValue {
  key: string;
  value: OtlpAnyValue;
}
export interface OtlpJsonRequest {
  resourceSpans: {
    resource?: { attributes?: OtlpKeyValue[] };
    scopeSpans: {
      scope?: { name: string };
      spans: { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes?: OtlpKeyValue[] }[];
    }[];
  }[];
}

export function valueOf(value: OtlpAnyValue): AttributeValue {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return value.doubleValue;
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(valueOf);
  if (value.kvlistValue !== undefined) return attributesOf(value.kvlistValue.values);
  return null;
}

export function attributesOf(list: OtlpKeyValue[] = []): Record<string, AttributeValue> {
  return Object.fromEntries(list.map((kv) => [kv.key, valueOf(kv.value)]));
}

export function spansOf(request: OtlpJsonRequest): ReceivedSpan[] {
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

/** One data point of a metric: a number (sum, gauge) or a histogram's buckets. */
export interface ReceivedPoint {
  attributes: Record<string, AttributeValue>;
  value?: number;
  count?: number;
  sum?: number;
  bucketCounts?: number[];
  explicitBounds?: number[];
  startTimeUnixNano: string;
  timeUnixNano: string;
}

export interface ReceivedMetric {
  name: string;
  description: string;
  unit: string;
  kind: 'sum' | 'gauge' | 'histogram' | 'other';
  /** Sums only. */
  isMonotonic?: boolean;
  /** 1 delta, 2 cumulative. */
  aggregationTemporality?: number;
  points: ReceivedPoint[];
  scope: string;
  resource: Record<string, AttributeValue>;
}

interface OtlpJsonPoint {
  attributes?: OtlpKeyValue[];
  asDouble?: number;
  asInt?: number | string;
  count?: number | string;
  sum?: number;
  bucketCounts?: (number | string)[];
  explicitBounds?: number[];
  startTimeUnixNano: string;
  timeUnixNano: string;
}
interface OtlpJsonMetric {
  name: string;
  description?: string;
  unit?: string;
  sum?: { dataPoints: OtlpJsonPoint[]; isMonotonic?: boolean; aggregationTemporality?: number };
  gauge?: { dataPoints: OtlpJsonPoint[] };
  histogram?: { dataPoints: OtlpJsonPoint[]; aggregationTemporality?: number };
}
export interface OtlpJsonMetricsRequest {
  resourceMetrics: { resource?: { attributes?: OtlpKeyValue[] }; scopeMetrics: { scope?: { name: string }; metrics: OtlpJsonMetric[] }[] }[];
}

function pointOf(point: OtlpJsonPoint): ReceivedPoint {
  return {
    attributes: attributesOf(point.attributes),
    ...(point.asDouble !== undefined ? { value: point.asDouble } : {}),
    ...(point.asInt !== undefined ? { value: Number(point.asInt) } : {}),
    ...(point.count !== undefined ? { count: Number(point.count) } : {}),
    ...(point.sum !== undefined ? { sum: point.sum } : {}),
    ...(point.bucketCounts !== undefined ? { bucketCounts: point.bucketCounts.map(Number) } : {}),
    ...(point.explicitBounds !== undefined ? { explicitBounds: point.explicitBounds } : {}),
    startTimeUnixNano: point.startTimeUnixNano,
    timeUnixNano: point.timeUnixNano,
  };
}

export function metricsOf(request: OtlpJsonMetricsRequest): ReceivedMetric[] {
  return request.resourceMetrics.flatMap((resourceMetrics) => {
    const resource = attributesOf(resourceMetrics.resource?.attributes);
    return resourceMetrics.scopeMetrics.flatMap((scopeMetrics) =>
      scopeMetrics.metrics.map((metric): ReceivedMetric => {
        const base = { name: metric.name, description: metric.description ?? '', unit: metric.unit ?? '', scope: scopeMetrics.scope?.name ?? '', resource };
        if (metric.sum) {
          return {
            ...base,
            kind: 'sum',
            isMonotonic: metric.sum.isMonotonic ?? false,
            aggregationTemporality: metric.sum.aggregationTemporality ?? 0,
            points: metric.sum.dataPoints.map(pointOf),
          };
        }
        if (metric.gauge) return { ...base, kind: 'gauge', points: metric.gauge.dataPoints.map(pointOf) };
        if (metric.histogram) {
          return {
            ...base,
            kind: 'histogram',
            aggregationTemporality: metric.histogram.aggregationTemporality ?? 0,
            points: metric.histogram.dataPoints.map(pointOf),
          };
        }
        return { ...base, kind: 'other', points: [] };
      }),
    );
  });
}

export interface ReceivedLogRecord {
  timeUnixNano: string;
  severityNumber: number;
  severityText: string;
  body: AttributeValue;
  attributes: Record<string, AttributeValue>;
  traceId: string;
  spanId: string;
  /** W3C trace flags: 1 sampled. */
  flags: number;
  scope: string;
  resource: Record<string, AttributeValue>;
}

export interface OtlpJsonLogsRequest {
  resourceLogs: {
    resource?: { attributes?: OtlpKeyValue[] };
    scopeLogs: {
      scope?: { name: string };
      logRecords: {
        timeUnixNano: string;
        severityNumber?: number;
        severityText?: string;
        body?: OtlpAnyValue;
        attributes?: OtlpKeyValue[];
        traceId?: string;
        spanId?: string;
        flags?: number;
      }[];
    }[];
  }[];
}

export function logRecordsOf(request: OtlpJsonLogsRequest): ReceivedLogRecord[] {
  return request.resourceLogs.flatMap((resourceLogs) => {
    const resource = attributesOf(resourceLogs.resource?.attributes);
    return resourceLogs.scopeLogs.flatMap((scopeLogs) =>
      scopeLogs.logRecords.map((record) => ({
        timeUnixNano: record.timeUnixNano,
        severityNumber: record.severityNumber ?? 0,
        severityText: record.severityText ?? '',
        body: record.body ? valueOf(record.body) : null,
        attributes: attributesOf(record.attributes),
        traceId: record.traceId ?? '',
        spanId: record.spanId ?? '',
        flags: record.flags ?? 0,
        scope: scopeLogs.scope?.name ?? '',
        resource,
      })),
    );
  });
}

export interface Receiver {
  /** The base URL, as OTEL_EXPORTER_OTLP_ENDPOINT takes it. */
  url: string;
  exports: Export[];
  /** Every span of every OTLP/JSON export to /v1/traces received so far. */
  spans(): ReceivedSpan[];
  /** Every metric of every OTLP/JSON export to /v1/metrics (or `path`) received so far, oldest export first. */
  metrics(path?: string): ReceivedMetric[];
  /** Every log record of every OTLP/JSON export to /v1/logs (or `path`) received so far. */
  logRecords(path?: string): ReceivedLogRecord[];
  /** Polls until some span matches; fails at the deadline with what did arrive. */
  waitForSpan(match: (span: ReceivedSpan) => boolean, timeoutMs?: number): Promise<ReceivedSpan>;
  /** Polls read() until some item matches; fails at the deadline naming what was awaited. */
  waitFor<T>(read: () => T[], match: (item: T) => boolean, what: string, timeoutMs?: number): Promise<T>;
  /** Requests received and not answered (a receiver that never answers keeps them all). */
  pending(): number;
  close(): Promise<void>;
}

export interface ReceiverOptions {
  /** 'never': take each request whole and never answer, as a collector that hangs does. */
  answer?: 'ok' | 'never';
}

export async function startReceiver(options: ReceiverOptions = {}): Promise<Receiver> {
  const exports: Export[] = [];
  let pending = 0;
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const contentType = contentTypeOf(request.headers);
      exports.push({ path: request.url ?? '', contentType, body: Buffer.concat(chunks) });
      if (options.answer === 'never') {
        pending += 1;
        response.once('close', () => (pending -= 1));
        return;
      }
      // An empty Export*ServiceResponse: {} in JSON, zero bytes in protobuf.
      response.writeHead(200, { 'content-type': contentType });
      response.end(contentType === 'application/json' ? '{}' : '');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const jsonTo = (path: string) => exports.filter((e) => e.path === path && e.contentType === 'application/json');
  const receiver: Receiver = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    exports,
    spans: () => jsonTo('/v1/traces').flatMap((e) => spansOf(JSON.parse(e.body.toString('utf8')) as OtlpJsonRequest)),
    metrics: (path = '/v1/metrics') => jsonTo(path).flatMap((e) => metricsOf(JSON.parse(e.body.toString('utf8')) as OtlpJsonMetricsRequest)),
    logRecords: (path = '/v1/logs') => jsonTo(path).flatMap((e) => logRecordsOf(JSON.parse(e.body.toString('utf8')) as OtlpJsonLogsRequest)),
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
    async waitFor(read, match, what, timeoutMs = PROCESS_WAIT_MS) {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const found = read().find(match);
        if (found !== undefined) return found;
        if (performance.now() > deadline) {
          throw new Error(`no ${what} within ${timeoutMs} ms; received: ${JSON.stringify(exports.map((e) => `${e.path} ${e.contentType}`))}`);
        }
        await sleep(50);
      }
    },
    pending: () => pending,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        // A receiver that never answers still holds its requests open.
        server.closeAllConnections();
      }),
  };
  return receiver;
}

export const contentTypeOf = (headers: IncomingHttpHeaders) => (headers['content-type'] ?? '').split(';')[0]!.trim();

// ---------------------------------------------------------------------------------------------
// The service, started as package.json's scripts start it: the tracing preload, then main.ts
// (spawn.ts's arguments; this is its minimal logic, with the probe below and every line of output kept).

const serviceArgs = () => entryArgs('src/main.ts', { preload: true });

// Written by a probe imported before everything else, when the process exits: whether anything
// registered an OpenTelemetry global (the API's registry, Symbol.for('opentelemetry.js.api.1')).
export const PROBE = `process.on('exit', () => process.stderr.write('otel-global:' + (globalThis[Symbol.for('opentelemetry.js.api.1')] !== undefined) + '\\n'));`;
export const PROBE_IMPORT = ['--import', `data:text/javascript,${encodeURIComponent(PROBE)}`];

// Only what node needs from the runner's environment: no variable of config.ts and no
// OTEL_* of a developer's shell reaches the child unless a test passes it.
export const PASSED_THROUGH = ['PATH', 'HOME', 'TMPDIR', 'TMP', 'TEMP', 'LANG', 'LC_ALL', 'TZ', 'SYSTEMROOT'];

export interface Service {
  child: ChildProcess;
  baseUrl: string;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The JSON lines of stdout. */
  lines(): Record<string, unknown>[];
}

export const running = new Set<Service>();

export async function startTraced(env: Record<string, string>): Promise<Service> {
  const port = await freePort();
  const childEnv: NodeJS.ProcessEnv = {};
  for (const name of PASSED_THROUGH) if (process.env[name] !== undefined) childEnv[name] = process.env[name];
  const database = embeddedDatabaseFor(env);
  const child = spawn(process.execPath, [...PROBE_IMPORT, ...serviceArgs()], {
    cwd: PROJECT_DIR,
    env: { ...childEnv, ADDR: `127.0.0.1:${port}`, LOG_LEVEL: 'info', SHUTDOWN_DRAIN_SECONDS: '0', ...database.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.once('close', () => database.remove());
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
export async function stop(service: Service) {
  service.child.kill('SIGTERM');
  return service.exited;
}

export async function killAll() {
  const left = [...running];
  for (const service of left) service.child.kill('SIGKILL');
  await Promise.all(left.map((service) => service.exited));
}

// The export settings of most cases: JSON (readable here) and a short batch delay, so the spans
// of a request arrive within a fraction of a second instead of the default 5 s.
export const jsonExport = (receiver: Receiver) => ({
  OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
  OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
  OTEL_BSP_SCHEDULE_DELAY: '100',
});

export const HTTP_SCOPE = '@opentelemetry/instrumentation-http';
export const FASTIFY_SCOPE = '@fastify/otel';
export const PG_SCOPE = '@opentelemetry/instrumentation-pg';
export const SERVER = 2;

/** The HTTP server span of the request to this route (as Fastify names it) with this method. */
export const serverSpanOf = (method: string, route: string) => (span: ReceivedSpan) =>
  span.scope === HTTP_SCOPE && span.kind === SERVER && span.attributes['http.route'] === route && span.name === `${method} ${route}`;

/** Every span of the trace that descends from the given span (itself excluded). */
export function descendantsOf(root: ReceivedSpan, spans: ReceivedSpan[]): ReceivedSpan[] {
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

/** Starts the service with `env` and waits for it to end by itself: a boot that is meant to fail. */
export async function bootOnce(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const port = await freePort();
  const childEnv: NodeJS.ProcessEnv = {};
  for (const name of PASSED_THROUGH) if (process.env[name] !== undefined) childEnv[name] = process.env[name];
  const child = spawn(process.execPath, serviceArgs(), {
    cwd: PROJECT_DIR,
    env: { ...childEnv, ADDR: `127.0.0.1:${port}`, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [code] = (await once(child, 'close')) as [number | null];
  return { code, stdout, stderr };
}
