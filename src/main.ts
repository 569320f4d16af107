// The process: the configuration first, then the service (service.ts). A configuration that
// cannot run stops the process with one line naming every bad variable before the service's own
// modules load: about 0.5 s of CPU, where loading them all first took twice that (what a
// crash-looping container pays at every restart).
// First of all, before a full GC can collect them: the shape of nextTick's entries (tick-shape.ts).
import './tick-shape.js';
import { ConfigError, loadConfig, type Config } from './config.js';

function fail(message: string): never {
  // One line on stderr: the orchestrator shows it as the reason the container did not start.
  process.stderr.write(`tenant-registry: ${message}\n`);
  process.exit(1);
}

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) fail(error.message);
  throw error;
}
const { runService } = await import('./service.js');
runService(config).catch((error: unknown) => fail(error instanceof Error ? error.message : String(error)));
