// A private PostgreSQL server for one test: its own initdb'd data directory in a temporary
// directory, trust auth, a free loopback port and its unix socket inside that directory. Unlike
// the shared server of TEST_PG_URL, a test may stop it and start it again (a database outage) without
// disturbing any other test. destroy() always stops it and removes the directory, also after a
// failure half-way; an exit hook does the same if the test process ends without calling it.
import { execFile, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, appendFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../process/spawn.js';
import { assertPgDriverSelected } from './postgres.js';

const run = promisify(execFile);

export interface PgCluster {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  /** The temporary directory: data/, the socket and the server log. */
  dir: string;
  /** Starts the stopped server again (same port, same data) and waits until it accepts connections. */
  start(): Promise<void>;
  /** Stops the server and waits until it is gone; `fast` ends sessions and checkpoints, `immediate` does not. */
  stop(mode?: 'smart' | 'fast' | 'immediate'): Promise<void>;
  isRunning(): boolean;
  /** Stops the server if it runs and removes the directory; never throws. */
  destroy(): Promise<void>;
  /** The server's log, for a failure message. */
  log(): string;
}

/** The newest installed PostgreSQL's bin directory (PG_BIN overrides), e.g. /usr/lib/postgresql/15/bin. */
export function postgresBinDir(): string {
  const override = process.env.PG_BIN;
  if (override) return override;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((name) => /^\d+(\.\d+)?$/.test(name) && existsSync(path.join(root, name, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) throw new Error(`no PostgreSQL binaries under ${root} (set PG_BIN)`);
  return path.join(root, versions[0]!, 'bin');
}

// initdb and postgres refuse to run as root: as root, run them as the postgres OS user.
const isRoot = process.getuid?.() === 0;

function owner(): { uid: number; gid: number } | null {
  if (!isRoot) return null;
  const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) throw new Error('running as root, but there is no postgres OS user to run PostgreSQL as');
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

function command(binary: string, args: string[]): [string, string[]] {
  return isRoot ? ['runuser', ['-u', 'postgres', '--', binary, ...args]] : [binary, args];
}

/** initdb + pg_ctl start on a free port; resolves once the server accepts connections. */
export async function startPgCluster(): Promise<PgCluster> {
  assertPgDriverSelected('startPgCluster()');
  const bin = postgresBinDir();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tr-pg-'));
  const dataDir = path.join(dir, 'data');
  const socketDir = path.join(dir, 'sock');
  const logFile = path.join(dir, 'server.log');
  let running = false;
  let destroyed = false;

  const exec = async (binary: string, args: string[], timeoutMs = 180_000) => {
    const [file, argv] = command(path.join(bin, binary), args);
    try {
      return await run(file, argv, { cwd: dir, timeout: timeoutMs, env: { ...process.env, LC_ALL: 'C' } });
    } catch (error) {
      const e = error as { stderr?: string; stdout?: string; message: string };
      throw new Error(`${binary} ${args.join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}\n${readLog()}`);
    }
  };
  const readLog = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };

  // Last resort when pg_ctl cannot stop it: the postmaster's pid is the first line of postmaster.pid.
  const killPostmaster = () => {
    try {
      const pid = Number(readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      if (pid > 0) process.kill(pid, 'SIGKILL');
    } catch {
      // No pid file or no such process: nothing runs.
    }
  };
  const stopNow = () => {
    // Synchronous, for the exit hook: immediate mode skips the checkpoint, the data is thrown away.
    if (existsSync(path.join(dataDir, 'postmaster.pid'))) {
      const [file, argv] = command(path.join(bin, 'pg_ctl'), ['-D', dataDir, '-m', 'immediate', '-w', '-t', '10', 'stop']);
      const result = spawnSync(file, argv, { cwd: dir, stdio: 'ignore', timeout: 15_000 });
      if (result.status !== 0) killPostmaster();
    }
    running = false;
  };
  const removeDir = () => rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  const onExit = () => {
    if (destroyed) return;
    stopNow();
    removeDir();
  };
  process.once('exit', onExit);

  const destroy = async () => {
    if (destroyed) return;
    destroyed = true;
    process.removeListener('exit', onExit);
    try {
      stopNow();
    } catch {
      killPostmaster();
    }
    try {
      removeDir();
    } catch {
      // Left behind in the temporary directory; nothing a caller could do about it.
    }
  };

  const port = await freePort();
  const cluster: PgCluster = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    async start() {
      // -w waits until the server accepts connections (or fails, with the log in the error); the
      // wait is generous, it is not what a test measures.
      await exec('pg_ctl', ['-D', dataDir, '-l', logFile, '-w', '-t', '120', 'start']);
      running = true;
    },
    async stop(mode = 'fast') {
      await exec('pg_ctl', ['-D', dataDir, '-m', mode, '-w', '-t', '120', 'stop']);
      running = false;
    },
    isRunning: () => running,
    destroy,
    log: readLog,
  };

  try {
    mkdirSync(socketDir);
    const user = owner();
    if (user) for (const p of [dir, socketDir]) chownSync(p, user.uid, user.gid);
    // The server log is opened by pg_ctl running as postgres: create it here so root can read it too.
    writeFileSync(logFile, '');
    if (user) chownSync(logFile, user.uid, user.gid);
    await exec('initdb', ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    // fsync off: a test's database lives minutes and a clean stop still checkpoints everything;
    // it only matters when the machine itself crashes.
    appendFileSync(
      path.join(dataDir, 'postgresql.conf'),
      [
        '',
        `port = ${port}`,
        "listen_addresses = '127.0.0.1'",
        `unix_socket_directories = '${socketDir}'`,
        'fsync = off',
        'max_connections = 50',
        'shared_buffers = 32MB',
        'logging_collector = off',
        '',
      ].join('\n'),
    );
    await cluster.start();
    return cluster;
  } catch (error) {
    await destroy();
    throw error;
  }
}
