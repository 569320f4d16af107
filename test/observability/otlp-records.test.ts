// What the OTLP bridges make of the service's own data: prom-client's registry as OTel metric data
// (registry-producer.ts), and a written log line as a log record (log-export.ts).
import { ROOT_CONTEXT, TraceFlags, trace } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AggregationTemporality, DataPointType, type HistogramMetricData, type MetricData, type SumMetricData } from '@opentelemetry/sdk-metrics';
import { Counter, Gauge, Histogram, Registry, Summary } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { logRecordOf } from '../../src/observability/log-export.js';
import { createLogger } from '../../src/observability/logger.js';
import { registryProducer } from '../../src/observability/registry-producer.js';
import { RequestDurations } from '../../src/observability/request-durations.js';

const resource = resourceFromAttributes({ 'service.name': 'tenant-registry' });

async function collect(registry: Registry): Promise<Map<string, MetricData>> {
  const { resourceMetrics, errors } = await registryProducer(registry, resource).collect();
  expect(errors).toEqual([]);
  expect(resourceMetrics.scopeMetrics).toHaveLength(1);
  return new Map(resourceMetrics.scopeMetrics[0]!.metrics.map((metric) => [metric.descriptor.name, metric]));
}

describe("prom-client's registry as OTel metric data", () => {
  it('a counter is a cumulative monotonic sum per label set, with its help as description', async () => {
    const registry = new Registry();
    const counter = new Counter({ name: 'x_verifications_total', help: 'Verdicts', labelNames: ['code'], registers: [registry] });
    counter.inc({ code: 'VALID' }, 3);
    counter.inc({ code: 'REVOKED' });
    const metric = (await collect(registry)).get('x_verifications_total') as SumMetricData;
    expect(metric.dataPointType).toBe(DataPointType.SUM);
    expect(metric.isMonotonic).toBe(true);
    expect(metric.aggregationTemporality).toBe(AggregationTemporality.CUMULATIVE);
    expect(metric.descriptor).toMatchObject({ description: 'Verdicts', unit: '' });
    expect(metric.dataPoints.map((point) => [point.attributes, point.value])).toEqual([
      [{ code: 'VALID' }, 3],
      [{ code: 'REVOKED' }, 1],
    ]);
    // Cumulative since the process started, which was before this test.
    const [point] = metric.dataPoints;
    expect(point!.startTime[0]).toBeLessThanOrEqual(point!.endTime[0]);
    expect(point!.startTime[0]).toBe(Math.floor(performance.timeOrigin / 1000));
  });

  it('a gauge is a gauge; one never set (NaN) is left out; the unit comes from the name', async () => {
    const registry = new Registry();
    new Gauge({ name: 'x_pool_connections', help: 'Pool', labelNames: ['state'], registers: [registry] }).set({ state: 'idle' }, 4);
    new Gauge({ name: 'x_lag_seconds', help: 'Lag', registers: [registry] }).set(Number.NaN);
    const metrics = await collect(registry);
    expect(metrics.get('x_pool_connections')).toMatchObject({ dataPointType: DataPointType.GAUGE, dataPoints: [{ attributes: { state: 'idle' }, value: 4 }] });
    expect(metrics.get('x_lag_seconds')).toMatchObject({ descriptor: { unit: 's' }, dataPoints: [] });
  });

  it('a histogram keeps its bounds, with per-bucket counts, sum and count per label set', async () => {
    const registry = new Registry();
    const histogram = new Histogram({ name: 'x_duration_seconds', help: 'Durations', labelNames: ['route'], buckets: [0.1, 1], registers: [registry] });
    for (const seconds of [0.05, 0.1, 0.5, 2, 3]) histogram.observe({ route: '/a' }, seconds);
    histogram.observe({ route: '/b' }, 0.5);
    const metric = (await collect(registry)).get('x_duration_seconds') as HistogramMetricData;
    expect(metric.dataPointType).toBe(DataPointType.HISTOGRAM);
    expect(metric.descriptor.unit).toBe('s');
    const byRoute = new Map(metric.dataPoints.map((point) => [point.attributes.route, point.value]));
    // 0.05 and 0.1 (a bound is inclusive) | 0.5 | 2 and 3 above every bound.
    expect(byRoute.get('/a')).toEqual({ buckets: { boundaries: [0.1, 1], counts: [2, 1, 2] }, sum: 5.65, count: 5 });
    expect(byRoute.get('/b')).toEqual({ buckets: { boundaries: [0.1, 1], counts: [0, 1, 0] }, sum: 0.5, count: 1 });
  });

  it("the service's own request histogram reads the same way (it renders itself for prom-client)", async () => {
    const registry = new Registry();
    const durations = new RequestDurations('x_http_request_duration_seconds', 'Requests', [0.001, 0.01]);
    registry.registerMetric(durations as unknown as Parameters<typeof registry.registerMetric>[0]);
    durations.observe('GET', '/v1/tenants/:id', 200, 0.0005);
    durations.observe('GET', '/v1/tenants/:id', 200, 0.005);
    durations.observe('GET', '/v1/tenants/:id', 404, 0.02);
    const metric = (await collect(registry)).get('x_http_request_duration_seconds') as HistogramMetricData;
    const points = metric.dataPoints.map((point) => [point.attributes, point.value.buckets.counts, point.value.count]);
    expect(points).toEqual([
      [{ method: 'GET', route: '/v1/tenants/:id', status: '200' }, [1, 1, 0], 2],
      [{ method: 'GET', route: '/v1/tenants/:id', status: '404' }, [0, 0, 1], 1],
    ]);
  });

  it('reads the registry anew at every collection', async () => {
    const registry = new Registry();
    const counter = new Counter({ name: 'x_total', help: 'x', registers: [registry] });
    counter.inc();
    expect(((await collect(registry)).get('x_total') as SumMetricData).dataPoints[0]!.value).toBe(1);
    counter.inc(2);
    expect(((await collect(registry)).get('x_total') as SumMetricData).dataPoints[0]!.value).toBe(3);
  });

  it('leaves out a summary, which OTLP metric data has no counterpart of', async () => {
    const registry = new Registry();
    new Summary({ name: 'x_summary', help: 'x', registers: [registry] }).observe(1);
    new Counter({ name: 'x_total', help: 'x', registers: [registry] }).inc();
    expect([...(await collect(registry)).keys()]).toEqual(['x_total']);
  });
});

