// Benchmark of POST /v1/internal/api-keys/verify, the call every headless product makes for each
// request it serves. The service runs as a child process (the compiled build by default) on a
// fresh database, seeded through its API. autocannon, in this process, sends the same load (same
// connections, keep-alive, no pipelining, same warm-up and duration) to the service and to a bare
// node:http server that answers the same bytes: the baseline. A third server, Fastify with the
// same route schemas and nothing else, shows how much of the gap the framework itself accounts
// for. Hot verifies are answered by the verify lane before the router (src/http/key-verify.ts);
// the run counts how many it answered and how many it handed to the route. Prints one table and writes
// bench/results/verify-<driver>.json. When hot verify misses its target, the service is run once
// more under --cpu-prof and the profile's top self-time functions are printed.
//
//   make bench-verify [BENCH_ARGS="--driver pglite"], or npm run bench:verify [-- --driver pglite]
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { exitOnHelp, integerOption } from './support/options.js';
import { generateApiKey } from '../src/domain/api-key.js';
import { profileTables, summarizeProfileIn, type ProfileSummary } from './support/cpu-profile.js';
import { commandLine, noteBusyMachine, pgliteVersion, runHeader, Teardown } from './support/run-info.js';
import { createScratchDatabase, type ScratchDatabase } from './support/scratch-database.js';
import { fixed, int, round, table } from './support/stats.js';
import { runLoad, type LoadResult, type LoadSettings, type LoadTarget, type MeasureHooks } from './support/load.js';
import {
  buildIfCompiled,
  memoryOf,
  migrateUp,
  PROJECT_DIR,
  startReferenceServer,
  startService,
  type Runtime,
  type Server,
} from './support/processes.js';
import { mistyped, QUESTION, seedVerify, VERIFY_PATH, verifyBody, verifyExpecting, verifyRegistryVars, type VerifyFixture } from './support/verify-seed.js';

const USAGE = `usage: npm run bench:verify -- [options]
  --driver pg|pglite       database of the service (default pg; BENCH_PG_URL is the admin URL of the server)
  --runtime dist|tsx       dist: npm run build, then node dist/src/main.js (default); tsx: node --import tsx src/main.ts
  --connections N          keep-alive connections of every scenario (default 50)
  --duration S             measured seconds of every scenario (default 10)
  --warmup S               unmeasured seconds before each (default 3)
  --keys N                 keys of the many-keys scenario (default 1000)
  --tenants N              tenants the keys belong to (default 10)
  --profile auto|always|never  profile hot verify with --cpu-prof when it misses the target (default auto)
  --results FILE           where the JSON goes (default bench/results/verify-<driver>.json)`;

const DEFAULT_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
/** Hot verify must reach this share of the bare server's requests per second. */
const TARGET_RATIO = 0.7;
const MIB = 2 ** 20;

type ProfileMode = 'auto' | 'always' | 'never';

interface Options {
  driver: 'pg' | 'pglite';
  runtime: Runtime;
  connections: number;
  durationS: number;
  warmupS: number;
  keys: number;
  tenants: number;
  profile: ProfileMode;
  results: string;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      driver: { type: 'string', default: 'pg' },
      runtime: { type: 'string', default: 'dist' },
      connections: { type: 'string', default: '50' },
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '3' },
      keys: { type: 'string', default: '1000' },
      tenants: { type: 'string', default: '10' },
      profile: { type: 'string', default: 'auto' },
      results: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  exitOnHelp(values.help, USAGE);
  const count = integerOption(USAGE);
  const oneOf = <T extends string>(name: string, text: string, allowed: readonly T[]): T => {
    if (!(allowed as readonly string[]).includes(text)) throw new Error(`--${name} must be one of ${allowed.join(', ')}\n${USAGE}`);
    return text as T;
  };
  const driver = oneOf('driver', values.driver, ['pg', 'pglite'] as const);
  return {
    driver,
    runtime: oneOf('runtime', values.runtime, ['dist', 'tsx'] as const),
    connections: count('connections', values.connections, 1),
    durationS: count('duration', values.duration, 1),
    warmupS: count('warmup', values.warmup, 0),
    keys: count('keys', values.keys, 1),
    tenants: count('tenants', values.tenants, 1),
    profile: oneOf('profile', values.profile, ['auto', 'always', 'never'] as const),
    results: values.results ?? fileURLToPath(new URL(`./results/verify-${driver}.json`, import.meta.url)),
  };
}

