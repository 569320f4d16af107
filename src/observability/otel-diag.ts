// Where the OpenTelemetry SDK's own complaints go (an export that failed, a queue that overflowed):
// one line each on stderr, beside the service's other boot and failure lines. Never into the pino
// logger: with logs exported over OTLP, a failing log export would log about itself forever.
import { diag, DiagLogLevel, type DiagLogger } from '@opentelemetry/api';

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

// On globalThis: the tracing preload and service.ts may reach this file under two URLs, and a second
// setLogger() would itself warn that it replaced the first.
const INSTALLED = Symbol.for('tenant-registry.otel-diag');
type WithFlag = typeof globalThis & { [INSTALLED]?: true };

/** Sends the SDK's diagnostics to stderr at OTEL_LOG_LEVEL (default WARN); once per process. */
export function installDiagLogger(): void {
  const global = globalThis as WithFlag;
  if (global[INSTALLED]) return;
  global[INSTALLED] = true;
  diag.setLogger(stderrDiagLogger(), DIAG_LEVELS[(process.env.OTEL_LOG_LEVEL ?? '').toUpperCase()] ?? DiagLogLevel.WARN);
}
