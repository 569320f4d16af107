// The service's layering, checked by dependency-cruiser (`npm run depcruise`, part of `npm test`
// and `npm run test:short`, so a violation fails `make test`). Only src/ is cruised: tests, bench
// and scripts may reach into any layer. Paths are relative to the repository root.
//
// The layers, inside out:
//   src/domain/   rules and vocabulary; pure, no I/O, knows nothing else of the service
//   src/store/    the database; never the HTTP layer
//   src/http/     Fastify routes, schemas and hooks; the only place the framework is used,
//                 together with src/app.ts (builds the app) and src/service.ts (runs it)
// test/layering.test.ts checks that each rule below rejects a synthetic violation.

/** The files that may use Fastify and the HTTP layer: the layer itself and the two that assemble it. */
const HTTP_EDGE = '^src/(http/|app[.]ts$|service[.]ts$)';

/** @type {import('dependency-cruiser').IConfiguration} */
export default {
  forbidden: [
    {
      name: 'domain-is-pure',
      severity: 'error',
      comment:
        'src/domain/ holds the rules and the vocabulary every other layer speaks; it imports only ' +
        'other domain files (and node: built-ins), never the store, services, HTTP or configuration.',
      from: { path: '^src/domain/' },
      to: { path: '^src/', pathNot: '^src/domain/' },
    },
    {
      name: 'store-not-http',
      severity: 'error',
      comment: 'The store answers in domain terms; HTTP shapes (schemas, problems, views) stay in src/http/.',
      from: { path: '^src/store/' },
      to: { path: '^src/http/' },
    },
    {
      name: 'fastify-only-at-the-edge',
      severity: 'error',
      comment:
        'Only src/http/, src/app.ts and src/service.ts use fastify or an @fastify/* package (types ' +
        'included). One exception: src/observability/tracing.ts loads @fastify/otel, an OpenTelemetry ' +
        'instrumentation like the pg and http ones beside it; the tracing preload must register it ' +
        'before Fastify itself is imported, so it cannot live in src/http/.',
      from: { path: '^src/', pathNot: HTTP_EDGE },
      to: {
        path: '^node_modules/(fastify|@fastify/[^/]+)/',
        pathNot: '^node_modules/@fastify/otel/',
      },
    },
    {
      name: 'fastify-otel-only-in-tracing',
      severity: 'error',
      comment: 'The @fastify/otel exception above is for the tracing setup alone.',
      from: { path: '^src/', pathNot: [HTTP_EDGE, '^src/observability/tracing[.]ts$'] },
      to: { path: '^node_modules/@fastify/otel/' },
    },
    {
      name: 'http-only-from-the-edge',
      severity: 'error',
      comment:
        'Nothing below the HTTP layer depends on it. Besides src/http/, src/app.ts and src/service.ts ' +
        '(it picks the rate-limit counter, local or Redis), two command-line tools do, for a ' +
        'reason: src/cli/write-openapi.ts builds the app and renders its routes as openapi.yaml ' +
        '(http/openapi.ts), and src/cli/verify-audit.ts reads the export file the HTTP layer writes, ' +
        'so it parses that wire shape (http/schemas/audit.ts, http/audit-view.ts). The other tools ' +
        '(migrate, token) have no reason to.',
      from: {
        path: '^src/',
        pathNot: [HTTP_EDGE, '^src/cli/write-openapi[.]ts$', '^src/cli/verify-audit[.]ts$'],
      },
      to: { path: '^src/http/' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A cycle makes module load order matter and layers meaningless: break it.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'src-not-to-dev-dep',
      severity: 'error',
      comment:
        'The service ships with `npm ci --omit=dev`: src/ may not import a devDependency, ' +
        'not even for its types (type-only imports from @types/* packages are the exception).',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], pathNot: '^node_modules/@types/' },
    },
    {
      name: 'src-not-to-undeclared',
      severity: 'error',
      comment: 'A package src/ imports must be in package.json, not merely present as some dependency of a dependency.',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that resolves to nothing would slip past every rule above.',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count: `import type { FastifyInstance }` is still a dependency on the layer.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.json'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    skipAnalysisNotInRules: true,
  },
};
