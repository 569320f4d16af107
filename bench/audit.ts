// Benchmark of the audit log: seeds a large log in a throwaway database, then measures appends
// (chained, against a plain INSERT baseline) and page latency (first pages against deep keyset
// pages). Prints one table and writes the same figures to bench/results/audit-<driver>.json.
//
//   make bench-audit [BENCH_ARGS="--driver pglite"], or npm run bench:audit [-- --driver pglite --appends 4000]
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { DAY_MS } from '../src/domain/time.js';
import type { Database } from '../src/store/database.js';
import { exitOnHelp, integerOption } from './support/options.js';
import { commandLine, machine } from './support/run-info.js';
import { hashCostMicros, measureScenario, type AppendScenario, type RunResult, type ScenarioResult } from './support/audit-appends.js';
import { measurePages, PAGE_LIMIT, type PageQuery, type PageResult } from './support/audit-queries.js';
import { openBenchDatabase, type DriverName } from './support/bench-database.js';
import { seedAuditLog, type SeedResult } from './support/seed-audit.js';
import { fixed, int, round, table } from './support/stats.js';

const USAGE = `usage: npm run bench:audit -- [options]
  --driver pg|pglite   database driver (default pg; BENCH_PG_URL is the admin URL of the server)
  --events N           audit events to seed (default 1000000)
  --tenants N          tenants to spread them over (default 1000; the first holds 10%)
  --appends N          appends per measured run (default 2000)
  --concurrency N      concurrent workers (default 8)
  --repeats N          timed rounds of each page query (default 200)
  --warmup N           untimed rounds of each page query first (default 20)`;

const DEFAULT_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
/** The target the page queries are held to: a deep page costs at most this times the first. */
const DEEP_PAGE_TARGET = 1.5;

interface Options {
  driver: DriverName;
  events: number;
  tenants: number;
  appends: number;
  concurrency: number;
  repeats: number;
  warmup: number;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      driver: { type: 'string', default: 'pg' },
      events: { type: 'string' },
      tenants: { type: 'string', default: '1000' },
      appends: { type: 'string', default: '2000' },
      concurrency: { type: 'string', default: '8' },
      repeats: { type: 'string', default: '200' },
      warmup: { type: 'string', default: '20' },
      help: { type: 'boolean', default: false },
    },
  });
  exitOnHelp(values.help, USAGE);
  const count = integerOption(USAGE);
  if (values.driver !== 'pg' && values.driver !== 'pglite') throw new Error(`--driver must be pg or pglite\n${USAGE}`);
  const driver: DriverName = values.driver;
  return {
    driver,
    events: count('events', values.events ?? '1000000', 1000),
    tenants: count('tenants', values.tenants, 2),
    appends: count('appends', values.appends, 1),
    concurrency: count('concurrency', values.concurrency, 1),
    repeats: count('repeats', values.repeats, 1),
    warmup: count('warmup', values.warmup, 0),
  };
}

const runJson = (result: RunResult) => ({
  events: result.events,
  seconds: round(result.seconds),
  events_per_s: round(result.eventsPerSecond, 1),
  latency_ms: { mean: round(result.latency.mean), p50: round(result.latency.p50), p99: round(result.latency.p99), max: round(result.latency.max) },
  statements_per_transaction: round(result.statementsPerAppend, 2),
  mean_ms_per_event: Object.fromEntries(Object.entries(result.breakdown).map(([step, ms]) => [step, round(ms, 4)])),
});

const ratio = (value: number, base: number) => value / base;

