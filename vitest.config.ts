import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The real-Keycloak suites run with their own configuration (vitest.keycloak.config.ts).
    exclude: ['test/keycloak-live/**', '**/node_modules/**'],
    // Each file boots its own databases (an embedded one takes ~2 s to start); generous hooks
    // keep a loaded CI machine from failing on setup time rather than behaviour.
    hookTimeout: 60_000,
    testTimeout: 30_000,
    pool: 'forks',
  },
});
