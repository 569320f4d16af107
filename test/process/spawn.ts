// The service as a real child process, started as production starts it (the tracing preload, then
// main) from the run's compiled copy of src/, on a free loopback port, its output captured,
// readiness awaited by polling /healthz. Every child started here is
// remembered so that stopAll() in afterEach leaves no process behind, even after a failure.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { once } from 'node:events';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inject } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { CONFIG_VARIABLES } from '../../src/config.js';

export const PROJECT_DIR = fileURLToPath(new URL('../../', import.meta.url));

/**
 * node's arguments for an entry point of src/ ('src/main.ts', 'src/cli/migrate.ts', ...), the
 * tracing preload first when `preload` is set, as package.json's start script has it:
 *  - in the main suite, the run's compiled copy of src/ (test/support/compiled-sources.ts says why);
 *  - elsewhere (a configuration without that global setup), the sources through tsx.
 * Both with V8's baseline WebAssembly compiler only (vitest.config.ts says why), which takes seconds
 * of CPU off the start of a service on the embedded database.
 */
export function entryArgs(entry: string, options: { preload?: boolean } = {}): string[] {
  const compiled = inject('compiledDir');
  const file = (source: string) => (compiled ? path.join(compiled, source.replace(/\.ts$/, '.js')) : `./${source}`);
  const preload = options.preload ? ['--import', file('src/observability/tracing-preload.ts')] : [];
  return ['--liftoff-only', ...(compiled ? [] : ['--import', 'tsx']), ...preload, file(entry)];
}

/**
 * How long a test waits for a spawned process to become ready, to print an expected line, or to
 * exit when the test does not measure how soon: a wait, not a measurement. A busy machine (CI, or
 * the parallel half of the suite beside it) can take tens of seconds to start a service;
 * a generous wait only delays the report of a real failure, it never hides one.
 */
export const PROCESS_WAIT_MS = 120_000;

/** The vitest timeout of a test or hook that spawns processes and waits for them: two waits in a row, and the test's own work. */
export const PROCESS_TEST_TIMEOUT_MS = 2 * PROCESS_WAIT_MS + 60_000;

// Every variable config.ts and the tracing preload read; the child gets none of them from the test
// runner's environment, only what a test passes, so a developer's shell cannot change what a test sees.
const CHILD_VARIABLES = [...CONFIG_VARIABLES, 'OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_SDK_DISABLED'];

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** performance.now() when the process ended. */
  at: number;
}

export interface ServiceProcess {
  child: ChildProcess;
  port: number;
  baseUrl: string;
  stdout(): string;
  stderr(): string;
  isRunning(): boolean;
  /** Resolves once the process has ended and its output is fully read. */
  exited: Promise<Exit>;
  /** The exit, or null if the process is still running after timeoutMs. */
  waitForExit(timeoutMs: number): Promise<Exit | null>;
  /** Resolves when stdout contains text; rejects at the deadline or when the process ends first. */
  waitForOutput(text: string, timeoutMs: number): Promise<void>;
}

const running = new Set<ServiceProcess>();

/** The first port of the kernel's ephemeral range: outgoing connections and listen(0) take theirs from it. */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 0 ? low : 32_768;
  } catch {
    return 32_768;
  }
}
const EPHEMERAL_LOW = ephemeralLow();
const CHOSEN_LOW = 10_000;

async function canListen(port: number): Promise<boolean> {
  const server = net.createServer();
  try {
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
  } catch {
    return false;
  }
  server.close();
  await once(server, 'close');
  return true;
}

/**
 * A port nothing listens on right now, for a process that binds it a moment later. It is chosen
 * at random below the kernel's ephemeral range: a port from that range (bind port 0) could be
 * taken by any outgoing connection, and with other test files running beside this one there are
 * thousands of those in the seconds a child takes to start.
 */
export async function freePort(): Promise<number> {
  if (EPHEMERAL_LOW - CHOSEN_LOW >= 1_000) {
    for (let attempt = 0; attempt < 100; attempt += 1) {
      const port = CHOSEN_LOW + randomInt(EPHEMERAL_LOW - CHOSEN_LOW);
      if (await canListen(port)) return port;
    }
  }
  // No room below the ephemeral range (an unusual kernel setting): take whatever port 0 gives.
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  server.close();
  await once(server, 'close');
  return address.port;
}

function childEnv(overrides: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of CHILD_VARIABLES) delete env[name];
  // No drain delay unless a test asks for one: most tests stop the service and wait for it.
  return { ...env, SHUTDOWN_DRAIN_SECONDS: '0', ...overrides };
}

