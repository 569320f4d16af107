// `make bench`: every hot path of the service under load, each beside a bare node:http server
// measured in the same run at the same concurrency. For each driver (PostgreSQL, the one that
// counts, then the embedded PGlite) it seeds a database in bulk (1,000 tenants with 1,000,000
// audit events, 99,000 more tenants for the list, 20,000 API keys), starts the compiled service
// on it as a child process, and runs the scenarios with autocannon over loopback with
// keep-alive. Prints one table per driver, checks the targets, profiles the service under the
// load of any hot path that misses its target, and writes bench/results/suite-<driver>.json.
//
//   make bench [BENCH_ARGS="--driver pg --duration 5"], or npm run bench [-- --driver pg]
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { exitOnHelp, integerOption } from './support/options.js';
import { generateApiKey } from '../src/domain/api-key.js';
import { loadMigrations } from '../src/store/migration-files.js';
import { migrateUp } from '../src/store/migrator.js';
import { openPg } from '../src/store/pg-driver.js';
import { openPglite } from '../src/store/pglite-driver.js';
import type { Database } from '../src/store/database.js';
import { profileTables, summarizeProfileIn, type ProfileSummary } from './support/cpu-profile.js';
import { runLoad, type LoadResult, type LoadSettings, type LoadTarget, type MeasureHooks } from './support/load.js';
import { buildDist, memoryOf, PROJECT_DIR, startReferenceServer, startService, type Server } from './support/processes.js';
import { commandLine, machine, packageVersion, pgliteVersion, sourceState, Teardown } from './support/run-info.js';
import { createScratchDatabase } from './support/scratch-database.js';
import { fixed, int, round, table } from './support/stats.js';
import { seedSuite, type SuiteFixture } from './support/suite-seed.js';
import { devToken, expectStatus, mistyped, VERIFY_PATH, verifyBody, verifyExpecting } from './support/verify-seed.js';

const USAGE = `usage: npm run bench -- [options]
  --driver pg|pglite|all   which database the service runs on (default all: pg, then pglite)
  --connections N          keep-alive connections of every scenario (default 50)
  --duration S             measured seconds of every scenario (default 10)
  --warmup S               unmeasured seconds before each (default 3)
  --tenants N --keys N --events N   the seed (defaults 1000, 20000, 1000000)
  --deep N                 how many events deep the deep audit page starts (default 900000)
  --directory N            tenants in all for the list scenarios (default 100000)
  --profile auto|always|never  run a hot path that misses its target again under --cpu-prof (default auto)
  --results DIR            where suite-<driver>.json goes (default bench/results)
BENCH_PG_URL is the admin URL of the PostgreSQL server (default postgres://postgres@127.0.0.1:5432/postgres).`;

const DEFAULT_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const MIB = 2 ** 20;
const RSS_LIMIT_MIB = 256;
/** Deep audit page p50 within this multiple of the first page's. */
const DEEP_PAGE_MAX = 1.5;
const PAGE_LIMIT = 50;

type DriverName = 'pg' | 'pglite';

interface Options {
  drivers: DriverName[];
  connections: number;
  durationS: number;
  warmupS: number;
  tenants: number;
  keys: number;
  events: number;
  deep: number;
  directory: number;
  profile: 'auto' | 'always' | 'never';
  resultsDir: string;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      driver: { type: 'string', default: 'all' },
      connections: { type: 'string', default: '50' },
      duration: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '3' },
      tenants: { type: 'string', default: '1000' },
      keys: { type: 'string', default: '20000' },
      events: { type: 'string', default: '1000000' },
      deep: { type: 'string', default: '900000' },
      directory: { type: 'string', default: '100000' },
      profile: { type: 'string', default: 'auto' },
      results: { type: 'string', default: path.join(PROJECT_DIR, 'bench', 'results') },
      help: { type: 'boolean', default: false },
    },
  });
  exitOnHelp(values.help, USAGE);
  const count = integerOption(USAGE);
  const drivers: Record<string, DriverName[]> = { all: ['pg', 'pglite'], pg: ['pg'], pglite: ['pglite'] };
  const chosen = drivers[values.driver];
  if (!chosen) throw new Error(`--driver must be pg, pglite or all\n${USAGE}`);
  if (!['auto', 'always', 'never'].includes(values.profile)) throw new Error(`--profile must be auto, always or never\n${USAGE}`);
  const options: Options = {
    drivers: chosen,
    connections: count('connections', values.connections, 1),
    durationS: count('duration', values.duration, 1),
    warmupS: count('warmup', values.warmup, 0),
    tenants: count('tenants', values.tenants, 2),
    keys: count('keys', values.keys, 1),
    events: count('events', values.events, 1000),
    deep: count('deep', values.deep, 1),
    directory: count('directory', values.directory, 1),
    profile: values.profile as Options['profile'],
    resultsDir: path.resolve(values.results),
  };
  if (options.deep >= options.events) throw new Error(`--deep must be below --events\n${USAGE}`);
  return options;
}