async function main(): Promise<void> {
  const options = parseOptions();
  const adminUrl = process.env.BENCH_PG_URL ?? DEFAULT_ADMIN_URL;
  const command = commandLine('bench-audit', 'bench:audit', 'bench/audit.ts');
  const date = new Date();
  const loadAtStart = os.loadavg();
  console.log(`Audit log benchmark: driver ${options.driver}, ${int(options.events)} events over ${int(options.tenants)} tenants`);
  if (options.events !== 1_000_000) {
    console.log(`  NOTE: ${int(options.events)} events, not the 1,000,000 of the reference runs: figures are not comparable`);
  }

  const bench = await openBenchDatabase(options.driver, { adminUrl, poolSize: options.concurrency + 2 });
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    console.log(`\n${signal}: dropping the benchmark database`);
    void bench
      .abort()
      .catch((error: unknown) => console.error('could not drop the benchmark database:', error))
      .finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    console.log(`  database: ${bench.location}, migrated`);
    const [server] = await bench.db.query<{ version: string }>('SELECT version()');
    const version = server?.version ?? 'unknown';

    console.log(`\nSeeding ${int(options.events)} events with INSERT ... SELECT`);
    const seed = await seedAuditLog(bench.db, {
      events: options.events,
      tenants: options.tenants,
      batch: 250_000,
      log: console.log,
    });
    const [big] = seed.tenants;
    if (!big || seed.tenants.length < options.concurrency + 1) throw new Error('seeding left too few tenants with events');
    console.log(`  seeded in ${fixed(seed.seconds, 1)} s; the big tenant ${big.slug} holds ${int(big.events)} events`);
    console.log('  seeded rows carry placeholder hashes (linked, but not of the canonical form): their chains do not verify');
    if (options.driver === 'pg') {
      // The seed wrote gigabytes of WAL; without this a checkpoint lands in the middle of the appends.
      await bench.db.exec('CHECKPOINT').catch(() => console.log('  (CHECKPOINT not permitted: appends may meet one)'));
    }

    const pages = await measureQueries(bench.db, options, seed);
    const appends = await measureAppends(bench.db, options, seed);
    const hashMicros = hashCostMicros();

    const tenantFirst = pages[0]!.latency;
    const deepPages = pages.filter((page) => page.query.depth > 0);
    const targetMet = deepPages.every((page) => ratio(page.latency.p50, tenantFirst.p50) <= DEEP_PAGE_TARGET);

    console.log(`\nResults (${options.driver}, ${date.toISOString()})`);
    console.log(summaryTable(options, seed, appends, pages));
    console.log(
      'ratio: appends, events/s of appendEvent ÷ the baseline INSERT (3 round trips: BEGIN, INSERT, COMMIT);\n' +
        "       pages, p50 ÷ p50 of the big tenant's first page. round trips: per transaction or page.",
    );
    const deepRatios = deepPages
      .map(({ query, latency }) => {
        const p50 = fixed(ratio(latency.p50, tenantFirst.p50));
        return `${query.name} p50 ${p50}x, p99 ${fixed(ratio(latency.p99, tenantFirst.p99))}x`;
      })
      .join('; ');
    console.log(`\nDeep pages against the big tenant's first page: ${deepRatios}`);
    console.log(`Deep-page target (p50 within ${DEEP_PAGE_TARGET}x of that first page): ${targetMet ? 'met' : 'NOT met'}`);
    console.log(`Load average (1 min) at start ${fixed(loadAtStart[0]!)}, at end ${fixed(os.loadavg()[0]!)} on ${os.cpus().length} CPUs`);
    console.log(`Building and hashing one record (toRecord + hashRecord, in JS): ${fixed(hashMicros, 1)} µs`);

    const results = {
      benchmark: 'audit',
      driver: options.driver,
      date: date.toISOString(),
      command,
      machine: machine(),
      // Other work on the machine shows here first: the figures assume it stayed near zero.
      load_average_1_5_15: { start: loadAtStart.map((load) => round(load, 2)), end: os.loadavg().map((load) => round(load, 2)) },
      node: process.version,
      postgres: version,
      options,
      seed: {
        events: options.events,
        tenants: seed.tenants.length,
        big_tenant_events: big.events,
        seconds: round(seed.seconds, 1),
        hashes: 'placeholders (sha256 of "<tenant>:<seq>", linked): the seeded chains do not verify',
      },
      appends: appends.map((result) => ({
        scenario: result.scenario.name,
        concurrency: result.scenario.concurrency,
        external_id: result.scenario.withExternalId,
        append: runJson(result.append),
        baseline: runJson(result.baseline),
        append_over_baseline: round(ratio(result.append.eventsPerSecond, result.baseline.eventsPerSecond)),
      })),
      hash_us_per_event: round(hashMicros, 2),
      pages: {
        limit: PAGE_LIMIT,
        rows_fetched: PAGE_LIMIT + 1,
        warmup_rounds: options.warmup,
        timed_rounds: options.repeats,
        queries: pages.map((page) => ({
          query: page.query.name,
          filters: Object.keys(page.query.filters),
          depth: page.query.depth,
          latency_ms: { mean: round(page.latency.mean), p50: round(page.latency.p50), p99: round(page.latency.p99), max: round(page.latency.max) },
          p50_over_tenant_first: round(ratio(page.latency.p50, tenantFirst.p50)),
          p99_over_tenant_first: round(ratio(page.latency.p99, tenantFirst.p99)),
        })),
        deep_page_target: { max_p50_ratio: DEEP_PAGE_TARGET, met: targetMet },
      },
    };
    const dir = new URL('./results/', import.meta.url);
    await mkdir(dir, { recursive: true });
    const file = new URL(`audit-${options.driver}.json`, dir);
    await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`Written: bench/results/audit-${options.driver}.json`);
  } finally {
    await bench.close();
    console.log(options.driver === 'pg' ? 'Benchmark database dropped.' : 'Embedded database closed.');
  }
}

