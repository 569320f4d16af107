// The service, once main.ts has read a valid configuration: open the database, build the app,
// listen, and stop cleanly. On SIGTERM (the orchestrator's stop) it first turns /readyz to 503 and
// keeps serving for the drain delay, so the load balancer stops sending before the listener
// closes; then, as on SIGINT (Ctrl-C, no delay), it stops accepting, finishes in-flight requests,
// closes the database and exits 0.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { buildApp } from './app.js';
import { authenticationFor } from './auth/setup.js';
import { loadCatalog } from './catalog-file.js';
import { startHousekeeping } from './jobs/housekeeping.js';
import { startTrialExpiryJob } from './jobs/trial-expiry.js';
import { startKeycloakSyncJob } from './jobs/keycloak-sync.js';
import { startCaching } from './caching/setup.js';
import { startFeedSignal, type FeedSignal } from './events/feed-signal.js';
import { startNatsRelay, type NatsRelay } from './events/nats-relay.js';
import { parseAllowlist } from './events/url-guard.js';
import { startWebhookDispatcher } from './events/webhook-dispatcher.js';
import { startKeyVerification } from './keys/setup.js';
import { keycloakAdapterFor } from './keycloak/setup.js';
import type { Config } from './config.js';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { LocalCounter, RedisCounter, type Counter } from './http/rate-limit.js';
import { createLogger } from './observability/logger.js';
import { observeKeyCache, observeNatsRelay, observePool } from './observability/metrics.js';
import { startMetricsServer } from './observability/metrics-server.js';
import { startOtlpExports } from './observability/otlp-exports.js';
import { isTracingOn, shutdownTracing, traceLogMixin, tracingWithoutPreload } from './observability/tracing.js';
import type { Database } from './store/database.js';
import { openDatabase } from './store/open.js';

/**
 * This process as a holder of the feed consumers' leases (the JetStream relay, the webhook
 * dispatcher). Unique per process: a restarted replica is a new holder and waits out its old lease.
 */
const REPLICA_ID = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;

/** The JetStream relay when NATS_URL is set: it connects in the background, so the service starts without NATS. */
function natsRelayFor(config: Config, db: Database, feed: FeedSignal, logger: Logger, holder: string): NatsRelay | null {
  const nats = config.events.nats;
  if (nats === null) return null;
  const relay = startNatsRelay({
    db,
    feed,
    servers: nats.servers,
    stream: nats.stream,
    subjectPrefix: nats.subjectPrefix,
    holder,
    leaseMs: config.events.leaseMs,
    streamMaxAgeMs: config.events.retentionMs,
    onError: (error) => logger.warn({ err: error }, 'JetStream relay failed; retrying'),
    log: logger,
  });
  observeNatsRelay(relay);
  return relay;
}

function rateLimitCounter(redisUrl: string | null, logger: Logger): Counter {
  if (redisUrl === null) return new LocalCounter();
  // No offline queue and one retry: while Redis is away, requests are let through at once
  // (rate-limit.ts) instead of waiting for it.
  const redis = new Redis(redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: false });
  let warned = false;
  redis.on('error', (error: Error) => {
    if (!warned) logger.warn({ err: error }, 'Redis for rate limits is unreachable; limits are not enforced until it is back');
    warned = true;
  });
  redis.on('ready', () => (warned = false));
  return new RedisCounter(redis);
}