interface Measured {
  name: string;
  server: 'bare' | 'fastify' | 'service';
  logLevel: string | null;
  /** The verify answer's code every request gets. */
  answer: string;
  result: LoadResult;
}

const nowUs = () => Number(process.hrtime.bigint() / 1000n);

async function measure(
  name: string,
  server: Measured['server'],
  answer: string,
  target: LoadTarget,
  load: LoadSettings,
  logLevel: string | null,
  hooks?: MeasureHooks,
): Promise<Measured> {
  const result = await runLoad(target, load, hooks);
  const problems = result.non2xx + result.errors > 0 ? `, non-2xx ${result.non2xx}, errors ${result.errors}` : '';
  console.log(
    `  ${name}: ${int(result.requestsPerSecond)} req/s, p50 ${fixed(result.latency.p50)} ms, p99 ${fixed(result.latency.p99)} ms` +
      `, server CPU ${fixed(result.serverCpuCores)} (${fixed(result.serverUserMicros + result.serverSystemMicros, 1)} µs/req, ` +
      `${fixed(result.serverPreemptions, 2)} preemptions/req), client CPU ${fixed(result.clientCpuCores)}${problems}`,
  );
  return { name, server, logLevel, answer, result };
}

async function main(): Promise<void> {
  const options = parseOptions();
  const adminUrl = process.env.BENCH_PG_URL ?? DEFAULT_ADMIN_URL;
  const command = commandLine('bench-verify', 'bench:verify', 'bench/verify.ts');
  const date = new Date();
  const loadAtStart = os.loadavg();
  const load: LoadSettings = { connections: options.connections, pipelining: 1, durationS: options.durationS, warmupS: options.warmupS };
  console.log(
    `Key verification benchmark: driver ${options.driver}, service from ${options.runtime === 'dist' ? 'dist/ (compiled)' : 'src/ under tsx'}, ` +
      `${options.connections} connections, ${options.warmupS} s warm-up + ${options.durationS} s per scenario`,
  );

  noteBusyMachine(loadAtStart);

  const teardown = new Teardown();
  teardown.runOnSignals(options.driver === 'pg' ? 'stopping the servers and dropping the benchmark database' : 'stopping the servers');

  try {
    const buildSeconds = buildIfCompiled(options.runtime);

    const serviceVars = verifyRegistryVars();
    let database: ScratchDatabase | null = null;
    if (options.driver === 'pg') {
      const db = await createScratchDatabase(adminUrl, 'tr_bench_verify');
      database = db;
      teardown.add(() => db.drop());
      const migrated = await migrateUp(options.runtime, db.url);
      console.log(`  database ${db.name} on ${new URL(db.url).host}, migrate up: ${migrated.split('\n').length} migrations`);
      serviceVars.DATABASE_URL = db.url;
      // The load is driven with tokens of the development issuer, on this scratch database.
      serviceVars.DEV_ISSUER_WITH_DATABASE = 'true';
    } else {
      console.log('  database: embedded PGlite in the service process, in memory (migrated and seeded by the service at boot)');
    }

    const start = async (vars: Record<string, string>, extra: { stdout?: number; nodeArgs?: string[] } = {}): Promise<Server> => {
      const service = await startService({ runtime: options.runtime, vars, ...extra });
      teardown.add(() => service.stop());
      return service;
    };

    // The service at LOG_LEVEL=warn: every scenario but one.
    const service = await start(serviceVars);
    const seeded = performance.now();
    const fixture = await seedVerify(service.baseUrl, { tenants: options.tenants, keys: options.keys, concurrency: 8 });
    const seedSeconds = (performance.now() - seeded) / 1000;
    console.log(
      `  seeded through the API in ${fixed(seedSeconds, 1)} s: ${options.tenants} tenants with ${QUESTION.product}, ` +
        `${int(options.keys + 2)} keys (every one verified once: cache warm), 1 revoked`,
    );
    const malformedKey = mistyped(fixture.hotKey);
    await verifyExpecting(service.baseUrl, fixture.serviceToken, malformedKey, 'MALFORMED');
    await verifyExpecting(service.baseUrl, fixture.serviceToken, generateApiKey(), 'NOT_FOUND');

    const bare = await startReferenceServer('bare', fixture.validAnswer);
    teardown.add(() => bare.stop());
    const fastify = await startReferenceServer('fastify', fixture.validAnswer);
    teardown.add(() => fastify.stop());
    const headersFor = (token: string) => ({ 'content-type': 'application/json', authorization: `Bearer ${token}` });
    const headers = headersFor(fixture.serviceToken);
    // Each service process has its own development issuer: a token is good for the one that minted it only.
    const onService = (
      bodies: readonly string[] | (() => string),
      target: { server: Server; token: string } = { server: service, token: fixture.serviceToken },
    ): LoadTarget => ({
      url: `${target.server.baseUrl}${VERIFY_PATH}`,
      headers: headersFor(target.token),
      ...(typeof bodies === 'function' ? { nextBody: bodies } : { bodies }),
      pid: target.server.pid,
    });
    const hotBody = verifyBody(fixture.hotKey);
    const bareTarget: LoadTarget = { url: `${bare.baseUrl}${VERIFY_PATH}`, headers, bodies: [hotBody], pid: bare.pid };
    const fastifyTarget: LoadTarget = { url: `${fastify.baseUrl}${VERIFY_PATH}`, headers, bodies: [hotBody], pid: fastify.pid };

    console.log(`\nScenarios (request body ${hotBody.length} B, VALID answer ${fixture.validAnswer.length} B)`);
    const runs: Measured[] = [];
    runs.push(await measure('baseline: bare node:http (1st)', 'bare', '-', bareTarget, load, null));
    runs.push(await measure('reference: Fastify alone, same schemas', 'fastify', '-', fastifyTarget, load, null));
    // Hot verify, the one with a target, runs between two baselines and is compared with their
    // mean: the machine's speed drifts within a run (the bare server moved by a third between
    // runs a few minutes apart), and neighbours see the same machine it does.
    runs.push(await measure('baseline: bare node:http (2nd)', 'bare', '-', bareTarget, load, null));
    const laneBefore = await laneCounts(service.baseUrl);
    runs.push(await measure('verify: hot, one key', 'service', 'VALID', onService([hotBody]), load, 'warn'));
    const laneAfter = await laneCounts(service.baseUrl);
    const hotLane = { answered: laneAfter.answered - laneBefore.answered, handed_over: laneAfter.handed_over - laneBefore.handed_over };
    console.log(`    answered by the verify lane: ${int(hotLane.answered)}, handed to the route: ${int(hotLane.handed_over)} (warm-up included)`);
    runs.push(await measure('baseline: bare node:http (3rd)', 'bare', '-', bareTarget, load, null));
    runs.push(
      await measure(`verify: ${int(fixture.keys.length)} keys round-robin`, 'service', 'VALID', onService(fixture.keys.map(verifyBody)), load, 'warn'),
    );
    runs.push(await measure('verify: malformed (bad checksum)', 'service', 'MALFORMED', onService([verifyBody(malformedKey)]), load, 'warn'));
    runs.push(await measure('verify: revoked key, hot', 'service', 'REVOKED', onService([verifyBody(fixture.revokedKey)]), load, 'warn'));
    // Last on this service: it leaves the cache full of unknown hashes.
    runs.push(
      await measure('verify: cold, a new key every request', 'service', 'NOT_FOUND', onService(() => verifyBody(generateApiKey())), load, 'warn'),
    );
    runs.push(await measure('baseline: bare node:http (4th)', 'bare', '-', bareTarget, load, null));
    await fastify.stop();
    const servicePeakRss = memoryOf(service.pid).peak;
    await service.stop();

    // The same hot scenario with the per-request log line written (to a file, as a container's stdout would be).
    const logFile = path.join(os.tmpdir(), `tr-bench-verify-${process.pid}.log`);
    const logFd = openSync(logFile, 'w');
    teardown.add(async () => rmSync(logFile, { force: true }));
    const infoService = await start({ ...serviceVars, LOG_LEVEL: 'info' }, { stdout: logFd });
    closeSync(logFd);
    const infoFixture = await seedVerify(infoService.baseUrl, { tenants: 1, keys: 0, concurrency: 4 });
    let logBytesAtStart = 0;
    let logBytes = 0;
    const infoRun = await measure(
      'verify: hot, one key, LOG_LEVEL=info',
      'service',
      'VALID',
      onService([verifyBody(infoFixture.hotKey)], { server: infoService, token: infoFixture.serviceToken }),
      load,
      'info',
      { start: () => (logBytesAtStart = statSync(logFile).size), end: () => (logBytes = statSync(logFile).size - logBytesAtStart) },
    );
    runs.push(infoRun);
    const infoPeakRss = memoryOf(infoService.pid).peak;
    await infoService.stop();
    const logLines = readFileSync(logFile, 'utf8').split('\n').filter((line) => line.includes('"msg":"request"')).length;
    rmSync(logFile, { force: true });

    const baselines = runs.filter((run) => run.server === 'bare');
    const meanRps = (of: Measured[]) => of.reduce((sum, run) => sum + run.result.requestsPerSecond, 0) / of.length;
    const baselineRps = meanRps(baselines);
    const hot = runs.find((run) => run.name === 'verify: hot, one key')!;
    const hotIndex = runs.indexOf(hot);
    const hotBaselineRps = meanRps([runs[hotIndex - 1]!, runs[hotIndex + 1]!]);
    const ratioOf = (run: Measured) => run.result.requestsPerSecond / (run === hot ? hotBaselineRps : baselineRps);
    const hotRatio = ratioOf(hot);
    const meanCpu = (of: Measured[]) => of.reduce((sum, run) => sum + run.result.serverUserMicros + run.result.serverSystemMicros, 0) / of.length;
    const hotBaselineCpu = meanCpu([runs[hotIndex - 1]!, runs[hotIndex + 1]!]);
    const targetMet = hotRatio >= TARGET_RATIO;

    let profile: { summary: ProfileSummary; file: string; result: LoadResult } | null = null;
    if (options.profile === 'always' || (options.profile === 'auto' && !targetMet)) {
      console.log(`\nProfiling hot verify (node --cpu-prof on the service, ${options.warmupS} s + ${options.durationS} s of the same load)`);
      profile = await profileHotVerify(options, load, serviceVars, start);
    }

    const postgres = database ? database.serverVersion : await pgliteVersion();

    console.log(`\nResults (${options.driver}, ${date.toISOString()})`);
    console.log(summaryTable(runs, ratioOf));
    console.log(
      `× baseline: req/s ÷ the mean of the bare node:http runs (${baselines.map((run) => int(run.result.requestsPerSecond)).join(', ')} req/s); ` +
        `hot verify's ÷ the mean of the two right beside it (${int(hotBaselineRps)} req/s). CPU: cores busy (CPU time ÷ wall time) of the server and of ` +
        'this process, the load generator; µs/req: server CPU time per answer. RSS: the highest VmRSS of the server during the scenario.',
    );
    console.log(
      `\nHot verify target (>= ${TARGET_RATIO}x the bare server's req/s): ${fixed(hotRatio)}x, ${targetMet ? 'met' : 'NOT met'}; ` +
        `verify p99 ${fixed(hot.result.latency.p99)} ms (p50 ${fixed(hot.result.latency.p50)} ms) at ${options.connections} connections; ` +
        `server CPU ${fixed(cpuOfRun(hot), 1)} µs per hot verify against ${fixed(hotBaselineCpu, 1)} µs for the bare server beside it`,
    );
    const infoRatio = infoRun.result.requestsPerSecond / hot.result.requestsPerSecond;
    const cpuOf = (run: Measured) => run.result.serverUserMicros + run.result.serverSystemMicros;
    console.log(
      `LOG_LEVEL=info: ${int(infoRun.result.requestsPerSecond)} req/s = ${fixed(infoRatio)}x the req/s at warn, ` +
        `server CPU per request ${cpuOf(infoRun) >= cpuOf(hot) ? '+' : ''}${fixed(cpuOf(infoRun) - cpuOf(hot), 1)} µs; ` +
        `${fixed(logBytes / infoRun.result.responses, 0)} B of log per request, ${int(logLines)} request lines in the whole info run`,
    );
    console.log(`Service peak RSS (VmHWM): ${fixed(servicePeakRss / MIB, 1)} MiB at warn (whole run), ${fixed(infoPeakRss / MIB, 1)} MiB at info`);
    console.log(`Load average (1 min) at start ${fixed(loadAtStart[0]!)}, at end ${fixed(os.loadavg()[0]!)} on ${os.cpus().length} CPUs`);
    if (profile) {
      const r = profile.result;
      console.log(`\nProfile of hot verify (${int(r.requestsPerSecond)} req/s under the profiler; file ${profile.file})`);
      console.log(profileTables(profile.summary));
      // V8 samples by wall clock and charges kernel time (and time preempted in it) to the JS-visible call that made the syscall.
      console.log(
        `\nwritev: ${int(writevMs(profile.summary))} ms of samples; the service's kernel-mode CPU time in the same window was ` +
          `${int((r.serverSystemMicros * r.responses) / 1000)} ms, with ${fixed(r.serverPreemptions, 2)} involuntary context switches ` +
          'per request: writev stands mostly for the kernel sending each answer over loopback, not for JavaScript.',
      );
      console.log(
        `Per request: ${fixed(r.serverUserMicros, 1)} µs user + ${fixed(r.serverSystemMicros, 1)} µs system CPU; ` +
          `sampled busy time without writev ${fixed(((profile.summary.busyMs - writevMs(profile.summary)) * 1000) / r.responses, 1)} µs.`,
      );
    }

    const results = {
      ...runHeader({
        benchmark: 'verify',
        driver: options.driver,
        runtime: options.runtime,
        date,
        command,
        loadAtStart,
        postgres,
        options: { ...options, results: path.relative(PROJECT_DIR, options.results), pipelining: 1 },
        buildSeconds,
      }),
      seed: {
        tenants: options.tenants,
        keys: options.keys + 2,
        seconds: round(seedSeconds, 1),
        question: QUESTION,
        request_body_bytes: hotBody.length,
        valid_answer_bytes: fixture.validAnswer.length,
      },
      scenarios: runs.map((run) => ({
        scenario: run.name,
        server: run.server,
        log_level: run.logLevel,
        answer: run.answer,
        requests_per_s: round(run.result.requestsPerSecond, 1),
        ratio_to_baseline: run.server === 'bare' ? null : round(ratioOf(run)),
        responses: run.result.responses,
        seconds: run.result.seconds,
        latency_ms: {
          mean: round(run.result.latency.mean),
          p50: round(run.result.latency.p50),
          p99: round(run.result.latency.p99),
          max: round(run.result.latency.max),
        },
        statuses: run.result.statuses,
        non_2xx: run.result.non2xx,
        errors: run.result.errors,
        timeouts: run.result.timeouts,
        server_cpu_cores: round(run.result.serverCpuCores, 2),
        server_cpu_us_per_request: {
          user: round(run.result.serverUserMicros, 1),
          system: round(run.result.serverSystemMicros, 1),
        },
        server_preemptions_per_request: round(run.result.serverPreemptions, 3),
        client_cpu_cores: round(run.result.clientCpuCores, 2),
        server_peak_rss_mib: round(run.result.serverPeakRss / MIB, 1),
        load_average_1min_at_start: round(run.result.loadAverageAtStart, 2),
      })),
      baseline_requests_per_s: round(baselineRps, 1),
      hot_verify_baseline_requests_per_s: round(hotBaselineRps, 1),
      hot_verify_baseline_cpu_us_per_request: round(hotBaselineCpu, 1),
      target: {
        hot_verify_min_ratio: TARGET_RATIO,
        hot_verify_ratio: round(hotRatio),
        met: targetMet,
        hot_verify_p99_ms: round(hot.result.latency.p99),
      },
      hot_verify_lane: hotLane,
      log_level_info: {
        requests_per_s: round(infoRun.result.requestsPerSecond, 1),
        ratio_to_warn: round(infoRatio),
        extra_server_cpu_us_per_request: round(cpuOf(infoRun) - cpuOf(hot), 1),
        log_bytes_per_request: round(logBytes / infoRun.result.responses, 1),
        request_lines: logLines,
      },
      service_peak_rss_mib: { warn_whole_run: round(servicePeakRss / MIB, 1), info_run: round(infoPeakRss / MIB, 1) },
      profile: profile
        ? {
            requests_per_s_under_profiler: round(profile.result.requestsPerSecond, 1),
            responses: profile.result.responses,
            server_cpu_us_per_request: { user: round(profile.result.serverUserMicros, 1), system: round(profile.result.serverSystemMicros, 1) },
            server_preemptions_per_request: round(profile.result.serverPreemptions, 3),
            file: profile.file,
            ...profile.summary,
          }
        : null,
    };
    await mkdir(path.dirname(options.results), { recursive: true });
    await writeFile(options.results, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`\nWritten: ${path.relative(PROJECT_DIR, options.results)}`);
  } finally {
    await teardown.run();
    console.log(options.driver === 'pg' ? 'Servers stopped, benchmark database dropped.' : 'Servers stopped.');
  }
}

