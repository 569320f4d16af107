// Log lines as OTLP log records, beside standard output (OTEL_LOGS_EXPORTER=otlp). The bridge
// takes the line pino has finished and logger.ts has redacted: the record is made from exactly
// the text that went to stdout, so no secret can reach the receiver that the line did not carry,
// and nothing hooks pino itself. The fields of the line become the record's: its level the
// severity, `time` the timestamp, `msg` the body, trace_id/span_id its trace context, `err` the
// exception attributes, everything else attributes. pid, hostname and service are what the
// resource already says (resource.ts).
//
// Sending never touches a request: emit() puts the record in a bounded queue, a batch leaves each
// second in the background, and a receiver that is down or slow costs the records that do not fit
// (dropped past the queue's bound), never a request's time.
import { ROOT_CONTEXT, TraceFlags, context, diag, trace, type Context } from '@opentelemetry/api';
import { SeverityNumber, type LogAttributes, type LogRecord } from '@opentelemetry/api-logs';
import type { OtlpProtocol } from '../config.js';
import { installDiagLogger } from './otel-diag.js';
import { serviceResource } from './resource.js';

// pino's numeric levels and OpenTelemetry's severities (the log data model's mapping).
const SEVERITIES = new Map<number, { number: SeverityNumber; text: string }>([
  [10, { number: SeverityNumber.TRACE, text: 'trace' }],
  [20, { number: SeverityNumber.DEBUG, text: 'debug' }],
  [30, { number: SeverityNumber.INFO, text: 'info' }],
  [40, { number: SeverityNumber.WARN, text: 'warn' }],
  [50, { number: SeverityNumber.ERROR, text: 'error' }],
  [60, { number: SeverityNumber.FATAL, text: 'fatal' }],
]);

// A second of lines per batch (the specification's default delay). 2,048 queued records are
// minutes of this service's ordinary logging; past them a receiver that does not keep up loses
// the newest records, not the process's memory. Each export gives up after 10 s.
const BATCH = { scheduledDelayMillis: 1_000, maxQueueSize: 2_048, maxExportBatchSize: 512, exportTimeoutMillis: 10_000 };

/** Fields of the line that are not attributes: they become the record's own, or the resource says them. */
const NOT_ATTRIBUTES = new Set(['level', 'time', 'msg', 'trace_id', 'span_id', 'err', 'pid', 'hostname', 'service']);

const HEX_TRACE_ID = /^[0-9a-f]{32}$/;
const HEX_SPAN_ID = /^[0-9a-f]{16}$/;

/**
 * The span the line was written in, as the context a record carries; undefined outside one. The
 * line is written synchronously inside its span, so the active context is that span's, with its
 * sampling flag; ids alone (a line from elsewhere) make a context that claims no sampling.
 */
function contextOf(line: Record<string, unknown>, active: Context): Context | undefined {
  const { trace_id: traceId, span_id: spanId } = line;
  if (typeof traceId !== 'string' || typeof spanId !== 'string' || !HEX_TRACE_ID.test(traceId) || !HEX_SPAN_ID.test(spanId)) return undefined;
  const current = trace.getSpanContext(active);
  if (current?.traceId === traceId && current.spanId === spanId) return active;
  return trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId, traceFlags: TraceFlags.NONE, isRemote: false });
}

/** pino's serialized error ({type, message, stack, ...}) as the semantic conventions' exception attributes. */
function exceptionAttributes(err: unknown): LogAttributes {
  if (typeof err !== 'object' || err === null) return {};
  const { type, message, stack, ...rest } = err as Record<string, unknown>;
  return {
    ...(typeof type === 'string' ? { 'exception.type': type } : {}),
    ...(typeof message === 'string' ? { 'exception.message': message } : {}),
    ...(typeof stack === 'string' ? { 'exception.stacktrace': stack } : {}),
    // What else the error carried (a SQLSTATE code, a cause) stays under err.
    ...(Object.keys(rest).length > 0 ? { err: rest as LogAttributes } : {}),
  };
}

/** One written JSON line as a log record; null for a line that is not a JSON object. */
export function logRecordOf(text: string, active: Context = context.active()): LogRecord | null {
  let line: unknown;
  try {
    line = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof line !== 'object' || line === null || Array.isArray(line)) return null;
  const fields = line as Record<string, unknown>;
  const severity = typeof fields.level === 'number' ? SEVERITIES.get(fields.level) : undefined;
  const attributes: LogAttributes = exceptionAttributes(fields.err);
  for (const [name, value] of Object.entries(fields)) {
    if (!NOT_ATTRIBUTES.has(name)) attributes[name] = value as LogAttributes[string];
  }
  const spanContext = contextOf(fields, active);
  return {
    ...(typeof fields.time === 'number' ? { timestamp: fields.time } : {}),
    ...(severity ? { severityNumber: severity.number, severityText: severity.text } : {}),
    ...(typeof fields.msg === 'string' ? { body: fields.msg } : {}),
    ...(spanContext ? { context: spanContext } : {}),
    attributes,
  };
}

export interface LogExport {
  /** Takes one written line (logger.ts's copy of stdout); never throws, never waits. */
  write(line: string): void;
  /** Sends what is queued, then stops; bounded by the batch's export timeout. */
  shutdown(): Promise<void>;
}

/** Starts the logger provider, its batch and the OTLP exporter (endpoint, headers, timeout from OTEL_EXPORTER_OTLP_*). */
export async function startLogExport(settings: { protocol: OtlpProtocol }): Promise<LogExport> {
  installDiagLogger();
  const [{ LoggerProvider, BatchLogRecordProcessor }, resource] = await Promise.all([import('@opentelemetry/sdk-logs'), serviceResource()]);
  const exporter =
    settings.protocol === 'http/json'
      ? new (await import('@opentelemetry/exporter-logs-otlp-http')).OTLPLogExporter()
      : new (await import('@opentelemetry/exporter-logs-otlp-proto')).OTLPLogExporter();
  // Not the global logger provider: nothing else in the process should emit records through it.
  const provider = new LoggerProvider({ resource, processors: [new BatchLogRecordProcessor({ exporter, ...BATCH })] });
  const logger = provider.getLogger('tenant-registry');
  return {
    write(line) {
      try {
        const record = logRecordOf(line);
        if (record) logger.emit(record);
      } catch (error) {
        // The line is on stdout already; the record alone is lost, and the request never notices.
        diag.error('a log line could not become a log record', error);
      }
    },
    shutdown: () => provider.shutdown(),
  };
}