/** A hot path's target: its req/s at least this share of the bare server's. */
interface Target {
  minRatio: number;
}

interface Scenario {
  name: string;
  /** What every answer must be: a status, and for verify the verdict's code. */
  expect: string;
  target: LoadTarget;
  goal?: Target;
}

interface Measured {
  scenario: string;
  expect: string;
  baseline: boolean;
  result: LoadResult;
  goal?: Target;
  /** req/s ÷ its baseline's req/s (set once every run is done; NaN for the baselines). */
  ratio: number;
}

async function measure(name: string, expect: string, target: LoadTarget, load: LoadSettings, baseline: boolean, goal?: Target, hooks?: MeasureHooks): Promise<Measured> {
  const result = await runLoad(target, load, hooks);
  const unexpected = result.non2xx + result.errors > 0 ? `, NON-2XX ${result.non2xx}, ERRORS ${result.errors}` : '';
  console.log(`  ${name}: ${int(result.requestsPerSecond)} req/s, p50 ${fixed(result.latency.p50)} ms, p99 ${fixed(result.latency.p99)} ms${unexpected}`);
  return { scenario: name, expect, baseline, result, ratio: Number.NaN, ...(goal ? { goal } : {}) };
}

/** Opens the driver's database for seeding; for PGlite, a directory the service opens afterwards. */
async function seedDatabase(
  driver: DriverName,
  options: Options,
  pepper: string,
  teardown: Teardown,
): Promise<{ vars: Record<string, string>; fixture: SuiteFixture; postgres: string; where: string }> {
  const adminUrl = process.env.BENCH_PG_URL ?? DEFAULT_ADMIN_URL;
  let db: Database;
  let vars: Record<string, string>;
  let postgres: string;
  let where: string;
  if (driver === 'pg') {
    const scratch = await createScratchDatabase(adminUrl, 'tr_bench_suite');
    teardown.add(() => scratch.drop());
    db = openPg({ url: scratch.url, poolSize: 4 });
    // The load is driven with tokens of the development issuer, on this scratch database.
    vars = { DATABASE_URL: scratch.url, DEV_ISSUER_WITH_DATABASE: 'true' };
    postgres = scratch.serverVersion;
    where = `database ${scratch.name} on ${new URL(scratch.url).host}`;
  } else {
    // The embedded database on disk rather than in memory: a million events in memory would be
    // counted in the service's RSS, and a production embedded install keeps its data on disk too.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tr-bench-suite-pglite-'));
    teardown.add(async () => rmSync(dir, { recursive: true, force: true }));
    db = await openPglite({ dataDir: dir });
    vars = { EMBEDDED_DB_DIR: dir };
    postgres = await pgliteVersion();
    where = `PGlite data directory ${dir}`;
  }
  try {
    await migrateUp(db, await loadMigrations());
    console.log(`  seeding ${where}`);
    const fixture = await seedSuite(db, {
      tenants: options.tenants,
      keys: options.keys,
      events: options.events,
      deepPage: options.deep,
      directory: Math.max(options.directory, options.tenants),
      pepper,
      log: (line) => console.log(`  ${line.trim()}`),
    });
    return { vars, fixture, postgres, where };
  } finally {
    await db.close();
  }
}