/** Hot verify once more on a service under --cpu-prof; the profile is read for the measured part only. */
async function profileHotVerify(
  options: Options,
  load: LoadSettings,
  vars: Record<string, string>,
  start: (vars: Record<string, string>, extra: { nodeArgs?: string[] }) => Promise<Server>,
): Promise<{ summary: ProfileSummary; file: string; result: LoadResult }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tr-bench-verify-profile-'));
  const service = await start(vars, { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
  const fixture: VerifyFixture = await seedVerify(service.baseUrl, { tenants: 1, keys: 0, concurrency: 4 });
  let fromUs = 0;
  let toUs = 0;
  const target: LoadTarget = {
    url: `${service.baseUrl}${VERIFY_PATH}`,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${fixture.serviceToken}` },
    bodies: [verifyBody(fixture.hotKey)],
    pid: service.pid,
  };
  const run = await measure('verify: hot, one key, under --cpu-prof', 'service', 'VALID', target, load, 'warn', {
    start: () => (fromUs = nowUs()),
    end: () => (toUs = nowUs()),
  });
  // The profile is written when the process exits.
  await service.stop();
  const { file, summary } = await summarizeProfileIn(dir, { fromUs, toUs, top: 25 });
  return { summary, file, result: run.result };
}

/** The service's count of verify requests by the door that answered them (GET /metrics). */
async function laneCounts(baseUrl: string): Promise<{ answered: number; handed_over: number }> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const of = (outcome: string) =>
    Number(new RegExp(`^tenant_registry_verify_lane_requests_total\\{outcome="${outcome}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return { answered: of('answered'), handed_over: of('handed_over') };
}

const cpuOfRun = (run: Measured) => run.result.serverUserMicros + run.result.serverSystemMicros;

const writevMs = (summary: ProfileSummary) => summary.functions.find((entry) => entry.name === 'writev')?.ms ?? 0;

function summaryTable(runs: Measured[], ratioOf: (run: Measured) => number): string {
  const rows = runs.map((run) => {
    const r = run.result;
    return [
      run.name,
      run.answer,
      int(r.requestsPerSecond),
      fixed(r.latency.p50),
      fixed(r.latency.p99),
      run.server === 'bare' ? '' : `${fixed(ratioOf(run))}x`,
      int(r.non2xx),
      int(r.errors),
      fixed(r.serverCpuCores),
      fixed(r.serverUserMicros + r.serverSystemMicros, 1),
      fixed(r.clientCpuCores),
      fixed(r.serverPeakRss / MIB, 0),
    ];
  });
  return table(['scenario', 'answer', 'req/s', 'p50 ms', 'p99 ms', '× baseline', 'non-2xx', 'errors', 'srv CPU', 'srv µs/req', 'gen CPU', 'RSS MiB'], rows);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
