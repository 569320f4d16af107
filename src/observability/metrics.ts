// Prometheus metrics, in the process-wide registry of prom-client (the convention for Node
// services: one registry, one scrape). Components count into the instruments below; /metrics (or
// the METRICS_ADDR listener) renders them. Labels are bounded: route patterns, never raw URLs.
// An instrument registers itself when constructed; those read only at scrape time (collect) are
// constructed and not kept.
import { Counter, Gauge, Histogram, collectDefaultMetrics, register } from 'prom-client';
import { RequestDurations } from './request-durations.js';

collectDefaultMetrics({ prefix: 'tenant_registry_' });

export const metricsRegistry = register;

// Its _count series is the number of requests, per route and status.
const httpDuration = new RequestDurations(
  'tenant_registry_http_request_duration_seconds',
  'Time to answer an HTTP request, by method, route pattern and status (_count: requests)',
  // From the hot paths' sub-millisecond answers to the export's seconds.
  [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
);
register.registerMetric(httpDuration as unknown as Parameters<typeof register.registerMetric>[0]);

export function observeRequest(method: string, route: string, status: number, seconds: number): void {
  httpDuration.observe(method, route, status, seconds);
}

// Counted in a plain Map and handed to prom-client at scrape time: its Counter hashes the labels
// on every inc(), a cost every key verification would pay.
const verdictCounts = new Map<string, number>();

export function countVerification(code: string): void {
  verdictCounts.set(code, (verdictCounts.get(code) ?? 0) + 1);
}

new Counter({
  name: 'tenant_registry_key_verifications_total',
  help: 'API key verifications, by verdict code',
  labelNames: ['code'] as const,
  collect() {
    this.reset();
    for (const [code, count] of verdictCounts) this.inc({ code }, count);
  },
});

// Key verifications by what answered them: the verify lane before the router, or the route after
// the lane handed the request over (http/verify-lane.ts). Plain counts for the same reason.
const laneCounts = { answered: 0, handed_over: 0 };

export function countVerifyLane(outcome: keyof typeof laneCounts): void {
  laneCounts[outcome] += 1;
}

new Counter({
  name: 'tenant_registry_verify_lane_requests_total',
  help: 'Key verify requests by where they were answered: answered (the lane, before the router) or handed_over (to the route)',
  labelNames: ['outcome'] as const,
  collect() {
    this.reset();
    for (const [outcome, count] of Object.entries(laneCounts)) this.inc({ outcome }, count);
  },
});

let keyCacheSource: { hits: number; misses: number } | null = null;

new Gauge({
  name: 'tenant_registry_key_cache_lookups',
  help: 'Verify cache lookups since start, by result (hit or miss); hit ratio = hit / (hit + miss)',
  labelNames: ['result'] as const,
  collect() {
    if (!keyCacheSource) return;
    this.set({ result: 'hit' }, keyCacheSource.hits);
    this.set({ result: 'miss' }, keyCacheSource.misses);
  },
});

/** The verify cache whose counts the scrape reports (the one service.ts serves with). */
export function observeKeyCache(cache: { hits: number; misses: number }): void {
  keyCacheSource = cache;
}

export const keycloakCalls = new Counter({
  name: 'tenant_registry_keycloak_calls_total',
  help: 'Keycloak Admin API calls, by provisioning step and outcome (ok, or the error type)',
  labelNames: ['step', 'outcome'] as const,
});

export const keycloakDrift = new Counter({
  name: 'tenant_registry_keycloak_drift_total',
  help: 'Organizations the periodic reconcile found out of step with the registry (and put back)',
});

export const auditAppends = new Counter({
  name: 'tenant_registry_audit_appends_total',
  help: 'Audit events written (counted at the write; a transaction rolled back later still counts; replays of an external_id do not)',
});

export const webhookDeliveries = new Counter({
  name: 'tenant_registry_webhook_deliveries_total',
  help: 'Webhook delivery attempts, by outcome (delivered, failed: to be retried, dead: given up)',
  labelNames: ['outcome'] as const,
});

export const webhookDelay = new Histogram({
  name: 'tenant_registry_webhook_delivery_delay_seconds',
  help: 'From the commit of an event to its delivery to an endpoint (retries included)',
  // From a prompt delivery to one that waited out the retry schedule.
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 36000, 100000],
});

let poolSource: { totalCount: number; idleCount: number; waitingCount: number } | null = null;

new Gauge({
  name: 'tenant_registry_db_pool_connections',
  help: 'PostgreSQL pool connections by state (total, idle) and requests waiting for one (waiting)',
  labelNames: ['state'] as const,
  collect() {
    if (!poolSource) return;
    this.set({ state: 'total' }, poolSource.totalCount);
    this.set({ state: 'idle' }, poolSource.idleCount);
    this.set({ state: 'waiting' }, poolSource.waitingCount);
  },
});

/** The pool whose state the scrape reports (pg only; PGlite has no pool). */
export function observePool(pool: { totalCount: number; idleCount: number; waitingCount: number }): void {
  poolSource = pool;
}

export const natsRelayPublished = new Counter({
  name: 'tenant_registry_nats_relay_published_total',
  help: 'Change events the JetStream relay published, by what the stream answered (stored, or duplicate: it had the event already)',
  labelNames: ['result'] as const,
});

let natsRelaySource: { state(): { lag: number; leaseHeld: boolean; connected: boolean } } | null = null;

new Gauge({
  name: 'tenant_registry_nats_relay_lag',
  help: 'Change events committed but not yet in the JetStream stream (newest seq - last published seq)',
  collect() {
    if (natsRelaySource) this.set(natsRelaySource.state().lag);
  },
});

new Gauge({
  name: 'tenant_registry_nats_relay_lease_held',
  help: '1 when this replica holds the JetStream relay lease and publishes, 0 when it stands by',
  collect() {
    if (natsRelaySource) this.set(natsRelaySource.state().leaseHeld ? 1 : 0);
  },
});

new Gauge({
  name: 'tenant_registry_nats_relay_connected',
  help: '1 when the JetStream relay is connected to a NATS server, 0 while it is not',
  collect() {
    if (natsRelaySource) this.set(natsRelaySource.state().connected ? 1 : 0);
  },
});

/** The relay whose state the scrape reports (the one service.ts starts when NATS_URL is set). */
export function observeNatsRelay(relay: { state(): { lag: number; leaseHeld: boolean; connected: boolean } }): void {
  natsRelaySource = relay;
}
