// buildApp(deps): the whole HTTP service around the dependencies it is handed. It opens nothing
// itself (service.ts and the tests own the database and start its caching), so tests build as many
// apps as they like.
import http from 'node:http';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Authentication } from './auth/setup.js';
import type { Config } from './config.js';
import type { Catalog } from './domain/products.js';
import { apiKeyRoutes } from './http/api-keys.js';
import { createVerifyLane, keyVerifyRoutes } from './http/key-verify.js';
import { claimsRoutes } from './http/claims.js';
import { answerClientError } from './http/client-errors.js';
import type { Caching } from './caching/setup.js';
import type { KeyVerification } from './keys/setup.js';
import type { KeycloakAdapter } from './keycloak/adapter.js';
import { registerAccessControl } from './http/access.js';
import { devTokenRoutes } from './http/dev-token.js';
import { registerHeavyReads, type HeavyReadLimits } from './http/heavy-reads.js';
import { registerIdempotency } from './http/idempotency.js';
import { registerRateLimits, type RateLimiting } from './http/rate-limit.js';
import { registerDeclaredProblems } from './http/declared-problems.js';
import { answerFrameworkError, registerErrorHandler } from './http/error-handler.js';
import { auditRoutes } from './http/audit.js';
import { DEFAULT_EVENT_STREAM, eventRoutes, type EventStreamOptions } from './http/events.js';
import type { FeedSignal } from './events/feed-signal.js';
import { EXPORT_STALL_MS } from './http/streamed-answer.js';
import { catalogRoutes } from './http/catalog.js';
import { entitlementRoutes } from './http/entitlements.js';
import { healthRoutes } from './http/health.js';
import { metricsRoutes } from './http/metrics.js';
import { registerJsonParser } from './http/json-parser.js';
import { registerNotFoundHandler } from './http/not-found.js';
import { registerOpenApi } from './http/openapi.js';
import { REQUEST_ID_HEADER, requestIdFor } from './http/request-id.js';
import { RequestLog } from './http/request-log.js';
import { tenantExportRoutes } from './http/tenant-export.js';
import { tenantRoutes } from './http/tenants.js';
import { webhookRoutes } from './http/webhooks.js';
import { parseAllowlist, type Allowlist } from './events/url-guard.js';
import { validatorCompiler } from './http/validation.js';
import { findTenantStanding } from './store/tenants.js';
import { SERVICE_VERSION } from './version.js';

export interface AppDeps {
  /**
   * The caches and the database as the app uses it (caching/setup.ts). There is no other
   * database handle here on purpose: see where buildApp binds `db`.
   */
  caching: Caching;
  auth: Authentication;
  catalog: Catalog;
  /** Key verification over caching.keyCache (keys/setup.ts). */
  keys: KeyVerification;
  /** The Keycloak adapter and how long tenant creation may wait for it. */
  keycloak: { adapter: KeycloakAdapter; budgetMs: number };
  config: Pick<Config, 'appEnv' | 'bodyLimitBytes'> & Partial<Pick<Config, 'requestTimeoutMs' | 'headersTimeoutMs'>>;
  /** The heavy-read budget (audit export and verify); DEFAULT_HEAVY_READS when absent. */
  heavyReads?: HeavyReadLimits;
  /** How long an export (audit, tenant) whose client stopped reading keeps its slot; EXPORT_STALL_MS when absent. */
  exportStallMs?: number;
  /** Rate limiting; none when absent (tests that do not test it). */
  rateLimits?: RateLimiting;
  /** Serve GET /metrics on this app (the default); false keeps it off this listener (METRICS_ON_MAIN_LISTENER). */
  metricsOnMainPort?: boolean;
  /** Set when the process is about to stop: readiness answers 503 so the load balancer moves on. */
  shutdown?: { draining: boolean };
  /**
   * Turn an answer whose status or problem code its route does not declare into a 500 naming it
   * (http/declared-problems.ts). The tests set it, so every test run checks the declarations.
   */
  checkProblems?: boolean;
  /** A pino logger; tests pass a silent one. */
  logger: FastifyBaseLogger;
  /** News of committed change events, which wakes the event streams (events/feed-signal.ts). */
  feed: FeedSignal;
  /** The event stream's heartbeat, lifetime and tenant budget; DEFAULT_EVENT_STREAM for what is absent. */
  eventStream?: Partial<EventStreamOptions>;
  /** The time source of lifecycle rules (trial ends); tests can pin it. */
  clock?: () => Date;
  /** What webhook URLs may reach although internal (WEBHOOK_ALLOW_PRIVATE), and the test ping's timeout; nothing internal when absent. */
  webhooks?: { allowPrivate: Allowlist; timeoutMs?: number };
}