async function measureQueries(db: Database, options: Options, seed: SeedResult): Promise<PageResult[]> {
  const big = seed.tenants[0]!;
  const now = Date.now();
  // "The last twelve months" as a client would ask for them: every seeded event falls inside.
  const tenantFilters = { tenant_id: big.id, since: new Date(now - 366 * DAY_MS).toISOString(), until: new Date(now).toISOString() };
  const queries: PageQuery[] = [
    { name: 'page: big tenant, first', filters: tenantFilters, depth: 0 },
    { name: 'page: big tenant, deep', filters: tenantFilters, depth: Math.floor(big.events * 0.9) },
    { name: 'page: global, first', filters: {}, depth: 0 },
    { name: 'page: global, deep', filters: {}, depth: Math.floor(options.events * 0.9) },
  ];
  console.log(
    `\nPage queries: limit ${PAGE_LIMIT} (+1 as the API fetches), ${options.warmup} warm-up and ${options.repeats} timed rounds, round-robin`,
  );
  const results = await measurePages(db, queries, { warmup: options.warmup, repeats: options.repeats });
  for (const { query, latency } of results) {
    console.log(`  ${query.name} (${int(query.depth)} deep): p50 ${fixed(latency.p50, 3)} ms, p99 ${fixed(latency.p99, 3)} ms`);
  }
  return results;
}

async function measureAppends(db: Database, options: Options, seed: SeedResult): Promise<ScenarioResult[]> {
  const c = options.concurrency;
  // Tenants 1..c are mid-sized ones, each worker its own; the big tenant is the shared chain.
  const own = (worker: number) => seed.tenants[1 + worker]!.id;
  const scenarios: AppendScenario[] = [
    { name: 'append: 1 worker', concurrency: 1, tenantOf: own, withExternalId: false },
    { name: `append: ${c} workers, own tenants`, concurrency: c, tenantOf: own, withExternalId: false },
    { name: `append: ${c} workers, own tenants, external_id`, concurrency: c, tenantOf: own, withExternalId: true },
    { name: `append: ${c} workers, one tenant`, concurrency: c, tenantOf: () => seed.tenants[0]!.id, withExternalId: false },
  ];
  const warmup = Math.min(options.appends, 20 * c);
  console.log(
    `\nAppends: ${int(options.appends)} per run after ${warmup} untimed, in 4 rounds alternating baseline and appendEvent`,
  );
  const results: ScenarioResult[] = [];
  for (const scenario of scenarios) {
    const result = await measureScenario(db, scenario, { appends: options.appends, warmup, rounds: 4 });
    results.push(result);
    const steps = Object.entries(result.append.breakdown)
      .map(([step, ms]) => `${step} ${fixed(ms, 3)}`)
      .join(', ');
    console.log(
      `  ${scenario.name}: ${int(result.append.eventsPerSecond)} ev/s vs baseline ${int(result.baseline.eventsPerSecond)} ev/s`,
    );
    console.log(`    mean ms per append: ${steps}`);
    const baseSteps = Object.entries(result.baseline.breakdown)
      .map(([step, ms]) => `${step} ${fixed(ms, 3)}`)
      .join(', ');
    console.log(`    mean ms per baseline insert: ${baseSteps}`);
  }
  return results;
}

function summaryTable(options: Options, seed: SeedResult, appends: ScenarioResult[], pages: PageResult[]): string {
  const tenantFirst = pages[0]!.latency;
  const rows: string[][] = [
    [`seed: ${int(options.events)} events, ${int(seed.tenants.length)} tenants`, `${fixed(seed.seconds, 1)} s`, '', '', '', '', ''],
    ...appends.map(({ scenario, append, baseline }) => [
      `${scenario.name} (${int(append.events)})`,
      `${int(append.eventsPerSecond)} ev/s`,
      fixed(append.latency.p50, 2),
      fixed(append.latency.p99, 2),
      `${int(baseline.eventsPerSecond)} ev/s`,
      `${fixed(ratio(append.eventsPerSecond, baseline.eventsPerSecond))}x`,
      fixed(append.statementsPerAppend + 2, 0),
    ]),
    ...pages.map(({ query, latency }) => [
      `${query.name} (${int(query.depth)} deep)`,
      '',
      fixed(latency.p50, 3),
      fixed(latency.p99, 3),
      '',
      `${fixed(ratio(latency.p50, tenantFirst.p50))}x`,
      '1',
    ]),
  ];
  return table(['measure', 'throughput', 'p50 ms', 'p99 ms', 'baseline', 'ratio', 'round trips'], rows);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
