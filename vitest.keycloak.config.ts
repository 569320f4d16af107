// The suites that need the real Keycloak (test/keycloak-live): run by `npm test` after the others,
// beside the server scripts/with-keycloak started. `make test-short` leaves them out.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/keycloak-live/**/*.test.ts'],
    hookTimeout: 660_000,
    testTimeout: 60_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
