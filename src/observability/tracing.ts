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
// Everything else follows the standard OTEL_* variables, read by the SDK itself: the endpoint
// (the base URL; /v1/traces is appended, or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT used as is),
// OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf, the default, or http/json; grpc is refused),
// OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION, OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_*,
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; OTEL_SDK_DISABLED=true turns tracing off.
import { diag, DiagLogLevel, isSpanContextValid, trace, type DiagLogger } from '@opentelemetry/api';

/** What startTracing() needs, read from the environment; null: tracing is off. */
export interface TracingSettings {
  protocol: 'http/protobuf' | 'http/json';
}

/** A tracing variable that breaks its rule; one line, naming the variable, never its value. */
export class TracingConfigError extends Error {
  constructor(readonly variable: string, expected: string) {
    // Endpoints and headers may carry credentials (user:password@, an API key): never echoed.
    super(`invalid ${variable}: expected ${expected}`);
    this.name = 'TracingConfigError';
  }
}

const PROTOCOLS = ['http/protobuf', 'http/json'] as const;
// Kubernetes probes every few seconds; a trace per probe is noise and export cost.
const PROBE_PATHS = new Set(['/healthz', '/readyz']);
const DEFAULT_SHUTDOWN_TIMEOUT_MS = 3_000;

const nonEmpty = (value: string | undefined) => (value === undefined || value.trim() === '' ? undefined : value.trim());

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
  } catch {
    return false;
  }
}

/** Reads and checks the variables that decide whether and how to trace; throws TracingConfigError. */
export function tracingSettings(env: NodeJS.ProcessEnv = process.env): TracingSettings | null {
  if (nonEmpty(env.OTEL_SDK_DISABLED)?.toLowerCase() === 'true') return null;
  const endpoints = ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_ENDPOINT'] as const;
  const set = endpoints.filter((name) => nonEmpty(env[name]) !== undefined);
  if (set.length === 0) return null;
  for (const name of set) {
    if (!isHttpUrl(nonEmpty(env[name])!)) throw new TracingConfigError(name, 'an http(s) URL of an OTLP/HTTP receiver');
  }
  const protocolVariable = nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL)
    ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'
    : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = nonEmpty(env[protocolVariable]) ?? 'http/protobuf';
  if (!(PROTOCOLS as readonly string[]).includes(protocol)) {
    throw new TracingConfigError(protocolVariable, `one of ${PROTOCOLS.join(', ')}`);
  }
  return { protocol: protocol as TracingSettings['protocol'] };
}

interface TracingState {
  shutdown: () => Promise<void>;
}

// Kept on globalThis, not in a module variable: the preload and main.ts must see the same state
// even if they reach this file under two URLs (dist/ and src/, a query suffix of a loader).
const STATE = Symbol.for('tenant-registry.tracing');
type WithState = typeof globalThis & { [STATE]?: TracingState };
const state = () => (globalThis as WithState)[STATE];

/** True once startTracing() has run in this process. */
export function isTracingOn(): boolean {
  return state() !== undefined;
}

/**
 * True when the environment asks for traces but the process was started without the preload
 * (plain `node dist/src/main.js`): main.ts warns, since no span would ever be sent.
 */
export function tracingWithoutPreload(env: NodeJS.ProcessEnv = process.env): boolean {
  if (isTracingOn()) return false;
  try {
    return tracingSettings(env) !== null;
  } catch {
    return true;
  }
}

/** A diag argument as short text: an error's message, not its stack (the SDK passes errors as JSON). */
function shortText(value: unknown): string {
  if (value instanceof Error) return value.message;
  if (typeof value === 'string') {
    if (!value.startsWith('{')) return value;
    try {
      const parsed = JSON.parse(value) as { message?: unknown };
      return typeof parsed.message === 'string' ? parsed.message : value;
    } catch {
      return value;
    }
  }
  return JSON.stringify(value) ?? String(value);
}

/** The OTel SDK's own warnings and errors (an export that failed) as one line each on stderr. */
function stderrDiagLogger(): DiagLogger {
  const write = (level: string) => (message: string, ...args: unknown[]) => {
    const text = [message, ...args].map(shortText).join(' ').replace(/\s*\n\s*/g, ' ');
    process.stderr.write(`tenant-registry: otel ${level}: ${text}\n`);
  };
  return { error: write('error'), warn: write('warn'), info: write('info'), debug: write('debug'), verbose: write('verbose') };
}

const DIAG_LEVELS: Record<string, DiagLogLevel> = {
  NONE: DiagLogLevel.NONE,
  ERROR: DiagLogLevel.ERROR,
  WARN: DiagLogLevel.WARN,
  INFO: DiagLogLevel.INFO,
  DEBUG: DiagLogLevel.DEBUG,
  VERBOSE: DiagLogLevel.VERBOSE,
  ALL: DiagLogLevel.ALL,
};

/**
 * Starts the tracer provider, the OTLP exporter and the instrumentations. Call it once, before
 * the application's modules are imported (tracing-preload.ts does); a second call is a no-op.
 */
export async function startTracing(settings: TracingSettings): Promise<void> {
  if (isTracingOn()) return;
  diag.setLogger(stderrDiagLogger(), DIAG_LEVELS[(process.env.OTEL_LOG_LEVEL ?? '').toUpperCase()] ?? DiagLogLevel.WARN);

  const [
    { NodeTracerProvider, BatchSpanProcessor },
    { resourceFromAttributes, detectResources, envDetector, hostDetector, serviceInstanceIdDetector },
    { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION },
    { registerInstrumentations },
    { HttpInstrumentation },
    { PgInstrumentation },
    { UndiciInstrumentation },
    { FastifyOtelInstrumentation },
    { SERVICE_VERSION },
  ] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/semantic-conventions'),
    import('@opentelemetry/instrumentation'),
    import('@opentelemetry/instrumentation-http'),
    import('@opentelemetry/instrumentation-pg'),
    import('@opentelemetry/instrumentation-undici'),
    import('@fastify/otel'),
    import('../version.js'),
  ]);
  const exporter =
    settings.protocol === 'http/json'
      ? new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter()
      : new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter();

  // Precedence, lowest first: the SDK's defaults, this service's name and version, what the host
  // and the environment say (OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win, as everywhere).
  const resource = resourceFromAttributes({
    [ATTR_SERVICE_NAME]: 'tenant-registry',
    [ATTR_SERVICE_VERSION]: SERVICE_VERSION,
  }).merge(detectResources({ detectors: [hostDetector, serviceInstanceIdDetector, envDetector] }));

  // The exporter reads the endpoint, headers, timeout and compression from OTEL_EXPORTER_OTLP_*;
  // the batch processor its delay and sizes from OTEL_BSP_*; the provider the sampler from
  // OTEL_TRACES_SAMPLER (default parentbased_always_on).
  const provider = new NodeTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(exporter)] });
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
