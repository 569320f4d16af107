// Metrics and logs over OTLP from the real process, to a loopback receiver standing in for the
// collector (SigNoz's, or any OTLP/HTTP one): the registry behind GET /metrics arrives as OTLP
// metrics with the same values while GET /metrics keeps answering; every log line arrives as a log
// record with its severity, attributes and trace, redacted as stdout is; the default protocol and
// the signal endpoints; and with the variables unset, nothing but what was sent before.
// (otlp-failures.test.ts: bad variables and a receiver that is down.)
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REQUEST_ID_HEADER } from '../../src/http/request-id.js';
import { SERVICE_VERSION } from '../../src/version.js';
import { PROCESS_TEST_TIMEOUT_MS, PROCESS_WAIT_MS, devToken } from '../process/spawn.js';
import { randomSlug } from '../support/factories.js';
import { call, client } from '../support/http.js';
import {
  jsonExport,
  killAll,
  metricsOf,
  serverSpanOf,
  startReceiver,
  startTraced,
  stop,
  type OtlpJsonMetricsRequest,
  type ReceivedLogRecord,
  type ReceivedMetric,
  type Receiver,
  type Service,
} from './traced-service.js';

// Not after each test: the first describe's tests share one service.
afterAll(killAll);

const BY_SLUG = '/v1/tenants/by-slug/:slug';
const VERIFY = '/v1/internal/api-keys/verify';
const DURATION = 'tenant_registry_http_request_duration_seconds';
const VERIFICATIONS = 'tenant_registry_key_verifications_total';
const PEPPER = 'otlp-test-pepper-with-more-than-32-characters';
// Short enough that a test waits a fraction of a second for the next export.
const INTERVAL_MS = '200';

/** The point of a metric whose attributes include these, in the newest export that has one. */
function latestPoint(metrics: ReceivedMetric[], name: string, attributes: Record<string, string>) {
  for (const metric of [...metrics].reverse()) {
    if (metric.name !== name) continue;
    const point = metric.points.find((p) => Object.entries(attributes).every(([key, value]) => p.attributes[key] === value));
    if (point) return point;
  }
  return undefined;
}

