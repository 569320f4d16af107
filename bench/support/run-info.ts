// What every benchmark records beside its figures so a later run can be compared with it: the
// machine, the commit, the versions measured, how the run was started; and the teardown list
// that stops children and drops databases however the run ends.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { round } from './stats.js';
import { PROJECT_DIR } from './processes.js';

export function machine() {
  const cpus = os.cpus();
  return {
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpu_model: cpus[0]?.model ?? 'unknown',
    cpu_count: cpus.length,
    total_memory_gib: round(os.totalmem() / 2 ** 30, 1),
  };
}

/** The commit measured, and how many files under src/ differed from it (uncommitted work is built too). */
export function sourceState() {
  const git = (...args: string[]) => spawnSync('git', args, { cwd: PROJECT_DIR, encoding: 'utf8' }).stdout?.trim() ?? '';
  return { commit: git('rev-parse', 'HEAD'), uncommitted_src_files: git('status', '--porcelain', 'src').split('\n').filter(Boolean).length };
}

export const packageVersion = (name: string) =>
  (JSON.parse(readFileSync(path.join(PROJECT_DIR, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

/**
 * How this run was started: `make <target> BENCH_ARGS=...`, `npm run <script> -- ...` or tsx
 * directly, for the results file.
 */
export function commandLine(makeTarget: string, npmScript: string, file: string): string {
  const args = process.argv.slice(2).join(' ');
  const npm = `npm run ${npmScript}${args ? ` -- ${args}` : ''}`;
  if (process.env.MAKELEVEL !== undefined) return `make ${makeTarget}${args ? ` BENCH_ARGS="${args}"` : ''} (${npm})`;
  if (process.env.npm_lifecycle_event === npmScript) return npm;
  return `tsx ${file}${args ? ` ${args}` : ''}`;
}

/** version() of the embedded database, read from an in-memory PGlite in this process. */
export async function pgliteVersion(): Promise<string> {
  const { PGlite } = await import('@electric-sql/pglite');
  const db = new PGlite();
  try {
    const result = await db.query<{ version: string }>('SELECT version()');
    return result.rows[0]?.version ?? 'unknown';
  } finally {
    await db.close();
  }
}

/** Things to undo at the end, newest first: children to stop, databases to drop. */
export class Teardown {
  private readonly steps: Array<() => Promise<void>> = [];
  private running: Promise<void> | undefined;

  add(step: () => Promise<void>): void {
    this.steps.push(step);
  }

  run(): Promise<void> {
    return (this.running ??= (async () => {
      for (const step of this.steps.reverse()) {
        await step().catch((error: unknown) => console.error('teardown:', error));
      }
    })());
  }

  /** On Ctrl-C or SIGTERM: says `what` is being undone, runs the steps once, exits 130. */
  runOnSignals(what: string): void {
    let interrupted = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (interrupted) return;
      interrupted = true;
      console.log(`\n${signal}: ${what}`);
      void this.run().finally(() => process.exit(130));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
}

/** Says so when the machine was busy before the run began (1-minute load average above its CPUs). */
export function noteBusyMachine(loadAtStart: readonly number[]): void {
  const cpus = os.cpus().length;
  if (loadAtStart[0]! > cpus) {
    console.log(`  NOTE: load average ${loadAtStart[0]!.toFixed(2)} on ${cpus} CPUs: other work competes with the servers and the load generator`);
  }
}

/**
 * The fields a load benchmark's results file opens with: what ran, from which source, on which
 * machine and versions, how busy the machine was, with which options.
 */
export function runHeader(run: {
  benchmark: string;
  driver: string;
  runtime: string;
  date: Date;
  command: string;
  loadAtStart: readonly number[];
  postgres: string;
  /** The options as the file records them (paths relative to the project). */
  options: object;
  buildSeconds: number | null;
}): Record<string, unknown> {
  const hundredths = (value: number) => Math.round(value * 100) / 100;
  return {
    benchmark: run.benchmark,
    driver: run.driver,
    runtime: run.runtime,
    date: run.date.toISOString(),
    command: run.command,
    source: sourceState(),
    machine: machine(),
    // Other work on the machine shows here first; the servers share the CPUs with the load generator.
    load_average_1_5_15: { start: run.loadAtStart.map(hundredths), end: os.loadavg().map(hundredths) },
    node: process.version,
    postgres: run.postgres,
    pglite: packageVersion('@electric-sql/pglite'),
    fastify: packageVersion('fastify'),
    autocannon: packageVersion('autocannon'),
    options: run.options,
    build_seconds: run.buildSeconds === null ? null : Math.round(run.buildSeconds * 10) / 10,
  };
}