// Each heavy read holds about a megabyte of events while it runs. Eight exports per replica (two
// per caller) keep a stalled export's cost bounded; three verifications (one per caller), since
// each also holds one of the DB_POOL_SIZE connections for its whole walk. Event streams hold at
// most a few pages each (http/events.ts) and no connection while they wait.
export const DEFAULT_HEAVY_READS: HeavyReadLimits = {
  export: { perReplica: 8, perCaller: 2 },
  verify: { perReplica: 3, perCaller: 1 },
  // An event stream holds a socket and a waiter, and one read of the feed per batch of commits.
  stream: { perReplica: 200, perCaller: 5 },
};

/** Fastify's own default keep-alive timeout, kept on the server buildApp makes itself. */
const FASTIFY_KEEP_ALIVE_MS = 72_000;

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  // The one database handle of the app, and the contract: every route, hook and plugin below gets
  // this one and no other. Its write transactions evict what they changed from this replica's
  // caches as they commit, so the request after a change (a revoke, a cancel, a revoked product)
  // never answers from the old entry; other replicas hear of it through NOTIFY a moment later.
  // A route handed the bare database would answer stale here until that NOTIFY arrived, and
  // whether a route's writes touch cached data is not something to decide route by route.
  // Transactions that change nothing cached pay one indexed read of the invalidation log.
  const db = deps.caching.db;
  // Set when the app starts to close (preClose below); answers sent from then on end their connection.
  let closing = false;
  const app = Fastify({
    loggerInstance: deps.logger,
    genReqId: requestIdFor,
    requestIdHeader: false,
    logController: new RequestLog(),
    bodyLimit: deps.config.bodyLimitBytes,
    // The server is made here rather than by Fastify so that key verification's lane can answer
    // before the router (http/key-verify.ts). So what Fastify would set on a server of its own is
    // set here: its keep-alive timeout, and the request timeout (defaults for apps built without
    // it, the tests; service.ts passes the configured value). Node checks the header and request
    // timeouts only every connectionsCheckingInterval (30 s by default), so a 10 s header timeout
    // could let a slow client hold a socket for 40 s.
    serverFactory: (router) => {
      const lane = createVerifyLane(
        {
          verifier: deps.keys.verifier,
          tokens: deps.auth.verifier,
          rateLimits: deps.rateLimits ?? null,
          bodyLimitBytes: deps.config.bodyLimitBytes,
          logger: deps.logger,
          closing: () => closing,
        },
        router,
      );
      const server = http.createServer({ connectionsCheckingInterval: 1_000 }, lane);
      server.keepAliveTimeout = FASTIFY_KEEP_ALIVE_MS;
      server.requestTimeout = deps.config.requestTimeoutMs ?? 30_000;
      return server;
    },
    clientErrorHandler: answerClientError,
    // Router refusals (a path segment too long or not decodable) answer problem+json too.
    frameworkErrors: answerFrameworkError,
    // During shutdown, requests already on an open connection are served (the database is
    // still open until they finish) and told Connection: close, rather than refused.
    return503OnClosing: false,
    routerOptions: { ignoreTrailingSlash: false },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.server.headersTimeout = deps.config.headersTimeoutMs ?? 10_000;
  app.setValidatorCompiler(validatorCompiler);
  // Hooks on the hot paths (every request of verify, by-slug, claims) are written callback style
  // and settle synchronously when they can: a promise per hook per request is measurable there
  // (BENCHMARKS.md). Hooks of the other routes may be async.
  //
  // Fastify closes the connections that are idle when shutdown starts; one that carries an
  // in-flight request would stay open after its answer (keep-alive) and hold the process up.
  // Answers sent while closing therefore end their connection.
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header(REQUEST_ID_HEADER, request.id);
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });
  // The order of what follows is the order of the hooks each route gets, and it is the contract:
  // - every register* below runs before the first route is added: they attach per-route hooks
  //   in onRoute, and a route added earlier would get none (registerNotFoundHandler also keeps
  //   its second router of the served paths from there);
  // - access control first: its onRequest hook authenticates before any other hook runs, and its
  //   preParsing hook refuses a principal without a fitting role before the body is read;
  // - rate limits after it: they count the authenticated caller (and, before authentication,
  //   failed attempts per address);
  // - heavy reads and idempotency after the access rules: their preHandlers run once the
  //   request is authorized, so a refused caller takes no slot and claims no key;
  // - the OpenAPI plugin last before the routes: it collects them, with what the hooks above
  //   added to their schemas (the Idempotency-Key header).
  registerErrorHandler(app);
  registerDeclaredProblems(app, { check: deps.checkProblems ?? false });
  registerNotFoundHandler(app);
  registerJsonParser(app);
  registerAccessControl(app, deps.auth.verifier, (tenantId, subject) => findTenantStanding(db, tenantId, subject));
  registerRateLimits(app, deps.rateLimits ?? null, deps.auth.verifier);
  registerHeavyReads(app, deps.heavyReads ?? DEFAULT_HEAVY_READS);
  registerIdempotency(app, db, deps.clock ?? (() => new Date()));
  await registerOpenApi(app, SERVICE_VERSION);

  if (deps.metricsOnMainPort ?? true) await app.register(metricsRoutes);
  await app.register(healthRoutes, {
    db,
    keycloak: deps.keycloak.adapter,
    shutdown: deps.shutdown ?? { draining: false },
    issuer: deps.auth.devIssuer ? 'dev' : (deps.auth.issuer ?? null),
  });
  const clock = deps.clock ?? (() => new Date());
  const tenants = deps.caching.tenantCache;
  await app.register(tenantRoutes, {
    db,
    clock,
    tenants,
    keycloak: deps.keycloak.adapter,
    provisionBudgetMs: deps.keycloak.budgetMs,
    appEnv: deps.config.appEnv,
  });
  const exportStallMs = deps.exportStallMs ?? EXPORT_STALL_MS;
  await app.register(tenantExportRoutes, { db, clock, exportStallMs });
  await app.register(auditRoutes, { db, clock, exportStallMs });
  await app.register(eventRoutes, { db, feed: deps.feed, stream: { ...DEFAULT_EVENT_STREAM, ...deps.eventStream }, stallMs: exportStallMs });
  await app.register(webhookRoutes, { db, clock, allowPrivate: deps.webhooks?.allowPrivate ?? parseAllowlist([]), timeoutMs: deps.webhooks?.timeoutMs });
  await app.register(catalogRoutes, { db, catalog: deps.catalog, clock });
  await app.register(entitlementRoutes, { db, tenants, catalog: deps.catalog, clock });
  await app.register(apiKeyRoutes, { db, catalog: deps.catalog, pepper: deps.keys.pepper, clock });
  await app.register(keyVerifyRoutes, { verifier: deps.keys.verifier });
  await app.register(claimsRoutes, { tenants, clock });
  if (deps.auth.devIssuer) {
    if (deps.config.appEnv !== 'dev') throw new Error('the development issuer runs only with APP_ENV=dev');
    await app.register(devTokenRoutes, { issuer: deps.auth.devIssuer });
  }

  return app;
}