describe('metrics and logs over OTLP/JSON, beside traces', { timeout: PROCESS_TEST_TIMEOUT_MS }, () => {
  let receiver: Receiver;
  let service: Service;
  let adminToken: string;
  let serviceToken: string;
  let apiKey: string;
  const requestIds: Record<string, string> = {};

  beforeAll(async () => {
    receiver = await startReceiver();
    service = await startTraced({
      ...jsonExport(receiver),
      OTEL_METRICS_EXPORTER: 'otlp',
      OTEL_LOGS_EXPORTER: 'otlp',
      OTEL_METRIC_EXPORT_INTERVAL: INTERVAL_MS,
      // Every line the service can write, so that a secret anywhere in the logging path would show.
      LOG_LEVEL: 'trace',
      API_KEY_PEPPER: PEPPER,
    });
    adminToken = await devToken(service.baseUrl, ['platform_admin']);
    serviceToken = await devToken(service.baseUrl, ['registry_service']);
    const admin = client(service.baseUrl, adminToken);
    const product = client(service.baseUrl, serviceToken);

    for (let i = 0; i < 3; i += 1) {
      const read = await admin.get('/v1/tenants/by-slug/acme');
      expect(read.status).toBe(200);
      requestIds.read = read.headers.get(REQUEST_ID_HEADER)!;
    }
    for (let i = 0; i < 2; i += 1) expect((await product.post(VERIFY, { body: { key: 'not-a-key' } })).body).toMatchObject({ code: 'MALFORMED' });

    const slug = randomSlug('otlp');
    const created = await admin.post<{ tenant: { id: string } }>('/v1/tenants', { body: { slug, name: `Tenant ${slug}` } });
    expect(created.status, created.text).toBe(201);
    const issued = await admin.post<{ key: string }>('/v1/api-keys', { body: { tenant_id: created.body.tenant.id, name: 'otlp' } });
    expect(issued.status, issued.text).toBe(201);
    apiKey = issued.body.key;

    // The secrets sent where a log line could pick them up: a key in a body, as a bearer token,
    // in a body that does not parse, in a path; tokens in Authorization on every request.
    const valid = await product.post(VERIFY, { body: { key: apiKey } });
    expect(valid.body).toMatchObject({ code: 'VALID' });
    requestIds.verify = valid.headers.get(REQUEST_ID_HEADER)!;
    const asBearer = await call(service.baseUrl, 'POST', VERIFY, { body: { key: apiKey } }, apiKey);
    expect(asBearer.status).toBe(401);
    requestIds.bearer = asBearer.headers.get(REQUEST_ID_HEADER)!;
    const unparsable = await product.post(VERIFY, { raw: `{"key": "${apiKey}"`, headers: { 'content-type': 'application/json' } });
    expect(unparsable.status).toBe(400);
    requestIds.unparsable = unparsable.headers.get(REQUEST_ID_HEADER)!;
    expect((await admin.get(`/v1/api-keys/${apiKey}`)).status).toBeGreaterThanOrEqual(400);
  });
  afterAll(async () => {
    await killAll();
    await receiver.close();
  });

  it("pushes the registry to <endpoint>/v1/metrics: request durations and verdicts, with the service's resource", async () => {
    const hasReads = (metric: ReceivedMetric) =>
      metric.name === DURATION && metric.points.some((p) => p.attributes.route === BY_SLUG && p.attributes.status === '200' && p.count === 3);
    const durations = await receiver.waitFor(() => receiver.metrics(), hasReads, 'export with the three reads');
    expect(durations).toMatchObject({ kind: 'histogram', unit: 's', aggregationTemporality: 2, scope: 'tenant-registry' });
    expect(durations.description).toContain('Time to answer an HTTP request');
    const reads = durations.points.find((p) => p.attributes.route === BY_SLUG && p.attributes.status === '200')!;
    expect(reads.attributes).toEqual({ method: 'GET', route: BY_SLUG, status: '200' });
    expect(reads.explicitBounds).toEqual([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
    expect(reads.bucketCounts!.reduce((a, b) => a + b, 0)).toBe(3);
    expect(durations.resource).toMatchObject({ 'service.name': 'tenant-registry', 'service.version': SERVICE_VERSION });

    const verdicts = await receiver.waitFor(
      () => receiver.metrics(),
      (metric) => metric.name === VERIFICATIONS && metric.points.some((p) => p.attributes.code === 'VALID'),
      'export with the VALID verdict',
    );
    expect(verdicts).toMatchObject({ kind: 'sum', isMonotonic: true, aggregationTemporality: 2 });
    expect(Object.fromEntries(verdicts.points.map((p) => [p.attributes.code, p.value]))).toEqual({ MALFORMED: 2, VALID: 1 });
    expect(receiver.exports.filter((e) => e.path === '/v1/metrics').every((e) => e.contentType === 'application/json')).toBe(true);
  });

  it('GET /metrics still answers, with the same values and the same metrics as the export', async () => {
    await receiver.waitFor(() => receiver.metrics(), (metric) => metric.name === VERIFICATIONS && metric.points.length === 2, 'verdicts export');
    const scrape = await fetch(`${service.baseUrl}/metrics`);
    expect(scrape.status).toBe(200);
    const text = await scrape.text();
    const sample = (pattern: RegExp) => Number(text.split('\n').find((line) => pattern.test(line))?.split(' ').pop());
    expect(sample(/^tenant_registry_http_request_duration_seconds_count\{.*route="\/v1\/tenants\/by-slug\/:slug".*status="200"/)).toBe(3);
    expect(sample(/^tenant_registry_key_verifications_total\{code="MALFORMED"\}/)).toBe(2);
    expect(latestPoint(receiver.metrics(), DURATION, { route: BY_SLUG, status: '200' })?.count).toBe(3);
    expect(latestPoint(receiver.metrics(), VERIFICATIONS, { code: 'MALFORMED' })?.value).toBe(2);

    // Every metric the scrape declares is in one export, and nothing else is: one registry, two ways out.
    const scraped = new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((match) => match[1]!));
    const lastExport = receiver.exports.filter((e) => e.path === '/v1/metrics').at(-1)!;
    const exported = new Set(metricsOf(JSON.parse(lastExport.body.toString('utf8')) as OtlpJsonMetricsRequest).map((metric) => metric.name));
    expect([...exported].sort()).toEqual([...scraped].sort());
    expect(exported.has('tenant_registry_process_cpu_user_seconds_total')).toBe(true);
  });

  it('sends every log line as a record: severity, body, attributes, and the trace of its request', async () => {
    const records = () => receiver.logRecords();
    const ready = await receiver.waitFor(records, (record) => record.body === 'tenant-registry ready', 'the boot line');
    expect(ready).toMatchObject({ severityNumber: 9, severityText: 'info', traceId: '', scope: 'tenant-registry' });
    expect(ready.attributes).toMatchObject({ env: 'dev', database: 'embedded', otlp: 'traces, metrics, logs' });
    expect(ready.attributes).not.toHaveProperty('pid');
    expect(ready.timeUnixNano).toMatch(/^\d{19}$/);

    const read = await receiver.waitFor(records, (record) => record.attributes.request_id === requestIds.read && record.body === 'request', 'the read');
    expect(read.attributes).toMatchObject({ method: 'GET', route: BY_SLUG, status: 200, tenant_id: null });
    expect(read.attributes.duration_ms).toEqual(expect.any(Number));
    // The record carries the trace of the request: the line's ids, and a server span of that trace.
    const line = service.lines().find((l) => l.request_id === requestIds.read && l.msg === 'request')!;
    expect(read.traceId).toBe(line.trace_id);
    expect(read.spanId).toBe(line.span_id);
    expect(read.flags).toBe(1); // sampled, as the span was
    const span = await receiver.waitForSpan((s) => serverSpanOf('GET', BY_SLUG)(s) && s.traceId === read.traceId);
    expect(span.traceId).toMatch(/^[0-9a-f]{32}$/);

    const refused = await receiver.waitFor(records, (record) => record.attributes.request_id === requestIds.bearer, 'the 401');
    expect(refused.attributes).toMatchObject({ status: 401, route: VERIFY });
  });

  it('traces, metrics and logs name the same process (service.instance.id)', async () => {
    const record = await receiver.waitFor(() => receiver.logRecords(), (r) => r.body === 'tenant-registry ready', 'the boot line');
    const metric = await receiver.waitFor(() => receiver.metrics(), (m) => m.name === DURATION, 'a metric');
    const span = await receiver.waitForSpan(serverSpanOf('GET', BY_SLUG));
    const instance = record.resource['service.instance.id'];
    expect(instance).toMatch(/^[0-9a-f-]{36}$/);
    expect(metric.resource['service.instance.id']).toBe(instance);
    expect(span.resource['service.instance.id']).toBe(instance);
  });

  it('exports no API key and no bearer token, in any record of any signal', async () => {
    // The requests that carried the key have arrived as records (the check below is not vacuous).
    const records = () => receiver.logRecords();
    for (const id of [requestIds.verify, requestIds.bearer, requestIds.unparsable]) {
      await receiver.waitFor(records, (record: ReceivedLogRecord) => record.attributes.request_id === id, `the record of ${id}`);
    }
    const sent = receiver.exports.map((e) => e.body.toString('utf8')).join('\n');
    for (const secret of [apiKey, apiKey.slice(3, 30), adminToken, serviceToken, adminToken.split('.')[2]!, serviceToken.split('.')[2]!]) {
      expect(sent).not.toContain(secret);
    }
    // The key typed into a path was in a span's url.path, and left it redacted.
    const inPath = await receiver.waitForSpan((span) => span.attributes['http.route'] === '/v1/api-keys/:id' && 'url.path' in span.attributes);
    expect(inPath.attributes['url.path']).toBe('/v1/api-keys/[redacted]');
  });

  // Last: it stops the service.
  it('at shutdown, sends the last lines and metrics: every line of stdout arrived as a record', async () => {
    const exit = await stop(service);
    expect(exit.code, service.stderr()).toBe(0);
    const bodies = receiver.logRecords().map((record) => record.body);
    expect(bodies).toContain('stopped');
    // One record per JSON line, in the same order (the export keeps the order lines were written in).
    expect(bodies).toEqual(service.lines().map((line) => line.msg ?? null));
  });
});

describe('the default protocol and the signal endpoints', { timeout: PROCESS_TEST_TIMEOUT_MS }, () => {
  it('sends OTLP/HTTP protobuf to each signal endpoint as written, and no traces without an endpoint for them', async () => {
    const receiver = await startReceiver();
    try {
      const service = await startTraced({
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: `${receiver.url}/collector/metrics`,
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: `${receiver.url}/collector/logs`,
        OTEL_METRICS_EXPORTER: 'otlp',
        OTEL_LOGS_EXPORTER: 'otlp',
        OTEL_METRIC_EXPORT_INTERVAL: INTERVAL_MS,
      });
      const api = client(service.baseUrl, await devToken(service.baseUrl));
      expect((await api.get('/v1/tenants/by-slug/acme')).status).toBe(200);
      // Protobuf carries strings as they are: names, routes and messages are in the bytes.
      const carrying = (path: string, text: string) => () => receiver.exports.filter((e) => e.path === path && e.body.includes(Buffer.from(text)));
      await receiver.waitFor(carrying('/collector/metrics', BY_SLUG), () => true, 'metrics with the read');
      await receiver.waitFor(carrying('/collector/metrics', DURATION), () => true, 'the duration metric');
      await receiver.waitFor(carrying('/collector/logs', 'tenant-registry ready'), () => true, 'the boot line');
      await receiver.waitFor(carrying('/collector/logs', BY_SLUG), () => true, 'the request line');
      const exit = await stop(service);
      expect(exit.code, service.stderr()).toBe(0);
      const kinds = new Set(receiver.exports.map((e) => `${e.path} ${e.contentType}`));
      expect([...kinds].sort()).toEqual(['/collector/logs application/x-protobuf', '/collector/metrics application/x-protobuf']);
      expect(service.lines().find((line) => line.msg === 'tenant-registry ready')).toMatchObject({ otlp: 'metrics, logs' });
    } finally {
      await killAll();
      await receiver.close();
    }
  });
});

describe('metrics and logs not asked for are not sent', { timeout: PROCESS_TEST_TIMEOUT_MS }, () => {
  it.each([
    ['unset', {}],
    ['none', { OTEL_METRICS_EXPORTER: 'none', OTEL_LOGS_EXPORTER: 'none' }],
  ])('OTEL_METRICS_EXPORTER and OTEL_LOGS_EXPORTER %s: traces only, and GET /metrics', async (_title, exporters) => {
    const receiver = await startReceiver();
    try {
      // Everything else an exporting process would use is set: only the exporter variables decide.
      const service = await startTraced({ ...jsonExport(receiver), OTEL_METRIC_EXPORT_INTERVAL: INTERVAL_MS, ...exporters });
      const api = client(service.baseUrl, await devToken(service.baseUrl));
      expect((await api.get('/v1/tenants/by-slug/acme')).status).toBe(200);
      // The receiver is reachable: the trace of the request arrives.
      await receiver.waitForSpan(serverSpanOf('GET', BY_SLUG), PROCESS_WAIT_MS);
      await sleep(1_500); // seven metric intervals, one log batch and a half
      expect((await fetch(`${service.baseUrl}/metrics`)).status).toBe(200);
      const exit = await stop(service);
      expect(exit.code, service.stderr()).toBe(0);
      expect(new Set(receiver.exports.map((e) => e.path))).toEqual(new Set(['/v1/traces']));
      expect(service.lines().find((line) => line.msg === 'tenant-registry ready')).toMatchObject({ otlp: 'traces' });
    } finally {
      await killAll();
      await receiver.close();
    }
  });
});
