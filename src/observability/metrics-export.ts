// The metrics of GET /metrics pushed over OTLP as well (OTEL_METRICS_EXPORTER includes otlp): a
// periodic reader collects prom-client's registry (registry-producer.ts) every
// OTEL_METRIC_EXPORT_INTERVAL and posts it to the receiver. The meter provider is only the
// reader's anchor: it has no instruments of its own and is not the global one, so nothing else
// (the HTTP instrumentation's own duration metric, say) joins the export beside the registry.
//
// One export runs at a time and gives up at the interval (at most 30 s): a receiver that is down
// or hangs costs that round's export, never a request, and the next round starts afresh.
import type { OtlpProtocol } from '../config.js';
import { metricsRegistry } from './metrics.js';
import { installDiagLogger } from './otel-diag.js';
import { registryProducer } from './registry-producer.js';
import { serviceResource } from './resource.js';

// The specification's default export timeout, shortened to the interval when that is shorter
// (a round must end before the next begins).
const MAX_EXPORT_TIMEOUT_MS = 30_000;

export interface MetricsExport {
  /** Exports once more (the last values), then stops. */
  shutdown(): Promise<void>;
}

export async function startMetricsExport(settings: { protocol: OtlpProtocol; exportIntervalMs: number }): Promise<MetricsExport> {
  installDiagLogger();
  const [{ MeterProvider, PeriodicExportingMetricReader }, resource] = await Promise.all([import('@opentelemetry/sdk-metrics'), serviceResource()]);
  // The exporter reads the endpoint, headers, timeout and compression from OTEL_EXPORTER_OTLP_*.
  const exporter =
    settings.protocol === 'http/json'
      ? new (await import('@opentelemetry/exporter-metrics-otlp-http')).OTLPMetricExporter()
      : new (await import('@opentelemetry/exporter-metrics-otlp-proto')).OTLPMetricExporter();
  const reader = new PeriodicExportingMetricReader({
    exporter,
    exportIntervalMillis: settings.exportIntervalMs,
    exportTimeoutMillis: Math.min(settings.exportIntervalMs, MAX_EXPORT_TIMEOUT_MS),
    metricProducers: [registryProducer(metricsRegistry, resource)],
  });
  const provider = new MeterProvider({ resource, readers: [reader] });
  return { shutdown: () => provider.shutdown() };
}
