// OpenTelemetry traces: spans of incoming HTTP requests (node:http), of Fastify's request, hooks
// and handlers (@fastify/otel), of PostgreSQL queries (pg) and of outgoing fetch() calls (undici:
// Keycloak, OIDC discovery), exported over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT.
//
// Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: then
// nothing here loads the SDK, no module is hooked and the log mixin is absent, so an untraced
// process pays nothing. The SDK itself is only loaded (dynamic import) by startTracing(), which
// tracing-preload.ts calls before the application's modules are imported: under ESM, pg and
// node:http can only be instrumented if the hooks are in place before they are first imported.
//
// Whether traces are sent, and as http/protobuf or http/json, is config.ts's to decide and check
// (Config['telemetry'].traces; OTEL_SDK_DISABLED=true turns it off). Everything else follows the
// standard OTEL_* variables, read by the SDK itself: the endpoint (the base URL; /v1/traces is
// appended, or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT used as is), OTEL_EXPORTER_OTLP_HEADERS,
// _TIMEOUT, _COMPRESSION, OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_*, and the resource's variables
// (resource.ts).
import { diag, isSpanContextValid, trace } from '@opentelemetry/api';
import type { Span, SpanProcessor } from '@opentelemetry/sdk-trace-node';
import type { Config } from '../config.js';
import { installDiagLogger } from './otel-diag.js';
import { redactShapes } from './redact.js';
import { serviceResource } from './resource.js';

/** How to send traces (config.ts decides whether: Config['telemetry'].traces). */
export type TracingSettings = NonNullable<Config['telemetry']['traces']>;

// Kubernetes probes every few seconds; a trace per probe is noise and export cost.
const PROBE_PATHS = new Set(['/healthz', '/readyz']);
const DEFAULT_SHUTDOWN_TIMEOUT_MS = 3_000;

/** The string values of attributes that carry a secret's shape, redacted. */
function redactedValues(attributes: Record<string, unknown>): [string, string][] {
  const changed: [string, string][] = [];
  for (const [name, value] of Object.entries(attributes)) {
    if (typeof value !== 'string') continue;
    const redacted = redactShapes(value);
    if (redacted !== value) changed.push([name, redacted]);
  }
  return changed;
}

/**
 * Keeps API keys and JWTs out of spans as redact.ts keeps them out of log lines: a key typed into
 * a URL path or query would otherwise travel in url.path, url.query or an exception's message.
 * Runs as each span ends, before the batch takes it (onEnding: the span is still writable).
 */
const redactingSpanProcessor: SpanProcessor = {
  onStart() {},
  onEnding(span: Span) {
    for (const [name, redacted] of redactedValues(span.attributes)) span.setAttribute(name, redacted);
    for (const event of span.events) {
      if (event.attributes) for (const [name, redacted] of redactedValues(event.attributes)) event.attributes[name] = redacted;
    }
    if (span.status.message) span.status.message = redactShapes(span.status.message);
  },
  onEnd() {},
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
};

interface TracingState {
  shutdown: () => Promise<void>;
}

// Kept on globalThis, not in a module variable: the preload and service.ts must see the same state
// even if they reach this file under two URLs (dist/ and src/, a query suffix of a loader).
const STATE = Symbol.for('tenant-registry.tracing');
type WithState = typeof globalThis & { [STATE]?: TracingState };
const state = () => (globalThis as WithState)[STATE];

/** True once startTracing() has run in this process. */
export function isTracingOn(): boolean {
  return state() !== undefined;
}

/**
 * True when the configuration asks for traces but the process was started without the preload
 * (plain `node dist/src/main.js`): service.ts warns, since no span would ever be sent.
 */
export function tracingWithoutPreload(telemetry: Config['telemetry']): boolean {
  return telemetry.traces !== null && !isTracingOn();
}

/**
 * Starts the tracer provider, the OTLP exporter and the instrumentations. Call it once, before
 * the application's modules are imported (tracing-preload.ts does); a second call is a no-op.
 */
export async function startTracing(settings: TracingSettings): Promise<void> {
  if (isTracingOn()) return;
  installDiagLogger();

  const [
    { NodeTracerProvider, BatchSpanProcessor },
    { registerInstrumentations },
    { HttpInstrumentation },
    { PgInstrumentation },
    { UndiciInstrumentation },
    { FastifyOtelInstrumentation },
    resource,
  ] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/instrumentation'),
    import('@opentelemetry/instrumentation-http'),
    import('@opentelemetry/instrumentation-pg'),
    import('@opentelemetry/instrumentation-undici'),
    import('@fastify/otel'),
    serviceResource(),
  ]);
  const exporter =
    settings.protocol === 'http/json'
      ? new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter()
      : new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter();

  // The exporter reads the endpoint, headers, timeout and compression from OTEL_EXPORTER_OTLP_*;
  // the batch processor its delay and sizes from OTEL_BSP_*; the provider the sampler from
  // OTEL_TRACES_SAMPLER (default parentbased_always_on).
  const provider = new NodeTracerProvider({ resource, spanProcessors: [redactingSpanProcessor, new BatchSpanProcessor(exporter)] });
  provider.register(); // the global tracer provider, AsyncLocalStorage context, W3C propagation

  const isProbe = (url: string | undefined) => PROBE_PATHS.has((url ?? '').split('?')[0] ?? '');
  const unregister = registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new HttpInstrumentation({ ignoreIncomingRequestHook: (request) => isProbe(request.url) }),
      // Fastify 5: the Fastify team's instrumentation; it adds its plugin to every Fastify instance
      // when it is created (diagnostics channel fastify.initialization), so app.ts needs no change.
      new FastifyOtelInstrumentation({ registerOnInitialization: true, ignorePaths: (route) => isProbe(route.url) }),
      // Only queries made while serving something: the background rounds (key usage, trial
      // expiry, the LISTEN connection) would each be a trace of one span.
      new PgInstrumentation({ requireParentSpan: true }),
      new UndiciInstrumentation({ requireParentforSpans: true }),
    ],
  });

  (globalThis as WithState)[STATE] = {
    async shutdown() {
      unregister();
      await provider.shutdown(); // flushes the batch processor, then shuts the exporter down
    },
  };
}

/**
 * Flushes the spans still buffered and stops tracing; a no-op when tracing is off. Never throws
 * and never takes longer than timeoutMs: a collector that is down must not hold up shutdown.
 */
export async function shutdownTracing(timeoutMs = DEFAULT_SHUTDOWN_TIMEOUT_MS): Promise<void> {
  const current = state();
  if (!current) return;
  (globalThis as WithState)[STATE] = undefined;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
    timer.unref();
  });
  try {
    await Promise.race([current.shutdown(), deadline]);
  } catch (error) {
    diag.error('flushing spans at shutdown failed', error);
  } finally {
    clearTimeout(timer);
  }
}

/** The ids of the active span, for a log line: {} outside any span. */
export function traceIdOf(): { trace_id?: string; span_id?: string } {
  const span = trace.getActiveSpan();
  if (!span) return {};
  const context = span.spanContext();
  if (!isSpanContextValid(context)) return {};
  return { trace_id: context.traceId, span_id: context.spanId };
}

/**
 * pino's `mixin` option: adds trace_id and span_id to every line written inside a span, so the
 * lines of one request carry its trace. undefined when tracing is off (no call per line at all).
 */
export function traceLogMixin(): (() => Record<string, unknown>) | undefined {
  return isTracingOn() ? traceIdOf : undefined;
}
