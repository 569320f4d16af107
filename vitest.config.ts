import { configDefaults, defineConfig } from 'vitest/config';

// The suite runs in three groups, one after the other:
//   parallel  most files, TEST_WORKERS of them at a time (2 by default): each file boots its own
//             databases and servers on ports of its own, so files do not see each other.
//   timed     the files whose assertions are about time (deadlines, budgets, windows, propagation
//             within N ms) and the reliability suite; they run once the CPU-heavy parallel group
//             is done, two at a time as well: a timing test mostly waits, and its bounds are
//             written for a shared 2-core machine (one at a time took 350 s against 210 s).
//   alone     the one file that loads the machine on purpose and compares latencies under that
//             load with latencies before it (hostile-load): it runs last, by itself.
// A new file belongs to the parallel group unless it measures time.
const TIMED = [
  // Shutdown timed to the drain and the grace period; the reliability suite (faults, outages,
  // replicas, load). Spawning a process is no reason on its own: waiting for one is not timing it
  // (PROCESS_WAIT_MS), and freePort() picks ports no client socket can take in the meantime.
  'test/process/drain.test.ts',
  'test/process/shutdown.test.ts',
  // The reliability suite but its fuzzing, which counts answers, not time, and the hostile load (ALONE).
  'test/reliability/keycloak-faults.test.ts',
  'test/reliability/outage.test.ts',
  'test/reliability/replicas.test.ts',
  'test/reliability/deliveries.test.ts',
  // Rate limits count requests per minute window; limits.test.ts times 408s and statement timeouts.
  'test/http/rate-limit.test.ts',
  'test/http/rate-limit-budgets.test.ts',
  'test/http/limits.test.ts',
  // Budgets, stalls and give-up times in ms.
  'test/http/keycloak-provisioning.test.ts',
  'test/http/audit-reads-bounded.test.ts',
  'test/http/health.test.ts',
  // Cache invalidation must arrive within 1 s; the LISTEN heartbeat notices a loss within 1 s;
  // claims delayed by a slow notification. (Tests that warm a cache and count misses wait until the
  // server has heard a marker notification, test/support/notifications.ts: they run in parallel.)
  'test/keys/invalidation.test.ts',
  'test/store/pg-listener.test.ts',
  'test/http/claims.test.ts',
  // Per-call timeouts of a few hundred ms, checked to finish within 1.5-2 s.
  'test/keycloak/http-adapter.test.ts',
  'test/keycloak/stub.test.ts',
  'test/auth/verifier-issuer.test.ts',
  // Event streams: heartbeats every 300 ms, a stalled reader cut after 1.5 s of no progress.
  'test/http/events-stream.test.ts',
  // In-process key verification: revocations, freezes and entitlement changes refused within 1 s.
  'packages/verify/test/invalidation.test.ts',
  'examples/headless-product/test/revocation.test.ts',
];

const ALONE = ['test/reliability/hostile-load.test.ts'];

// Workspace packages (packages/*, examples/*) resolve to their TypeScript sources under this
// export condition (tsconfig.json says the same to the compiler): their tests need no build.
const SOURCE_CONDITIONS = ['tenant-registry-source', 'node', 'development|production'];

const workers = Number(process.env.TEST_WORKERS ?? 2);

// What every group shares. The groups spell it out rather than `extends: true`, which would hand
// each of them the global setup as well: vitest runs a project's global setup once per project,
// so the template, the compiled copy and the generated files would be made four times over.
const SHARED = {
  resolve: { conditions: SOURCE_CONDITIONS },
  ssr: { resolve: { conditions: SOURCE_CONDITIONS } },
};

const SHARED_TEST = {
  pool: 'forks' as const,
  // A worker runs file after file in one process (each file still gets its own module graph
  // state only through what it builds itself: apps, databases, servers). Isolating every file
  // in a fresh module graph cost ~1 s of imports per file and a quarter of the parallel group's
  // CPU. TEST_ISOLATE=true isolates them again, to rule out a dependence on the order of files.
  isolate: process.env.TEST_ISOLATE === 'true',
  // Tests are short-lived processes: V8's optimising WebAssembly compiler would spend seconds of
  // CPU per file on PGlite's module and barely run what it made. Its baseline compiler alone is
  // ready sooner and fast enough (the spawned services get the same flag: test/process/spawn.ts).
  execArgv: ['--liftoff-only'],
  // Each file boots its own databases (an embedded one takes ~0.5 s of CPU to open); generous hooks
  // keep a loaded machine from failing on setup time rather than behaviour.
  // A hook may start the service as a process: PROCESS_WAIT_MS (120 s) for it to be ready, twice
  // over (PROCESS_TEST_TIMEOUT_MS, test/process/spawn.ts); tests that spawn say so themselves.
  hookTimeout: 300_000,
  testTimeout: 60_000,
};

export default defineConfig({
  ...SHARED,
  test: {
    // Run once, for the root project, whose provided values (inject) reach every group: the
    // migrated databases every test database of each driver starts from, the compiled
    // copy of src/ every spawned process runs, and the packages' files generated from
    // openapi.yaml, which their sources import.
    globalSetup: [
      'test/support/pglite-template.ts',
      'test/support/pg-template.ts',
      'test/support/compiled-sources.ts',
      'packages/client/test/support/generated.ts',
    ],
    projects: [
      {
        ...SHARED,
        test: {
          ...SHARED_TEST,
          name: 'parallel',
          // The packages' and the example's tests run on their TypeScript sources: no build first.
          include: ['test/**/*.test.ts', 'packages/*/test/**/*.test.ts', 'examples/*/test/**/*.test.ts'],
          // The real-Keycloak suites run with their own configuration (vitest.keycloak.config.ts).
          exclude: [...configDefaults.exclude, ...TIMED, ...ALONE, 'test/keycloak-live/**'],
          maxWorkers: workers,
          sequence: { groupOrder: 0 },
        },
      },
      {
        ...SHARED,
        test: {
          ...SHARED_TEST,
          name: 'timed',
          include: TIMED,
          // Two at a time whatever TEST_WORKERS says: the bounds are written for that.
          maxWorkers: 2,
          sequence: { groupOrder: 1 },
          // The reliability tests start processes and load them for a while.
          testTimeout: 300_000,
        },
      },
      {
        ...SHARED,
        test: {
          ...SHARED_TEST,
          name: 'alone',
          include: ALONE,
          maxWorkers: 1,
          sequence: { groupOrder: 2 },
          testTimeout: 300_000,
        },
      },
    ],
  },
});
