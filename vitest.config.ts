import { configDefaults, defineConfig } from 'vitest/config';

// The suite runs in two groups, one after the other:
//   parallel  most files, TEST_WORKERS of them at a time (2 by default): each file boots its own
//             databases and servers on ports of its own, so files do not see each other.
//   serial    the files whose assertions are about time (deadlines, budgets, windows, propagation
//             within N ms), that spawn the service as a process, or that load the machine on
//             purpose; they run one at a time once the parallel group is done, on a quiet machine.
// A new file belongs to the parallel group unless it measures time or spawns the service.
const SERIAL = [
  // The service as a real process, and the reliability suite (faults, outages, replicas, load).
  'test/process/**/*.test.ts',
  'test/reliability/**/*.test.ts',
  'test/observability/tracing*.test.ts',
  // Rate limits count requests per minute window; limits.test.ts times 408s and statement timeouts.
  'test/http/rate-limit.test.ts',
  'test/http/rate-limit-budgets.test.ts',
  'test/http/limits.test.ts',
  // Budgets, stalls and give-up times in ms.
  'test/http/keycloak-provisioning.test.ts',
  'test/http/audit-reads-bounded.test.ts',
  'test/http/health.test.ts',
  // Cache invalidation must arrive within 1 s; the LISTEN heartbeat notices a loss within 1 s;
  // tests that let pending notifications arrive (150 ms) before they warm a cache and count misses.
  'test/keys/invalidation.test.ts',
  'test/store/pg-listener.test.ts',
  'test/http/claims.test.ts',
  'test/http/key-verify.test.ts',
  'test/http/api-key-usage.test.ts',
  // Per-call timeouts of a few hundred ms, checked to finish within 1.5-2 s.
  'test/keycloak/http-adapter.test.ts',
  'test/keycloak/stub.test.ts',
  'test/auth/verifier-issuer.test.ts',
];

const workers = Number(process.env.TEST_WORKERS ?? 2);

export default defineConfig({
  test: {
    // No include here: a project that extends this config would add its own to it, not replace it.
    pool: 'forks',
    // Each file boots its own databases (an embedded one takes ~2 s to start); generous hooks
    // keep a loaded machine from failing on setup time rather than behaviour.
    hookTimeout: 120_000,
    testTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'parallel',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...SERIAL],
          maxWorkers: workers,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'serial',
          include: SERIAL,
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
          // Spawning tests wait up to PROCESS_WAIT_MS (120 s, test/process/spawn.ts) for a
          // process to be ready; PROCESS_TEST_TIMEOUT_MS (300 s) leaves room for two such waits.
          hookTimeout: 300_000,
          testTimeout: 300_000,
        },
      },
    ],
  },
});