function track(child: ChildProcess, port: number): ServiceProcess {
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  let exitedAt = 0;
  child.once('exit', () => (exitedAt = performance.now()));
  const exited = new Promise<Exit>((resolve) => {
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      resolve({ code, signal, at: exitedAt || performance.now() });
    });
  });

  const service: ServiceProcess = {
    child,
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    stdout: () => out,
    stderr: () => err,
    isRunning: () => child.exitCode === null && child.signalCode === null,
    exited,
    async waitForExit(timeoutMs) {
      const timeout = sleep(timeoutMs, null, { ref: false });
      return Promise.race([exited, timeout]);
    },
    async waitForOutput(text, timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      while (!out.includes(text)) {
        if (!service.isRunning()) throw new Error(`process ended before printing ${JSON.stringify(text)}\n${err}`);
        if (performance.now() > deadline) throw new Error(`no ${JSON.stringify(text)} within ${timeoutMs} ms\n${out}`);
        await sleep(20);
      }
    },
  };
  running.add(service);
  void exited.then(() => running.delete(service));
  return service;
}

/**
 * The database of a service whose test chose none (neither DATABASE_URL nor EMBEDDED_DB_DIR): a
 * copy of the run's migrated embedded database (test/support/pglite-template.ts) in a directory
 * of its own, which opens in about a second where a new one runs initdb for several. The test
 * that is about the true default passes EMBEDDED_DB_DIR='' (memory). `remove` deletes the copy
 * once the process has ended.
 */
export function embeddedDatabaseFor(env: Record<string, string>): { env: Record<string, string>; remove(): void } {
  const template = inject('pgliteTemplateDir');
  if (!template || 'DATABASE_URL' in env || 'EMBEDDED_DB_DIR' in env) return { env: {}, remove: () => {} };
  const dir = mkdtempSync(path.join(tmpdir(), 'tenant-registry-service-'));
  cpSync(template, path.join(dir, 'db'), { recursive: true });
  return { env: { EMBEDDED_DB_DIR: path.join(dir, 'db') }, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Starts the service (src/main.ts, after the tracing preload) on 127.0.0.1:<port> without waiting for it. */
export function spawnService(env: Record<string, string> = {}, port = 0): ServiceProcess {
  const database = embeddedDatabaseFor(env);
  // Started as production starts it: with the tracing preload, which does nothing while tracing is off.
  const child = spawn(process.execPath, entryArgs('src/main.ts', { preload: true }), {
    cwd: PROJECT_DIR,
    env: childEnv({ ADDR: `127.0.0.1:${port}`, LOG_LEVEL: 'warn', ...database.env, ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const service = track(child, port);
  void service.exited.then(() => database.remove());
  return service;
}

/** Polls GET /healthz until it answers 200; fails fast if the process ends, or at the deadline. */
export async function waitUntilReady(service: ServiceProcess, timeoutMs = PROCESS_WAIT_MS): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (!service.isRunning()) {
      const exit = await service.exited;
      throw new Error(`service exited (${exit.code ?? exit.signal}) before it was ready:\n${service.stderr()}`);
    }
    try {
      const response = await fetch(`${service.baseUrl}/healthz`, { signal: AbortSignal.timeout(1_000) });
      await response.arrayBuffer();
      if (response.status === 200) return;
    } catch {
      // Not listening yet (connection refused) or not answering yet: poll again.
    }
    if (performance.now() > deadline) throw new Error(`service not ready within ${timeoutMs} ms:\n${service.stderr()}`);
    await sleep(50);
  }
}

/** Spawns the service on a free port and waits until it is ready. */
export async function startService(env: Record<string, string> = {}): Promise<ServiceProcess> {
  const service = spawnService(env, await freePort());
  await waitUntilReady(service);
  return service;
}

/** Sends a signal and waits for the exit; null if the process is still running after timeoutMs. */
export async function stopService(
  service: ServiceProcess,
  signal: NodeJS.Signals = 'SIGTERM',
  timeoutMs = PROCESS_WAIT_MS,
): Promise<Exit | null> {
  service.child.kill(signal);
  return service.waitForExit(timeoutMs);
}

/** SIGKILLs every child still running and waits for each to end. For afterEach/afterAll. */
export async function stopAll(): Promise<void> {
  const left = [...running];
  for (const service of left) service.child.kill('SIGKILL');
  await Promise.all(left.map((service) => service.exited));
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the migrate command (src/cli/migrate.ts) with `args` to completion. */
export async function runMigrate(args: string[], env: Record<string, string>): Promise<CommandResult> {
  const child = spawn(process.execPath, [...entryArgs('src/cli/migrate.ts'), ...args], {
    cwd: PROJECT_DIR,
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const service = track(child, 0);
  const exit = await service.exited;
  return { code: exit.code, stdout: service.stdout(), stderr: service.stderr() };
}

/** A token from the service's embedded development issuer (APP_ENV=dev without KEYCLOAK_ISSUER). */
export async function devToken(baseUrl: string, roles: string[] = ['platform_admin']): Promise<string> {
  const response = await fetch(`${baseUrl}/dev/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ roles }),
  });
  if (!response.ok) throw new Error(`POST /dev/token answered ${response.status}`);
  return ((await response.json()) as { access_token: string }).access_token;
}