describe('a written log line as a log record', () => {
  const line = (fields: Record<string, unknown>) => `${JSON.stringify({ level: 30, time: 1_700_000_000_123, pid: 7, hostname: 'h', service: 'tenant-registry', ...fields })}\n`;

  it.each([
    [10, SeverityNumber.TRACE, 'trace'],
    [20, SeverityNumber.DEBUG, 'debug'],
    [30, SeverityNumber.INFO, 'info'],
    [40, SeverityNumber.WARN, 'warn'],
    [50, SeverityNumber.ERROR, 'error'],
    [60, SeverityNumber.FATAL, 'fatal'],
  ])('pino level %i is severity %i (%s)', (level, severityNumber, severityText) => {
    expect(logRecordOf(line({ level, msg: 'x' }))).toMatchObject({ severityNumber, severityText });
  });

  it('msg is the body, time the timestamp, the other fields attributes; what the resource says is left out', () => {
    const record = logRecordOf(line({ msg: 'request', method: 'GET', route: '/v1/tenants/:id', status: 200, tenant_id: null, nested: { a: [1] } }));
    expect(record).toEqual({
      timestamp: 1_700_000_000_123,
      severityNumber: SeverityNumber.INFO,
      severityText: 'info',
      body: 'request',
      attributes: { method: 'GET', route: '/v1/tenants/:id', status: 200, tenant_id: null, nested: { a: [1] } },
    });
  });

  it("the line's trace_id and span_id become the record's trace context", () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const spanId = 'b7ad6b7169203331';
    const record = logRecordOf(line({ msg: 'request', trace_id: traceId, span_id: spanId }));
    expect(trace.getSpanContext(record!.context!)).toMatchObject({ traceId, spanId, traceFlags: TraceFlags.NONE });
    expect(record!.attributes).toEqual({});
    // Written inside that span (as every line is), the record takes the span's own context, sampling flag included.
    const inSpan = trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId, traceFlags: TraceFlags.SAMPLED });
    const sampled = logRecordOf(line({ msg: 'request', trace_id: traceId, span_id: spanId }), inSpan);
    expect(trace.getSpanContext(sampled!.context!)).toMatchObject({ traceId, spanId, traceFlags: TraceFlags.SAMPLED });
    // Ids of the wrong shape are not a context.
    expect(logRecordOf(line({ msg: 'x', trace_id: 'nope', span_id: spanId }))!.context).toBeUndefined();
  });

  it("pino's serialized error becomes the exception attributes, the rest of it stays under err", () => {
    const record = logRecordOf(line({ level: 50, msg: 'failed', err: { type: 'DatabaseError', message: 'boom', stack: 'DatabaseError: boom\n    at x', code: '57014' } }));
    expect(record!.attributes).toEqual({
      'exception.type': 'DatabaseError',
      'exception.message': 'boom',
      'exception.stacktrace': 'DatabaseError: boom\n    at x',
      err: { code: '57014' },
    });
  });

  it('takes no line that is not a JSON object', () => {
    expect(logRecordOf('not json\n')).toBeNull();
    expect(logRecordOf('[1, 2]\n')).toBeNull();
    expect(logRecordOf('"text"\n')).toBeNull();
  });
});

describe('the copy of each line the log export takes', () => {
  it('is the line as written, after redaction: no secret reaches the export that stdout did not show', () => {
    const written: string[] = [];
    const copied: string[] = [];
    const logger = createLogger({ appEnv: 'prod', logLevel: 'info' }, { destination: { write: (line: string) => written.push(line) }, copy: (line) => copied.push(line) });
    const key = 'bp_DD8cqTre6WeClkoclquITYIlZQb1zCEdz3mq1bV';
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4eXoifQ.c2lnbmF0dXJlLXBhcnQ';
    logger.info({ headers: { authorization: `Bearer ${jwt}` }, client_secret: 's3cret-value' }, `verify failed for ${key}`);
    logger.debug('below the level: neither written nor copied');
    expect(copied).toEqual(written);
    expect(copied).toHaveLength(1);
    for (const secret of [key, jwt, 's3cret-value']) expect(copied[0]).not.toContain(secret);
    const record = logRecordOf(copied[0]!)!;
    expect(record.body).toBe('verify failed for [redacted]');
    expect(record.attributes).toMatchObject({ headers: { authorization: '[redacted]' }, client_secret: '[redacted]' });
  });

  it('is not taken at all when logs are not exported', () => {
    const written: string[] = [];
    createLogger({ appEnv: 'prod', logLevel: 'info' }, { destination: { write: (line: string) => written.push(line) } }).info('x');
    expect(written).toHaveLength(1);
  });
});
