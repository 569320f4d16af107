// Loaded with --import before the service's own modules, so that tracing is running before pg,
// node:http and Fastify are first imported (under ESM a module can only be instrumented through a
// loader hook that is in place when it is loaded):
//
//   node --import ./dist/src/observability/tracing-preload.js dist/src/main.js     (build; the tests' compiled copy alike)
//   node --import tsx --import ./src/observability/tracing-preload.ts src/main.ts  (dev)
//
// With tracing off (no OTLP endpoint for traces) it does nothing: no loader hook, no SDK.
// With it on, it registers import-in-the-middle's loader hook in its "only the hooked modules"
// mode (every other module loads untouched), starts the SDK, and waits until the loader has
// acknowledged the modules the instrumentations hook before the application's import begins.
// Metrics and logs need no hook: service.ts starts their export once the configuration is read.
// First of all, before a full GC can collect them: the shape of nextTick's entries (tick-shape.ts).
import '../tick-shape.js';
import { register } from 'node:module';
import { ConfigError, loadConfig } from '../config.js';
import { startTracing } from './tracing.js';

// The configuration as main.ts reads it, by the same rules. A bad one starts no tracing here:
// main.ts reads it again and stops the process with the one line naming every bad variable.
let traces: ReturnType<typeof loadConfig>['telemetry']['traces'] = null;
try {
  traces = loadConfig().telemetry.traces;
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
}

if (traces) {
  const { createAddHookMessageChannel } = await import('import-in-the-middle');
  const { registerOptions, waitForAllMessagesAcknowledged } = createAddHookMessageChannel();
  register('import-in-the-middle/hook.mjs', import.meta.url, registerOptions);
  await startTracing(traces);
  await waitForAllMessagesAcknowledged();
}
