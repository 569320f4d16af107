// prom-client's registry as an OpenTelemetry MetricProducer: what GET /metrics renders, read at
// each OTLP export and handed to the SDK as OTel metric data. The instruments stay where they are
// (metrics.ts and the default process metrics); both ways out read the one registry, so a scrape
// and an export carry the same metrics, names, labels and values.
//
// prom-client keeps totals since the process started, so every point is cumulative, starting at
// the process's start: counters become monotonic sums, gauges gauges, histograms explicit-bucket
// histograms (prom-client's cumulative `le` buckets turned back into per-bucket counts).
// Summaries have no OTel counterpart and none is registered; one would be left out.
import type { HrTime } from '@opentelemetry/api';
import { ValueType } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  DataPointType,
  type CollectionResult,
  type DataPoint,
  type MetricData,
  type MetricProducer,
} from '@opentelemetry/sdk-metrics';
import type { Registry } from 'prom-client';

/** What the registry's getMetricsAsJSON() gives, as this file reads it (prom-client types `type` as a number; it is a string). */
interface RegistryMetric {
  name: string;
  help: string;
  type: string;
  values: { value: number; labels: Record<string, string | number | undefined>; metricName?: string }[];
}

interface HistogramSeries {
  attributes: Record<string, string>;
  /** upper bound -> cumulative count, +Inf included */
  buckets: Map<number, number>;
  sum: number;
  count: number;
}

const SCOPE = { name: 'tenant-registry' };

/** Milliseconds since the epoch as OTel's [seconds, nanoseconds]. */
function hrTimeOf(epochMs: number): HrTime {
  const seconds = Math.floor(epochMs / 1000);
  return [seconds, Math.round((epochMs - seconds * 1000) * 1e6)];
}

/** The unit the Prometheus name ends in, in UCUM as OTLP writes it; '' for plain counts. */
function unitOf(name: string): string {
  if (/_seconds(_total)?$/.test(name)) return 's';
  if (/_bytes(_total)?$/.test(name)) return 'By';
  return '';
}

function attributesOf(labels: Record<string, string | number | undefined>): Record<string, string> {
  const attributes: Record<string, string> = {};
  for (const [name, value] of Object.entries(labels)) if (value !== undefined && name !== 'le') attributes[name] = String(value);
  return attributes;
}

/** One histogram's samples (_bucket, _sum, _count per label set) as OTel histogram points. */
function histogramPoints(metric: RegistryMetric, startTime: HrTime, endTime: HrTime): DataPoint<{ buckets: { boundaries: number[]; counts: number[] }; sum: number; count: number }>[] {
  const series = new Map<string, HistogramSeries>();
  for (const sample of metric.values) {
    const attributes = attributesOf(sample.labels);
    const key = JSON.stringify(Object.entries(attributes).sort(([a], [b]) => (a < b ? -1 : 1)));
    let entry = series.get(key);
    if (!entry) series.set(key, (entry = { attributes, buckets: new Map(), sum: 0, count: 0 }));
    const part = (sample.metricName ?? '').slice(metric.name.length);
    if (part === '_bucket') entry.buckets.set(sample.labels.le === '+Inf' ? Infinity : Number(sample.labels.le), sample.value);
    else if (part === '_sum') entry.sum = sample.value;
    else if (part === '_count') entry.count = sample.value;
  }
  return [...series.values()].map((entry) => {
    const bounds = [...entry.buckets.keys()].sort((a, b) => a - b);
    const boundaries = bounds.filter((bound) => Number.isFinite(bound));
    // Cumulative to per-bucket; the last bucket (above every boundary) holds what +Inf adds.
    let below = 0;
    const counts = boundaries.map((bound) => {
      const cumulative = entry.buckets.get(bound)!;
      const count = cumulative - below;
      below = cumulative;
      return count;
    });
    counts.push(entry.count - below);
    return { startTime, endTime, attributes: entry.attributes, value: { buckets: { boundaries, counts }, sum: entry.sum, count: entry.count } };
  });
}

/** One registry metric as OTel metric data; null for a type OTel has no counterpart of. */
export function metricDataOf(metric: RegistryMetric, startTime: HrTime, endTime: HrTime): MetricData | null {
  const descriptor = { name: metric.name, description: metric.help, unit: unitOf(metric.name), valueType: ValueType.DOUBLE };
  // A gauge no one has set yet reads NaN; OTLP/JSON cannot carry it.
  const points = () =>
    metric.values
      .filter((sample) => Number.isFinite(sample.value))
      .map((sample) => ({ startTime, endTime, attributes: attributesOf(sample.labels), value: sample.value }));
  switch (metric.type) {
    case 'counter':
      return { descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.SUM, isMonotonic: true, dataPoints: points() };
    case 'gauge':
      return { descriptor, aggregationTemporality: AggregationTemporality.CUMULATIVE, dataPointType: DataPointType.GAUGE, dataPoints: points() };
    case 'histogram':
      return {
        descriptor,
        aggregationTemporality: AggregationTemporality.CUMULATIVE,
        dataPointType: DataPointType.HISTOGRAM,
        dataPoints: histogramPoints(metric, startTime, endTime),
      };
    default:
      return null;
  }
}

/** A MetricProducer reading the registry at every collection (a reader's metricProducers option). */
export function registryProducer(registry: Pick<Registry, 'getMetricsAsJSON'>, resource: Resource): MetricProducer {
  // Every total in the registry counts from the moment the process started.
  const startTime = hrTimeOf(performance.timeOrigin);
  return {
    async collect(): Promise<CollectionResult> {
      const metrics = (await registry.getMetricsAsJSON()) as unknown as RegistryMetric[];
      const endTime = hrTimeOf(Date.now());
      const data = metrics.map((metric) => metricDataOf(metric, startTime, endTime)).filter((item): item is MetricData => item !== null);
      return { resourceMetrics: { resource, scopeMetrics: [{ scope: SCOPE, metrics: data }] }, errors: [] };
    },
  };
}
