// Metrics and logs over OTLP, started by service.ts once the configuration is read (traces start
// earlier, in the tracing preload, because they hook modules as they load; these hook nothing).
// Each SDK is imported only when its signal is on: a process that pushes nothing loads neither.
import type { Config } from '../config.js';

const DEFAULT_SHUTDOWN_TIMEOUT_MS = 3_000;

export interface OtlpExports {
  /** For createLogger(): each written line is also sent as a log record. Undefined: logs are not exported. */
  copyLogLine: ((line: string) => void) | undefined;
  /**
   * Sends what is still buffered (the last metrics, the last lines) and stops. Never throws and
   * never takes longer than timeoutMs: a receiver that is down must not hold up shutdown.
   */
  shutdown(timeoutMs?: number): Promise<void>;
}

export async function startOtlpExports(telemetry: Config['telemetry']): Promise<OtlpExports> {
  const metrics = telemetry.metrics ? await (await import('./metrics-export.js')).startMetricsExport(telemetry.metrics) : null;
  const logs = telemetry.logs ? await (await import('./log-export.js')).startLogExport(telemetry.logs) : null;
  return {
    copyLogLine: logs ? (line) => logs.write(line) : undefined,
    async shutdown(timeoutMs = DEFAULT_SHUTDOWN_TIMEOUT_MS) {
      if (!metrics && !logs) return;
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
        timer.unref();
      });
      // Each failure is the SDK's to report (stderr, otel-diag.ts); one must not keep the other from flushing.
      const done = Promise.allSettled([metrics?.shutdown(), logs?.shutdown()]);
      await Promise.race([done, deadline]);
      clearTimeout(timer);
    },
  };
}
