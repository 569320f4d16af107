// The processes of the verify benchmarks: the service under test (the compiled build or the
// sources under tsx), the reference servers (bare node:http, Fastify alone), the headless product
// of the middleware benchmark and the migrate CLI,
// each a child of the bench process, plus what /proc tells about a child while it runs (resident memory, CPU time).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const PROJECT_DIR = fileURLToPath(new URL('../../', import.meta.url));

/** dist: `npm run build` output, as `npm start` runs it. tsx: the sources, as `npm run dev` does. */
export type Runtime = 'dist' | 'tsx';

/** The node arguments of `npm start` (package.json): the compiled service runs as production runs it. */
function startArguments(): string[] {
  const scripts = (JSON.parse(readFileSync(`${PROJECT_DIR}/package.json`, 'utf8')) as { scripts: Record<string, string> }).scripts;
  const [command, ...args] = (scripts.start ?? '').split(/\s+/);
  if (command !== 'node' || args.length === 0) throw new Error('package.json scripts.start is not a `node ...` command');
  return args;
}

/**
 * node's arguments for the service and the migrate command. `compiledDir` stands in for dist/: a
 * compiled copy of the project laid out as dist/ is (the test suite's, test/support/compiled-sources.ts).
 */
function entries(runtime: Runtime, compiledDir?: string): { service: string[]; migrate: string[] } {
  if (runtime === 'tsx') return { service: ['--import', 'tsx', 'src/main.ts'], migrate: ['--import', 'tsx', 'src/cli/migrate.ts'] };
  if (compiledDir === undefined) return { service: startArguments(), migrate: ['dist/src/cli/migrate.js'] };
  const inCompiled = (arg: string) => arg.replace(/^(\.\/)?dist\//, `${path.resolve(compiledDir)}/`);
  return { service: startArguments().map(inCompiled), migrate: [inCompiled('dist/src/cli/migrate.js')] };
}

/**
 * A child sees none of this shell's variables but the basics, so a LOG_LEVEL or DATABASE_URL
 * exported by the developer cannot change what is measured.
 */
function childEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of ['PATH', 'HOME', 'TMPDIR', 'LANG']) if (process.env[name] !== undefined) env[name] = process.env[name];
  return { ...env, ...vars };
}

export interface Child {
  pid: number;
  process: ChildProcess;
  /** The end of what the child wrote to stderr, for error messages. */
  stderr(): string;
  exited: Promise<number | null>;
  running(): boolean;
  /** SIGTERM, then SIGKILL when it is still running after graceMs. */
  stop(graceMs?: number): Promise<void>;
}

const STDERR_TAIL_CHARS = 16_384;

function startChild(args: string[], vars: Record<string, string>, stdout: 'pipe' | 'ignore' | number): Child {
  const child = spawn(process.execPath, args, { cwd: PROJECT_DIR, env: childEnv(vars), stdio: ['ignore', stdout, 'pipe'] });
  if (child.pid === undefined) throw new Error(`could not start node ${args.join(' ')}`);
  let err = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    err = (err + chunk).slice(-STDERR_TAIL_CHARS);
  });
  const exited = new Promise<number | null>((resolve) => child.once('close', (code: number | null) => resolve(code)));
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    pid: child.pid,
    process: child,
    stderr: () => err,
    exited,
    running,
    async stop(graceMs = 10_000) {
      if (!running()) return;
      child.kill('SIGTERM');
      const ended = await Promise.race([exited.then(() => true), sleep(graceMs, false, { ref: false })]);
      if (!ended && running()) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** A port nothing listens on right now: bind port 0, read the port, release it. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  server.close();
  await once(server, 'close');
  return address.port;
}

export interface Server extends Child {
  baseUrl: string;
}

const REFERENCE_SERVERS = { bare: 'bench/support/bare-server.ts', fastify: 'bench/support/fastify-server.ts' };

/**
 * A child that prints `{"port": N}` as the first line of its stdout once it listens on loopback
 * (startupMs: how long that may take).
 */
async function startListeningChild(what: string, args: string[], vars: Record<string, string>, startupMs: number): Promise<Server> {
  const child = startChild(args, vars, 'pipe');
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start:\n${child.stderr()}`)), startupMs);
    child.process.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const line = out.split('\n', 2);
      if (line.length < 2) return;
      clearTimeout(timer);
      resolve((JSON.parse(line[0]!) as { port: number }).port);
    });
    void child.exited.then(() => reject(new Error(`${what} exited:\n${child.stderr()}`)));
  }).catch(async (error: unknown) => {
    await child.stop();
    throw error;
  });
  return { ...child, baseUrl: `http://127.0.0.1:${port}` };
}

/** A reference server answering `body` to every request: bare node:http, or Fastify alone. */
export function startReferenceServer(kind: keyof typeof REFERENCE_SERVERS, body: string): Promise<Server> {
  return startListeningChild('the reference server', ['--import', 'tsx', REFERENCE_SERVERS[kind]], { BARE_BODY: body }, 15_000);
}