/** Runs the service on `config` until a signal stops it; rejects when it cannot start. */
export async function runService(config: Config): Promise<void> {
  // Metrics and logs pushed over OTLP, when asked for: started before the logger, so that every
  // line from the first one on is also sent as a log record.
  const otlp = await startOtlpExports(config.telemetry);
  // With tracing on (the preload started it), every line written inside a request carries its
  // trace_id and span_id; with it off, no mixin runs at all.
  const logger = createLogger(config, { mixin: traceLogMixin(), copy: otlp.copyLogLine });
  if (tracingWithoutPreload(config.telemetry)) {
    logger.warn('OTEL_EXPORTER_OTLP_ENDPOINT is set but the process was started without the tracing preload: no traces');
  }
  const catalog = await loadCatalog(config.catalogPath ?? undefined);
  const db = await openDatabase(config.database, config.pool);
  const auth = await authenticationFor(config, { log: logger });
  // Discovered once in the background, not awaited: the service starts while the issuer is down,
  // and an issuer that is unreachable or names another issuer is logged now, not at first use.
  void auth.issuer?.check();
  const caching = await startCaching(db);
  const feed = await startFeedSignal(db);
  // Read before anything listens: an allowlist entry that is not a host, address or range stops the boot.
  const webhookAllowlist = parseAllowlist(config.events.webhookAllowPrivate);
  const keys = startKeyVerification(db, caching.keyCache, {
    pepper: config.apiKeyPepper,
    clock: () => new Date(),
    onError: (error) => logger.warn({ err: error }, 'recording API key use failed; retrying next round'),
  });
  const keycloak = { adapter: keycloakAdapterFor(config), budgetMs: config.keycloak.provisionBudgetMs };
  const shutdown = { draining: false };
  const rateLimits = { counter: rateLimitCounter(config.redisUrl, logger), limits: config.rateLimits };
  const app = await buildApp({
    caching,
    feed,
    auth,
    catalog,
    keys,
    keycloak,
    config,
    logger,
    shutdown,
    rateLimits,
    metricsOnMainPort: config.metricsOnMainListener,
    webhooks: { allowPrivate: webhookAllowlist },
  });
  observeKeyCache(caching.keyCache);
  if (db.poolState) observePool(db.poolState());
  const metricsServer = config.metricsListen ? await startMetricsServer(config.metricsListen) : null;
  const trialExpiry =
    config.trialExpiryIntervalMs > 0
      ? // Jobs write through the evicting handle too: this replica's caches forget at commit.
        startTrialExpiryJob(caching.db, {
          intervalMs: config.trialExpiryIntervalMs,
          clock: () => new Date(),
          onError: (error) => logger.error({ err: error }, 'trial expiry round failed; retrying next round'),
        })
      : null;

  // Organizations follow their tenants in Keycloak; with provisioning off there is none to follow.
  const keycloakSync =
    keycloak.adapter.kind === 'disabled'
      ? null
      : startKeycloakSyncJob({
          db: caching.db,
          keycloak: keycloak.adapter,
          clock: () => new Date(),
          reconcileIntervalMs: config.keycloakReconcileMs,
          onDrift: (tenantId, changed) => logger.warn({ tenant_id: tenantId, changed }, 'Keycloak organization was out of step; put back'),
          onError: (error) => logger.error({ err: error }, 'Keycloak sync round failed; retrying next round'),
        });

  const housekeeping = startHousekeeping(db, {
    clock: () => new Date(),
    eventRetentionMs: config.events.retentionMs,
    onError: (error) => logger.warn({ err: error }, 'housekeeping failed; retrying next round'),
  });
  const natsRelay = natsRelayFor(config, db, feed, logger, REPLICA_ID);

  // One replica at a time delivers webhooks (the lease); the others stand by.
  const webhooks = startWebhookDispatcher({
    db,
    feed,
    holder: REPLICA_ID,
    leaseMs: config.events.leaseMs,
    // The first attempt goes at once; the configured delays come after each failure.
    schedule: [0, ...config.events.webhookRetryMs],
    allowPrivate: webhookAllowlist,
    onError: (error) => logger.warn({ err: error }, 'webhook dispatch failed; retrying'),
  });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    if (signal === 'SIGTERM' && config.shutdownDrainMs > 0) {
      shutdown.draining = true;
      logger.info({ signal, drain_ms: config.shutdownDrainMs }, 'shutting down: not ready, still serving');
      await new Promise((resolve) => setTimeout(resolve, config.shutdownDrainMs));
    }
    logger.info({ signal }, 'shutting down: finishing in-flight requests');
    // If draining hangs (a client that never finishes its body), give up at the deadline.
    const deadline = setTimeout(() => {
      logger.error({ grace_ms: config.shutdownGraceMs }, 'in-flight requests did not finish in time');
      process.exit(1);
    }, config.shutdownGraceMs);
    deadline.unref();
    await app.close();
    await trialExpiry?.stop();
    await keycloakSync?.stop();
    await housekeeping.stop();
    // Before the database closes: the relay and the dispatcher save their cursors and hand
    // their leases back, so another replica takes over at once.
    await natsRelay?.stop();
    await webhooks.stop();
    await rateLimits.counter.close();
    await metricsServer?.close();
    await keys.stop();
    await feed.stop();
    await caching.stop();
    await db.close();
    logger.info('stopped');
    // The spans of the last requests, the last metrics and the last lines (the one above included)
    // are still buffered: send them, side by side, each bounded and never throwing.
    await Promise.all([shutdownTracing(), otlp.shutdown()]);
    process.exit(0);
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, (s) => void stop(s));

  await app.listen({ host: config.listen.host, port: config.listen.port });
  logger.info(
    {
      env: config.appEnv,
      database: config.database.kind === 'embedded' ? 'embedded' : 'postgres',
      issuer: auth.devIssuer ? 'embedded development issuer (POST /dev/token)' : config.auth.issuer,
      keycloak: keycloak.adapter.kind,
      metrics: metricsServedOn(config),
      otlp: otlpSignals(config),
    },
    'tenant-registry ready',
  );
  logDeliberateGaps(config, logger);
}

/** Where GET /metrics answers, for the boot log. */
function metricsServedOn(config: Config): string {
  const where = [config.metricsOnMainListener ? 'ADDR' : '', config.metricsListen ? 'METRICS_ADDR' : ''].filter(Boolean);
  return where.length > 0 ? where.join(' and ') : 'not served';
}

/** What is exported over OTLP, for the boot log. */
function otlpSignals(config: Config): string {
  // Traces only when the preload did start them (without it, the warning above says why not).
  const signals = (['traces', 'metrics', 'logs'] as const).filter(
    (signal) => config.telemetry[signal] !== null && (signal !== 'traces' || isTracingOn()),
  );
  return signals.length > 0 ? signals.join(', ') : 'none';
}

/** What this configuration leaves out on purpose, said once at boot with how to change it. */
function logDeliberateGaps(config: Config, logger: Logger): void {
  if (!config.metricsOnMainListener && config.metricsListen === null) {
    // The default outside dev: nobody scrapes the public listener, so an upgrade that expected
    // it there learns why here.
    logger.warn(
      'GET /metrics is not served: set METRICS_ADDR=host:port for a listener of its own, or METRICS_ON_MAIN_LISTENER=true to serve it on ADDR',
    );
  }
  if (config.keycloak.provisioning === 'off') {
    logger.info(
      'Keycloak provisioning is off (KEYCLOAK_PROVISIONING=off): tenants created with admin_email are recorded as failed, no invitation is sent',
    );
  }
}
