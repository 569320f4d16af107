// Loaded with --import before the service's own modules, so that tracing is running before pg,
// node:http and Fastify are first imported (under ESM a module can only be instrumented through a
// loader hook that is in place when it is loaded):
//
//   node --import ./dist/src/observability/tracing-preload.js dist/src/main.js     (build)
//   node --import tsx --import ./src/observability/tracing-preload.ts src/main.ts  (dev, tests)
//
// With tracing off (no OTEL_EXPORTER_OTLP_ENDPOINT) it does nothing: no loader hook, no SDK.
// With it on, it registers import-in-the-middle's loader hook in its "only the hooked modules"
// mode (every other module loads untouched), starts the SDK, and waits until the loader has
// acknowledged the modules the instrumentations hook before the application's import begins.
// A bad tracing variable stops the process here, with one line on stderr, like config.ts does.
import { register } from 'node:module';
import { startTracing, tracingSettings, TracingConfigError } from './tracing.js';

function fail(message: string): never {
  process.stderr.write(`tenant-registry: ${message}\n`);
  process.exit(1);
}

let settings: ReturnType<typeof tracingSettings>;
try {
  settings = tracingSettings();
} catch (error) {
  if (error instanceof TracingConfigError) fail(error.message);
  throw error;
}

if (settings) {
  const { createAddHookMessageChannel } = await import('import-in-the-middle');
  const { registerOptions, waitForAllMessagesAcknowledged } = createAddHookMessageChannel();
  register('import-in-the-middle/hook.mjs', import.meta.url, registerOptions);
  await startTracing(settings);
  await waitForAllMessagesAcknowledged();
}