/**
 * The headless product of the middleware benchmark (bench/support/product-server.ts), its
 * configuration in `vars`. With the compiled runtime it imports the workspace packages as a
 * product installs them, their build (dist/, made by `npm run build` with the registry's); under
 * tsx, their sources, which tsx transpiles with esbuild's keepNames: every named closure a call
 * makes then costs an Object.defineProperty, which put 5-6 µs on each of the plugin's requests
 * (BENCHMARKS.md). The middleware variant prints its port only once the registry's change stream
 * is live, which may take a few seconds more.
 */
export function startProductServer(runtime: Runtime, vars: Record<string, string>): Promise<Server> {
  const sources = runtime === 'tsx' ? ['--conditions=tenant-registry-source'] : [];
  return startListeningChild('the product', [...sources, '--import', 'tsx', 'bench/support/product-server.ts'], vars, 30_000);
}

export interface ServiceOptions {
  runtime: Runtime;
  /** The service's configuration; APP_ENV and ADDR are set here. */
  vars: Record<string, string>;
  /** Where the service's stdout (its log) goes: a file descriptor, or nowhere. */
  stdout?: number | 'ignore';
  /** Flags for node itself, e.g. --cpu-prof. */
  nodeArgs?: string[];
  /** With the compiled runtime, a copy of the project to run in place of dist/. */
  compiledDir?: string;
}

const READY_WAIT_MS = 120_000;

/** Starts the service on a free loopback port and waits until GET /healthz answers 200. */
export async function startService(options: ServiceOptions): Promise<Server> {
  const port = await freePort();
  const vars = { APP_ENV: 'dev', ...options.vars, ADDR: `127.0.0.1:${port}` };
  const child = startChild([...(options.nodeArgs ?? []), ...entries(options.runtime, options.compiledDir).service], vars, options.stdout ?? 'ignore');
  const service = { ...child, baseUrl: `http://127.0.0.1:${port}` };
  // A wait, not a measurement: a loaded machine (CI, the test suite) may take long to boot it.
  const deadline = performance.now() + READY_WAIT_MS;
  for (;;) {
    if (!child.running()) throw new Error(`the service exited before it was ready:\n${child.stderr()}`);
    try {
      const response = await fetch(`${service.baseUrl}/healthz`, { signal: AbortSignal.timeout(1_000) });
      await response.arrayBuffer();
      if (response.status === 200) return service;
    } catch {
      // Not listening yet: poll again.
    }
    if (performance.now() > deadline) {
      await child.stop();
      throw new Error(`the service was not ready within ${READY_WAIT_MS / 1000} s:\n${child.stderr()}`);
    }
    await sleep(50);
  }
}

/** `migrate up` on the database at `url`, with the same runtime (and compiled copy) as the service. */
export async function migrateUp(runtime: Runtime, url: string, compiledDir?: string): Promise<string> {
  const child = startChild([...entries(runtime, compiledDir).migrate, 'up'], { APP_ENV: 'dev', DATABASE_URL: url }, 'pipe');
  let out = '';
  child.process.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const code = await child.exited;
  if (code !== 0) throw new Error(`migrate up failed (exit ${code}):\n${child.stderr()}`);
  return out.trim();
}

/** `npm run build`: compiles src/ into dist/ and copies what it reads at run time. */
/** With the compiled runtime, `npm run build` first (said on the console); its seconds, or null under tsx. */
export function buildIfCompiled(runtime: Runtime): number | null {
  if (runtime !== 'dist') return null;
  const seconds = buildDist();
  console.log(`  npm run build: ${seconds.toFixed(1)} s`);
  return seconds;
}

export function buildDist(): number {
  const started = performance.now();
  const result = spawnSync('npm', ['run', '--silent', 'build'], { cwd: PROJECT_DIR, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (result.status !== 0) throw new Error(`npm run build failed:\n${result.stdout}${result.stderr}`);
  return (performance.now() - started) / 1000;
}

const CLOCK_TICKS_PER_S = (() => {
  const ticks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim());
  return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
})();

/** VmRSS (now) and VmHWM (the peak since the process started), in bytes. */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rss: kib('VmRSS') * 1024, peak: kib('VmHWM') * 1024 };
}

/** User and system CPU time of every thread of the process so far, in seconds. */
export function cpuSecondsOf(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces and parentheses; the fields after its last ")" do not.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the line; fields[0] is field 3.
  return { user: Number(fields[11]) / CLOCK_TICKS_PER_S, system: Number(fields[12]) / CLOCK_TICKS_PER_S };
}

/**
 * How often the process's main thread lost its CPU to another runnable task (involuntary
 * context switches so far): on a machine where the load generator shares the cores, a server
 * that wakes it with every answer is preempted often.
 */
export function preemptionsOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8');
  return Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? Number.NaN);
}