interface DriverRun {
  driver: DriverName;
  runs: Measured[];
  baselineRps: number;
  peakRssMib: number;
  deepRatio: number;
  deepTenantRatio: number;
  profiles: Array<{ scenario: string; summary: ProfileSummary; file: string; requestsPerSecond: number }>;
  json: Record<string, unknown>;
}

async function benchDriver(driver: DriverName, options: Options, load: LoadSettings, command: string): Promise<DriverRun> {
  const teardown = new Teardown();
  const stopOnSignal = () => void teardown.run().finally(() => process.exit(130));
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  const date = new Date();
  const loadAtStart = os.loadavg();
  try {
    console.log(`\n=== ${driver === 'pg' ? 'PostgreSQL' : 'embedded PGlite'} ===`);
    // Keys are hashed with a pepper as outside dev, so verify pays for the HMAC it pays in production.
    const pepper = randomBytes(24).toString('base64url');
    const seedStarted = performance.now();
    const { vars, fixture, postgres } = await seedDatabase(driver, options, pepper, teardown);
    const seedSeconds = (performance.now() - seedStarted) / 1000;
    console.log(`  seeded in ${fixed(seedSeconds, 1)} s`);

    // One caller sends all the load: the per-caller rate limits still run (their cost is part of
    // what is measured) with a budget this load cannot reach.
    const serviceVars = {
      ...vars,
      LOG_LEVEL: 'warn',
      API_KEY_PEPPER: pepper,
      RATE_LIMIT_PER_MINUTE: '999999999',
      RATE_LIMIT_SERVICE_PER_MINUTE: '999999999',
      RATE_LIMIT_INTERNAL_PER_MINUTE: '999999999',
    };
    const start = async (extra: { nodeArgs?: string[] } = {}) => {
      const server = await startService({ runtime: 'dist', vars: serviceVars, ...extra });
      teardown.add(() => server.stop());
      return server;
    };
    const service = await start();
    const tokens = {
      service: await devToken(service.baseUrl, ['registry_service']),
      admin: await devToken(service.baseUrl, ['platform_admin']),
    };
    const scenarios = buildScenarios(service, tokens, fixture, options);

    // Every scenario is tried once before any load: an answer other than the expected one stops the run.
    const hotAnswer = await sanityCheck(service, tokens, fixture);
    const bare = await startReferenceServer('bare', hotAnswer);
    teardown.add(() => bare.stop());
    const bareTarget: LoadTarget = {
      url: `${bare.baseUrl}${VERIFY_PATH}`,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.service}` },
      bodies: [verifyBody(fixture.keys[0]!)],
      pid: bare.pid,
    };

    console.log(`\nScenarios: ${options.connections} connections, ${options.warmupS} s warm-up + ${options.durationS} s each`);
    // A scenario with a target runs between two baseline runs and is compared with their mean:
    // on a shared VM the bare server's own rate drifts by 10-20% over the minutes of a run, and
    // a baseline taken only at the start and the end misjudged a target by as much.
    const runs: Measured[] = [];
    const bareRun = async () => runs.push(await measure(`baseline: bare node:http (${runs.filter((run) => run.baseline).length + 1})`, '200', bareTarget, load, true));
    await bareRun();
    for (const scenario of scenarios) {
      if (scenario.goal && !runs.at(-1)!.baseline) await bareRun();
      runs.push(await measure(scenario.name, scenario.expect, scenario.target, load, false, scenario.goal));
      if (scenario.goal) await bareRun();
    }
    if (!runs.at(-1)!.baseline) await bareRun();
    const peakRssMib = memoryOf(service.pid).peak / MIB;
    await service.stop();

    const rpsOf = (list: Measured[]) => list.reduce((sum, run) => sum + run.result.requestsPerSecond, 0) / list.length;
    const baselineRps = rpsOf(runs.filter((run) => run.baseline));
    runs.forEach((run, i) => {
      if (run.baseline) return;
      run.ratio = run.result.requestsPerSecond / (run.goal ? rpsOf([runs[i - 1]!, runs[i + 1]!]) : baselineRps);
    });
    const ratioOf = (run: Measured) => run.ratio;
    const first = runs.find((run) => run.scenario.startsWith('audit: first page'))!;
    const deep = runs.find((run) => run.scenario.startsWith('audit: deep page'))!;
    const deepRatio = deep.result.latency.p50 / first.result.latency.p50;
    const firstTenants = runs.find((run) => run.scenario.startsWith('tenants: first page'))!;
    const deepTenants = runs.find((run) => run.scenario.startsWith('tenants: deep page'))!;
    const deepTenantRatio = deepTenants.result.latency.p50 / firstTenants.result.latency.p50;

    const missed = runs.filter((run) => run.goal && ratioOf(run) < run.goal.minRatio);
    const toProfile = options.profile === 'always' ? runs.filter((run) => run.goal) : options.profile === 'auto' ? missed : [];
    const profiles: DriverRun['profiles'] = [];
    for (const run of toProfile) {
      const scenario = scenarios.find((candidate) => candidate.name === run.scenario)!;
      console.log(`\nProfiling "${run.scenario}" (node --cpu-prof on the service, same load)`);
      profiles.push(await profileScenario(scenario, start, tokens, load));
    }

    const json = {
      benchmark: 'suite',
      driver,
      date: date.toISOString(),
      command,
      source: sourceState(),
      machine: machine(),
      // Both servers share the CPUs with the load generator; other work on the machine shows here first.
      load_average_1_5_15: { start: loadAtStart.map((value) => round(value, 2)), end: os.loadavg().map((value) => round(value, 2)) },
      node: process.version,
      postgres,
      pglite: packageVersion('@electric-sql/pglite'),
      fastify: packageVersion('fastify'),
      autocannon: packageVersion('autocannon'),
      options: { connections: options.connections, duration_s: options.durationS, warmup_s: options.warmupS, pipelining: 1 },
      seed: { tenants: options.tenants, keys: options.keys + 1, audit_events: options.events, deep_page_at: options.deep, seconds: round(seedSeconds, 1) },
      baseline_requests_per_s: round(baselineRps, 1),
      scenarios: runs.map((run) => ({
        scenario: run.scenario,
        expect: run.expect,
        requests_per_s: round(run.result.requestsPerSecond, 1),
        ratio_to_baseline: run.baseline ? null : round(ratioOf(run)),
        target_min_ratio: run.goal?.minRatio ?? null,
        met: run.goal ? ratioOf(run) >= run.goal.minRatio : null,
        latency_ms: { mean: round(run.result.latency.mean), p50: round(run.result.latency.p50), p99: round(run.result.latency.p99), max: round(run.result.latency.max) },
        responses: run.result.responses,
        statuses: run.result.statuses,
        errors: run.result.errors,
        server_cpu_cores: round(run.result.serverCpuCores, 2),
        server_cpu_us_per_request: round(run.result.serverUserMicros + run.result.serverSystemMicros, 1),
        client_cpu_cores: round(run.result.clientCpuCores, 2),
        server_peak_rss_mib: round(run.result.serverPeakRss / MIB, 1),
      })),
      deep_audit_page: { p50_ratio_to_first_page: round(deepRatio), max: DEEP_PAGE_MAX, met: deepRatio <= DEEP_PAGE_MAX },
      deep_tenant_page: { p50_ratio_to_first_page: round(deepTenantRatio), max: DEEP_PAGE_MAX, met: deepTenantRatio <= DEEP_PAGE_MAX },
      service_peak_rss_mib: { value: round(peakRssMib, 1), limit: RSS_LIMIT_MIB, met: peakRssMib < RSS_LIMIT_MIB },
      profiles: profiles.map((profile) => ({ scenario: profile.scenario, requests_per_s_under_profiler: round(profile.requestsPerSecond, 1), file: profile.file, ...profile.summary })),
    };
    return { driver, runs, baselineRps, peakRssMib, deepRatio, deepTenantRatio, profiles, json };
  } finally {
    await teardown.run();
    process.off('SIGINT', stopOnSignal);
    process.off('SIGTERM', stopOnSignal);
  }
}

function buildScenarios(service: Server, tokens: { service: string; admin: string }, fixture: SuiteFixture, options: Options): Scenario[] {
  const headersFor = (token: string) => ({ 'content-type': 'application/json', authorization: `Bearer ${token}` });
  const asService = headersFor(tokens.service);
  const asAdmin = headersFor(tokens.admin);
  const url = (route: string) => `${service.baseUrl}${route}`;
  const post = (route: string, headers: Record<string, string>, bodies: string[] | (() => string)): LoadTarget => ({
    url: url(route),
    headers,
    ...(typeof bodies === 'function' ? { nextBody: bodies } : { bodies }),
    pid: service.pid,
  });
  const get = (paths: string[], headers: Record<string, string>): LoadTarget => ({
    url: url(paths[0]!),
    method: 'GET',
    headers: { authorization: headers.authorization! },
    paths,
    pid: service.pid,
  });
  const malformed = mistyped(fixture.keys[0]!);
  const run = randomBytes(3).toString('hex');
  let created = 0;
  const audit = fixture.tenants.map((tenant, i) =>
    JSON.stringify({
      tenant_id: tenant.id,
      product: 'docs',
      action: 'document.viewed',
      crud: 'r',
      actor: { id: `user-${i % 25}`, name: `User ${i % 25}` },
      target: { id: `document-${i}`, type: 'document' },
      source_ip: '10.1.2.3',
    }),
  );

  return [
    { name: 'verify: hot, one key', expect: 'VALID', target: post(VERIFY_PATH, asService, [verifyBody(fixture.keys[0]!)]), goal: { minRatio: 0.7 } },
    { name: `verify: ${int(fixture.keys.length)} keys round-robin`, expect: 'VALID', target: post(VERIFY_PATH, asService, fixture.keys.map(verifyBody)) },
    { name: 'verify: cold, an unknown key every request', expect: 'NOT_FOUND', target: post(VERIFY_PATH, asService, () => verifyBody(generateApiKey())) },
    { name: 'verify: malformed key (bad checksum)', expect: 'MALFORMED', target: post(VERIFY_PATH, asService, [verifyBody(malformed)]) },
    { name: 'verify: revoked key', expect: 'REVOKED', target: post(VERIFY_PATH, asService, [verifyBody(fixture.revokedKey)]) },
    {
      name: `tenant by slug (${int(fixture.tenants.length)} slugs, service token)`,
      expect: '200',
      target: get(fixture.tenants.map((tenant) => `/v1/tenants/by-slug/${tenant.slug}`), asService),
      goal: { minRatio: 0.5 },
    },
    {
      name: 'keycloak claims (POST, by tenant_id)',
      expect: '200',
      target: post('/v1/internal/keycloak/claims', asService, fixture.tenants.map((tenant) => JSON.stringify({ tenant_id: tenant.id }))),
      goal: { minRatio: 0.5 },
    },
    {
      name: 'entitlements of a tenant',
      expect: '200',
      target: get(fixture.tenants.map((tenant) => `/v1/entitlements?tenant_id=${tenant.id}`), asService),
      goal: { minRatio: 0.4 },
    },
    { name: `tenants: first page (${PAGE_LIMIT} of ${int(options.directory)})`, expect: '200', target: get([`/v1/tenants?limit=${PAGE_LIMIT}`], asAdmin) },
    {
      name: `tenants: deep page (${int(Math.floor(options.directory * 0.9))} in)`,
      expect: '200',
      target: get([`/v1/tenants?limit=${PAGE_LIMIT}&cursor=${fixture.deepTenantCursor}`], asAdmin),
    },
    { name: `tenants: search q=${fixture.search.prefix}`, expect: '200', target: get([`/v1/tenants?q=${fixture.search.prefix}`], asAdmin) },
    {
      name: 'tenants: sales owner and status',
      expect: '200',
      target: get([`/v1/tenants?sales_owner=${encodeURIComponent(fixture.search.salesOwner)}&status=active&limit=${PAGE_LIMIT}`], asAdmin),
    },
    { name: `audit: first page (${PAGE_LIMIT} of ${int(options.events)})`, expect: '200', target: get([`/v1/audit?limit=${PAGE_LIMIT}`], asAdmin) },
    {
      name: `audit: deep page (${int(options.deep)} events in)`,
      expect: '200',
      target: get([`/v1/audit?limit=${PAGE_LIMIT}&cursor=${fixture.deepCursor}`], asAdmin),
    },
    { name: 'audit: append (POST /v1/audit)', expect: '201', target: post('/v1/audit', asService, audit) },
    {
      name: 'tenant create (with Keycloak provisioning, mock)',
      expect: '201',
      target: post('/v1/tenants', asAdmin, () => {
        const n = created++;
        return JSON.stringify({ name: `Load ${run} ${n}`, slug: `load-${run}-${n}`, admin_email: `admin-${n}@load-${run}.example.com` });
      }),
    },
  ];
}

/** One request per scenario, checked, before any load; returns the hot verify answer for the baseline to send. */
async function sanityCheck(service: Server, tokens: { service: string; admin: string }, fixture: SuiteFixture): Promise<string> {
  const base = service.baseUrl;
  const verdict = (key: string, code: string) => verifyExpecting(base, tokens.service, key, code);
  const hot = await verdict(fixture.keys[0]!, 'VALID');
  await verdict(fixture.keys.at(-1)!, 'VALID');
  await verdict(fixture.revokedKey, 'REVOKED');
  await verdict(generateApiKey(), 'NOT_FOUND');
  const tenant = fixture.tenants[1]!;
  await expectStatus(base, tokens.service, 'GET', `/v1/tenants/by-slug/${tenant.slug}`, undefined, 200);
  await expectStatus(base, tokens.service, 'POST', '/v1/internal/keycloak/claims', { tenant_id: tenant.id }, 200);
  await expectStatus(base, tokens.service, 'GET', `/v1/entitlements?tenant_id=${tenant.id}`, undefined, 200);
  const firstPage = JSON.parse(await expectStatus(base, tokens.admin, 'GET', `/v1/audit?limit=${PAGE_LIMIT}`, undefined, 200)) as { items: unknown[] };
  const deepPage = JSON.parse(await expectStatus(base, tokens.admin, 'GET', `/v1/audit?limit=${PAGE_LIMIT}&cursor=${fixture.deepCursor}`, undefined, 200)) as { items: unknown[] };
  if (firstPage.items.length !== PAGE_LIMIT || deepPage.items.length !== PAGE_LIMIT) throw new Error('an audit page came back short');
  return hot;
}

/** The scenario again on a fresh service under --cpu-prof; the profile is read for the measured part only. */
async function profileScenario(
  scenario: Scenario,
  start: (extra: { nodeArgs?: string[] }) => Promise<Server>,
  tokens: { service: string; admin: string },
  load: LoadSettings,
): Promise<DriverRun['profiles'][number]> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tr-bench-suite-profile-'));
  const service = await start({ nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
  // Tokens come from the development issuer of the process that minted them: mint new ones.
  const fresh = { service: await devToken(service.baseUrl, ['registry_service']), admin: await devToken(service.baseUrl, ['platform_admin']) };
  const swap = (value: string) => value.replace(tokens.service, fresh.service).replace(tokens.admin, fresh.admin);
  const origin = new URL(scenario.target.url).origin;
  const target: LoadTarget = {
    ...scenario.target,
    url: scenario.target.url.replace(origin, service.baseUrl),
    headers: Object.fromEntries(Object.entries(scenario.target.headers).map(([name, value]) => [name, swap(value)])),
    pid: service.pid,
  };
  const nowUs = () => Number(process.hrtime.bigint() / 1000n);
  let fromUs = 0;
  let toUs = 0;
  const run = await measure(`${scenario.name}, under --cpu-prof`, scenario.expect, target, load, false, undefined, {
    start: () => (fromUs = nowUs()),
    end: () => (toUs = nowUs()),
  });
  // The profile is written when the process exits.
  await service.stop();
  const { file, summary } = await summarizeProfileIn(dir, { fromUs, toUs, top: 20 });
  console.log(profileTables(summary));
  return { scenario: scenario.name, summary, file, requestsPerSecond: run.result.requestsPerSecond };
}

function report(result: DriverRun): string {
  const ratioOf = (run: Measured) => run.ratio;
  const rows = result.runs.map((run) => {
    const r = run.result;
    const unexpected = r.non2xx + r.errors;
    return [
      run.scenario,
      run.expect,
      int(r.requestsPerSecond),
      fixed(r.latency.p50),
      fixed(r.latency.p99),
      run.baseline ? '' : `${fixed(ratioOf(run))}x`,
      run.goal ? `>= ${run.goal.minRatio}` : '',
      run.goal ? (ratioOf(run) >= run.goal.minRatio ? 'met' : 'MISSED') : '',
      unexpected === 0 ? '' : int(unexpected),
      fixed(r.serverCpuCores),
      fixed(r.serverPeakRss / MIB, 0),
    ];
  });
  const lines = [
    table(['scenario', 'answer', 'req/s', 'p50 ms', 'p99 ms', '× baseline', 'target', '', 'bad', 'srv CPU', 'RSS MiB'], rows),
    `× baseline: req/s ÷ the mean of the bare node:http runs just before and after, for a scenario with a target; ÷ the mean of all ` +
      `bare runs (${int(result.baselineRps)} req/s) for the others. srv CPU: cores the service kept busy. ` +
      'bad: non-2xx answers and connection errors (must be empty; verify verdicts are all 200).',
    `Deep audit page p50 ÷ first page p50: ${fixed(result.deepRatio)}x (target <= ${DEEP_PAGE_MAX}x): ${result.deepRatio <= DEEP_PAGE_MAX ? 'met' : 'MISSED'}`,
    `Deep tenant page p50 ÷ first page p50: ${fixed(result.deepTenantRatio)}x (target <= ${DEEP_PAGE_MAX}x): ${result.deepTenantRatio <= DEEP_PAGE_MAX ? 'met' : 'MISSED'}`,
    `Service peak RSS (VmHWM, whole run): ${fixed(result.peakRssMib, 1)} MiB (target < ${RSS_LIMIT_MIB} MiB): ${result.peakRssMib < RSS_LIMIT_MIB ? 'met' : 'MISSED'}`,
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const options = parseOptions();
  const command = commandLine('bench', 'bench', 'bench/suite.ts');
  const load: LoadSettings = { connections: options.connections, pipelining: 1, durationS: options.durationS, warmupS: options.warmupS };
  console.log(`Benchmark suite: ${options.drivers.join(', ')}; the service from dist/ (npm run build: ${fixed(buildDist(), 1)} s)`);
  if (os.loadavg()[0]! > os.cpus().length) {
    console.log(`NOTE: load average ${fixed(os.loadavg()[0]!)} on ${os.cpus().length} CPUs: other work competes with the servers and the load generator`);
  }
  const results: DriverRun[] = [];
  for (const driver of options.drivers) {
    const result = await benchDriver(driver, options, load, command);
    results.push(result);
    const file = path.join(options.resultsDir, `suite-${driver}.json`);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, `${JSON.stringify(result.json, null, 2)}\n`);
    console.log(`\nResults (${driver}), written to ${path.relative(PROJECT_DIR, file)}\n${report(result)}`);
  }
  const failures = results.flatMap((result) => result.runs.filter((run) => run.result.non2xx + run.result.errors > 0).map((run) => `${result.driver}: ${run.scenario}`));
  if (failures.length > 0) {
    console.error(`\nScenarios with unexpected answers (the figures are not comparable): ${failures.join('; ')}`);
    process.exitCode = 1;
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
