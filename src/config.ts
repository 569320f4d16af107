// Environment -> one typed, validated configuration. The schema below is the single description
// of every variable: its default, its rule and the hint printed when a value breaks the rule.
// A bad value stops the process at boot; nothing falls back silently.
import Type, { type Static, type TObject } from 'typebox';
import Value from 'typebox/value';

const oneOf = <const T extends string[]>(values: T, defaultValue: T[number]) =>
  Type.Enum(values, { default: defaultValue, description: `one of ${values.join(', ')}` });

/** What OTLP/HTTP can carry here; gRPC would need another exporter family and is refused. */
const OTLP_PROTOCOLS = ['http/protobuf', 'http/json'] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];
/**
 * OTEL_METRICS_EXPORTER's names: otlp pushes, prometheus is GET /metrics (always there where
 * METRICS_ADDR and METRICS_ON_MAIN_LISTENER put it), none pushes nothing.
 */
const METRICS_EXPORTERS = ['otlp', 'prometheus', 'none'] as const;
/** OTEL_LOGS_EXPORTER's names: otlp sends each line as a log record too; none keeps them on stdout alone. */
const LOGS_EXPORTERS = ['otlp', 'none'] as const;

const otlpEndpoint = (description: string) => Type.String({ default: '', description });
const otlpProtocol = () =>
  Type.Enum(['', ...OTLP_PROTOCOLS], { default: '', description: `one of ${OTLP_PROTOCOLS.join(', ')} (no gRPC)` });

// A URL check in JSON Schema alone would accept "http:foo"; the deeper checks run in refine().
const EnvSchema = Type.Object(
  {
    APP_ENV: oneOf(['dev', 'stage', 'prod'], 'dev'),
    ADDR: Type.String({
      default: ':8090',
      pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]*):[0-9]{1,5}$',
      description: 'host:port or :port, e.g. :8090 or 127.0.0.1:8090',
    }),
    KEYCLOAK_ISSUER: Type.String({
      // Empty in dev runs the embedded development issuer; the dev stack's Keycloak is
      // http://localhost:8080/realms/breakpilot-dev. Taken exactly as written: tokens' iss and
      // the discovery document's issuer must be this string, a trailing slash included.
      default: '',
      description: 'an http(s) URL without credentials, query or fragment, the OIDC issuer exactly as tokens carry it in iss (required outside dev)',
    }),
    KEYCLOAK_DISCOVERY_URL: Type.String({
      // An internal address of the issuer (http://keycloak:8080/realms/x) for a replica that cannot
      // reach, or should not go through, the public hostname its tokens name.
      default: '',
      description:
        "empty (discover at KEYCLOAK_ISSUER) or the http(s) URL without credentials the issuer's discovery document is fetched from: a base URL, or one ending in /.well-known/openid-configuration",
    }),
    KEYCLOAK_AUDIENCE: Type.String({
      default: '',
      maxLength: 255,
      description: 'empty (no audience check) or the audience tokens must carry',
    }),
    AUTH_ROLES_CLIENT: Type.String({
      default: 'tenant-registry',
      pattern: '^[A-Za-z0-9._:-]{1,255}$',
      description: 'the client whose resource_access roles count, besides realm roles',
    }),
    ROLE_PLATFORM_ADMIN: Type.String({ default: 'platform_admin', pattern: '^\\S{1,255}$', description: 'a role name' }),
    ROLE_IT_ADMIN: Type.String({ default: 'IT_ADMIN', pattern: '^\\S{1,255}$', description: 'a role name' }),
    ROLE_REGISTRY_SERVICE: Type.String({ default: 'registry_service', pattern: '^\\S{1,255}$', description: 'a role name' }),
    DATABASE_URL: Type.String({
      default: '',
      description: 'empty (embedded PostgreSQL) or a postgres:// URL',
    }),
    EMBEDDED_DB_DIR: Type.String({
      default: '',
      description: 'empty (in memory) or a directory for the embedded database; only without DATABASE_URL',
    }),
    KEYCLOAK_ADMIN_URL: Type.String({
      default: '',
      description: 'empty (mock adapter) or an http(s) URL of Keycloak',
    }),
    KEYCLOAK_REALM: Type.String({
      default: 'breakpilot-dev',
      pattern: '^[A-Za-z0-9._-]{1,100}$',
      description: 'a realm name (letters, digits, . _ -)',
    }),
    KEYCLOAK_CLIENT_ID: Type.String({ default: '', maxLength: 255, description: 'a client id' }),
    KEYCLOAK_CLIENT_SECRET: Type.String({ default: '', maxLength: 1024, description: 'a client secret' }),
    API_KEY_PEPPER: Type.String({
      default: '',
      maxLength: 1024,
      description: 'empty (dev only: plain SHA-256) or a secret of at least 32 characters for HMAC-SHA-256 of API keys',
    }),
    CATALOG_PATH: Type.String({
      default: '',
      description: 'empty (catalog/products.json of this build) or the path of a catalog file',
    }),
    KEYCLOAK_RECONCILE_MINUTES: Type.String({
      // Changes reach Keycloak within seconds by themselves; the reconcile only catches edits
      // made in Keycloak by hand, at one organization read per tenant per round.
      default: '60',
      pattern: '^[0-9]{1,5}$',
      description: 'whole minutes between checks of every organization, 0 to check none',
    }),
    TRIAL_EXPIRY_INTERVAL_SECONDS: Type.String({
      // Trials expire at read time; this only paces the audit events about it. A minute keeps
      // the events timely at the cost of one indexed query per minute.
      default: '60',
      pattern: '^[0-9]{1,5}$',
      description: 'whole seconds between expiry rounds, 0 to turn the job off',
    }),
    LOG_LEVEL: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'info'),
    BODY_LIMIT_BYTES: Type.String({
      // Every request body of this API is a small JSON document; 256 KiB leaves room for audit
      // events with metadata while refusing a flood before it is buffered and parsed.
      default: '262144',
      pattern: '^[1-9][0-9]{2,8}$',
      description: 'a byte count between 100 and 999999999',
    }),
    KEYCLOAK_PROVISION_BUDGET_SECONDS: Type.String({
      // Tenant creation waits this long at most for Keycloak; a hung Keycloak then only costs
      // the operator a few seconds and a keycloak.provision_failed event to retry from.
      default: '5',
      pattern: '^[1-9][0-9]?$',
      description: 'whole seconds, 1 to 99',
    }),
    REQUEST_TIMEOUT_SECONDS: Type.String({
      // Far beyond any answer of this API (they take milliseconds; exports stream for longer but
      // keep writing); a request still open after this is stuck, and its socket is freed.
      default: '30',
      pattern: '^[1-9][0-9]{0,3}$',
      description: 'whole seconds, 1 to 9999',
    }),
    HEADERS_TIMEOUT_SECONDS: Type.String({
      // A client that trickles its headers (slowloris) holds a socket; ten seconds is generous.
      default: '10',
      pattern: '^[1-9][0-9]{0,2}$',
      description: 'whole seconds, 1 to 999',
    }),
    DB_POOL_SIZE: Type.String({
      // Per replica; replicas x pool size must stay under the server's max_connections.
      default: '10',
      pattern: '^[1-9][0-9]{0,2}$',
      description: 'connections, 1 to 999',
    }),
    DB_STATEMENT_TIMEOUT_MS: Type.String({
      // Every query of this service is indexed and takes milliseconds; one running for seconds is
      // a runaway (a lock wait, a bad plan) and is cancelled rather than left to hold a connection.
      default: '5000',
      pattern: '^[0-9]{1,7}$',
      description: 'milliseconds, 0 (no limit) to 9999999',
    }),
    RATE_LIMIT_PER_MINUTE: Type.String({
      // Per caller on the public /v1 routes: ten a second is far beyond a person or a script
      // working normally, and stops one runaway client from starving the others.
      default: '600',
      pattern: '^[0-9]{1,9}$',
      description: 'requests per caller per minute, 0 for no limit',
    }),
    RATE_LIMIT_INTERNAL_PER_MINUTE: Type.String({
      // /v1/internal carries every request of the headless products through a few service
      // accounts; its budget is a guard against a loop, not a quota.
      default: '600000',
      pattern: '^[0-9]{1,9}$',
      description: 'requests per caller per minute on /v1/internal, 0 for no limit',
    }),
    RATE_LIMIT_SERVICE_PER_MINUTE: Type.String({
      // Per service account on the public /v1 routes: the portal's backend resolves the tenant by
      // slug on every portal request through one account. One replica serves at most 46,310
      // by-slug requests a second (BENCHMARKS.md, 2 vCPUs), 2.8 million a minute: 3 million binds
      // only after the service itself has. With REDIS_URL all replicas share it: multiply.
      default: '3000000',
      pattern: '^[0-9]{1,9}$',
      description: 'requests per service account per minute on the public /v1 routes, 0 for no limit',
    }),
    RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: Type.String({
      // Per source address (an IPv6 /64): 401s a minute before tokens not yet verified are refused
      // unchecked. Two a second is far beyond honest clients (an expired token fails once, then is
      // refreshed), and caps what an address buys at 120 signature checks (~250 µs each): a flood
      // needs some 2,000 addresses to keep one core busy.
      default: '120',
      pattern: '^[0-9]{1,9}$',
      description: 'failed authentications per source address per minute, 0 for no limit',
    }),
    METRICS_ADDR: Type.String({
      default: '',
      pattern: '^$|^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]*):[0-9]{1,5}$',
      description: 'empty (GET /metrics on ADDR) or host:port of a listener for /metrics alone',
    }),
    REDIS_URL: Type.String({
      default: '',
      description: 'empty (rate limits counted per replica) or a redis:// URL shared by all replicas',
    }),
    EVENT_RETENTION_DAYS: Type.String({
      // A consumer that was away for up to this long resumes from its cursor; one away longer
      // gets 410 cursor_expired and starts again from the oldest kept event.
      default: '30',
      pattern: '^[1-9][0-9]{0,3}$',
      description: 'whole days the change feed keeps its events, 1 to 9999',
    }),
    WEBHOOK_ALLOW_PRIVATE: Type.String({
      // Endpoints resolving to loopback, private or link-local addresses are refused: a webhook
      // must not let an operator's token reach the registry's own network (SSRF).
      default: '',
      pattern: '^[A-Za-z0-9.:/,-]{0,2000}$',
      description: 'empty, or comma-separated hosts, addresses and CIDR ranges webhooks may reach although private',
    }),
    WEBHOOK_RETRY_SECONDS: Type.String({
      // The delay before each attempt at one event after the first (domain/webhook.ts): the
      // Standard Webhooks schedule, about 27.6 hours in all before the event is given up.
      default: '5,300,1800,7200,18000,36000,36000',
      pattern: '^[0-9]{1,6}(,[0-9]{1,6}){0,19}$',
      description: 'comma-separated whole seconds before each retry of a failed delivery, 1 to 20 of them',
    }),
    FEED_LEASE_SECONDS: Type.String({
      // One replica at a time relays to JetStream and delivers webhooks; when it dies, another
      // takes over once its lease lapses. Renewed three times per period.
      default: '15',
      pattern: '^([3-9]|[1-9][0-9]{1,2})$',
      description: 'whole seconds, 3 to 999',
    }),
    NATS_URL: Type.String({
      default: '',
      pattern: '^$|^(nats|tls)://[^\\s,]+(,(nats|tls)://[^\\s,]+)*$',
      description: 'empty (no JetStream relay) or nats:// URLs, comma-separated, of the NATS servers',
    }),
    NATS_STREAM: Type.String({
      default: 'TENANT_REGISTRY_EVENTS',
      pattern: '^[A-Za-z0-9_-]{1,64}$',
      description: 'the JetStream stream the relay publishes to (created if missing)',
    }),
    NATS_SUBJECT_PREFIX: Type.String({
      // Each event goes to <prefix>.<type>; the stream takes <prefix>.>, so two registries
      // (staging beside prod on one NATS) keep apart by prefix and stream.
      default: 'tenant-registry.events',
      pattern: '^[A-Za-z0-9_-]{1,64}(\\.[A-Za-z0-9_-]{1,64}){0,7}$',
      description: 'dotted subject tokens (letters, digits, _ -), no wildcards: events are published to <prefix>.<type>',
    }),
    SHUTDOWN_DRAIN_SECONDS: Type.String({
      // On SIGTERM the service first answers /readyz 503 and keeps serving this long, so the load
      // balancer notices and stops sending before the listener closes; 5 s covers a probe period.
      default: '5',
      pattern: '^[0-9]{1,3}$',
      description: 'whole seconds, 0 to 999',
    }),
    SHUTDOWN_GRACE_SECONDS: Type.String({
      // Kubernetes sends SIGKILL 30 s after SIGTERM by default; finishing in-flight requests
      // within 10 s leaves the rest of that window for closing the database cleanly.
      default: '10',
      pattern: '^[0-9]{1,3}$',
      description: 'whole seconds, 0 to 999',
    }),
    // Deliberate exceptions to what failClosed() below decides: turning Keycloak provisioning
    // off, running the development issuer on a real database, serving /metrics on ADDR. Each is
    // a value someone wrote down, so no deployment ends up open (or lying) by omission.
    KEYCLOAK_PROVISIONING: oneOf(['on', 'off'], 'on'),
    DEV_ISSUER_WITH_DATABASE: oneOf(['true', 'false'], 'false'),
    METRICS_ON_MAIN_LISTENER: Type.Enum(['', 'true', 'false'], {
      // Empty decides by APP_ENV: a developer scrapes localhost, a deployment keeps /metrics
      // (routes, tenants' traffic, key verdicts) off the public listener.
      default: '',
      description: 'true or false (unset: true in dev without METRICS_ADDR, false otherwise)',
    }),
    // OpenTelemetry's standard variables that decide whether and how traces, metrics and logs
    // leave the process over OTLP/HTTP. The SDK reads the rest itself (headers, timeouts, batch
    // sizes, the sampler, resource attributes); an endpoint is left for the exporter to resolve
    // too (the base URL gets /v1/<signal> appended, a signal's own is taken as is).
    OTEL_SDK_DISABLED: Type.String({ default: '', description: 'true or false (true: nothing is exported over OTLP)' }),
    OTEL_EXPORTER_OTLP_ENDPOINT: otlpEndpoint('empty or the http(s) base URL of an OTLP/HTTP receiver, e.g. http://otel-collector:4318'),
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: otlpEndpoint('empty or the http(s) URL traces are posted to'),
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: otlpEndpoint('empty or the http(s) URL metrics are posted to'),
    OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: otlpEndpoint('empty or the http(s) URL log records are posted to'),
    OTEL_EXPORTER_OTLP_PROTOCOL: otlpProtocol(),
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: otlpProtocol(),
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: otlpProtocol(),
    OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: otlpProtocol(),
    // Unset keeps what the service did before it could push: metrics are scraped, logs are read
    // from stdout. Pushing is a decision someone writes down, with the receiver it goes to.
    OTEL_METRICS_EXPORTER: Type.String({
      default: '',
      description: 'a comma-separated list of otlp and prometheus, or none (unset: prometheus)',
    }),
    OTEL_LOGS_EXPORTER: Type.String({ default: '', description: 'otlp or none (unset: none, standard output only)' }),
    OTEL_METRIC_EXPORT_INTERVAL: Type.String({
      // The specification's default: a minute is what a scrape interval usually is, and each push
      // carries every series of the registry.
      default: '60000',
      pattern: '^[1-9][0-9]{2,8}$',
      description: 'milliseconds between metric exports, 100 to 999999999',
    }),
  },
  { additionalProperties: true },
);

type Env = Static<typeof EnvSchema>;
type VariableName = keyof Env;

/** Every variable the configuration reads (tests start child processes without any of them). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(EnvSchema.properties);

/** One variable that breaks its rule, and what was expected of it. */
export interface ConfigProblem {
  variable: VariableName;
  expected: string;
}

/**
 * Raised for variables that break their rules. The message is one line: each problem as
 * `invalid NAME: expected ...`, several joined by "; " in the order the rules ran (each value on
 * its own first, then how values combine), so a problem reads the same alone or among others.
 */
export class ConfigError extends Error {
  readonly problems: readonly ConfigProblem[];

  constructor(variable: VariableName, expected: string, ...more: ConfigProblem[]) {
    const problems = [{ variable, expected }, ...more];
    // The value itself is never echoed: DATABASE_URL and the client secret carry credentials.
    super(problems.map((problem) => `invalid ${problem.variable}: expected ${problem.expected}`).join('; '));
    this.name = 'ConfigError';
    this.problems = problems;
  }

  /** The first variable named (most of the time the only one). */
  get variable(): VariableName {
    return this.problems[0]!.variable;
  }
}

/** What reading the environment found wrong: the first problem of each variable, which says the most. */
class Problems {
  private readonly found = new Map<VariableName, string>();

  add(variable: VariableName, expected: string): void {
    if (!this.found.has(variable)) this.found.set(variable, expected);
  }

  has(variable: VariableName): boolean {
    return this.found.has(variable);
  }

  /** Throws one ConfigError naming every variable found, in the order found. */
  throwIfAny(): void {
    const [first, ...more] = [...this.found].map(([variable, expected]) => ({ variable, expected }));
    if (first) throw new ConfigError(first.variable, first.expected, ...more);
  }
}

export interface Config {
  appEnv: Env['APP_ENV'];
  listen: { host: string; port: number };
  auth: {
    /** null: the embedded development issuer (dev only). Exactly as configured: tokens' iss must equal it. */
    issuer: string | null;
    /** null: the discovery document is fetched from the issuer; else from this base or document URL. */
    discoveryUrl: string | null;
    audience: string | null;
    rolesClient: string;
    roles: { platformAdmin: string; itAdmin: string; service: string };
    /** Dev only: the development issuer may run on a DATABASE_URL database (DEV_ISSUER_WITH_DATABASE). */
    devIssuerWithDatabase: boolean;
  };
  database: { kind: 'postgres'; url: string } | { kind: 'embedded'; dataDir: string | null };
  keycloak: {
    /** off: every provisioning is refused and recorded as such; nothing reaches Keycloak. */
    provisioning: Env['KEYCLOAK_PROVISIONING'];
    /** Empty (dev only, provisioning on): the mock adapter. */
    adminUrl: string;
    realm: string;
    clientId: string;
    clientSecret: string;
    provisionBudgetMs: number;
  };
  /** The server-side secret of API key hashes; null (dev only) hashes with plain SHA-256. */
  apiKeyPepper: string | null;
  /** null: the catalog file shipped with the build. */
  catalogPath: string | null;
  /** 0: the trial expiry job does not run in this process. */
  trialExpiryIntervalMs: number;
  /** Between reconciles of every Keycloak organization; 0: none. */
  keycloakReconcileMs: number;
  logLevel: Env['LOG_LEVEL'];
  bodyLimitBytes: number;
  requestTimeoutMs: number;
  headersTimeoutMs: number;
  /** PostgreSQL (DATABASE_URL) only: PGlite has one connection and no statement timer. */
  pool: { size: number; statementTimeoutMs: number };
  rateLimits: { publicPerMinute: number; servicePerMinute: number; internalPerMinute: number; authFailuresPerMinute: number };
  /** null: no listener of its own for /metrics. */
  metricsListen: { host: string; port: number } | null;
  /** GET /metrics is served on the main listener (ADDR) too. */
  metricsOnMainListener: boolean;
  /** null: rate limits are counted in each replica. */
  redisUrl: string | null;
  shutdownDrainMs: number;
  shutdownGraceMs: number;
  /** The change feed and its deliveries. */
  events: {
    retentionMs: number;
    /** The delays before each retry of a failed webhook delivery (after the first attempt). */
    webhookRetryMs: number[];
    /** How long a replica holds the relay's and the dispatcher's leases without renewing them. */
    leaseMs: number;
    /** Hosts, addresses and CIDR ranges webhooks may reach although private or loopback. */
    webhookAllowPrivate: string[];
    /** null: no JetStream relay. */
    nats: { servers: string[]; stream: string; subjectPrefix: string } | null;
  };
  /** What is sent over OTLP/HTTP, signal by signal; null: that signal is not exported. */
  telemetry: {
    /** On when an endpoint for traces is set; started by the tracing preload. */
    traces: { protocol: OtlpProtocol } | null;
    /** The registry behind GET /metrics, pushed as well (OTEL_METRICS_EXPORTER includes otlp). */
    metrics: { protocol: OtlpProtocol; exportIntervalMs: number } | null;
    /** Every log line, sent as a log record as well (OTEL_LOGS_EXPORTER=otlp). */
    logs: { protocol: OtlpProtocol } | null;
  };
}

/** What the migrate command reads: the database and the environment, nothing of the server's. */
export interface MigrationConfig {
  appEnv: Env['APP_ENV'];
  database: Config['database'];
}

function hintFor(name: VariableName): string {
  return (EnvSchema.properties[name] as { description?: string }).description ?? 'a valid value';
}

function isHttpUrl(value: string): boolean {
  const url = URL.parse(value);
  return url !== null && (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
}

/** An http(s) URL fetch() can be pointed at: no user or password in it (fetch refuses those). */
function isFetchableUrl(value: string): boolean {
  const url = URL.parse(value);
  return isHttpUrl(value) && url !== null && url.username === '' && url.password === '';
}

/** An OIDC issuer: an http(s) URL without query or fragment (OpenID Connect Discovery 1.0, section 2). */
function isIssuerUrl(value: string): boolean {
  return isFetchableUrl(value) && !value.includes('?') && !value.includes('#');
}

function isPostgresUrl(value: string): boolean {
  const url = URL.parse(value);
  return url !== null && (url.protocol === 'postgres:' || url.protocol === 'postgresql:') && url.hostname !== '';
}

/** stage and prod: the environments where the fail-closed rules apply. */
function isDeployed(appEnv: string): appEnv is 'stage' | 'prod' {
  return appEnv === 'stage' || appEnv === 'prod';
}

/** An address that passed the schema's pattern: its port must also be one. */
function hasValidPort(addr: string): boolean {
  return Number(addr.slice(addr.lastIndexOf(':') + 1)) <= 65535;
}

function parseListen(addr: string): { host: string; port: number } {
  const cut = addr.lastIndexOf(':');
  const host = addr.slice(0, cut).replace(/^\[|\]$/g, '');
  // ":8090" means every interface, as in Go's net.Listen.
  return { host: host === '' ? '0.0.0.0' : host, port: Number(addr.slice(cut + 1)) };
}

/** The variables of `schema` from source, defaults applied; every value that breaks its rule is a problem. */
function readEnvironment<S extends TObject>(schema: S, source: Record<string, string | undefined>, problems: Problems): Static<S> {
  // Unset and empty are the same thing for every variable here, as in the shell.
  const present = Object.fromEntries(
    Object.keys(schema.properties)
      .filter((name) => source[name] !== undefined && source[name] !== '')
      .map((name) => [name, source[name]]),
  );
  const env = Value.Default(schema, present) as Static<S>;
  for (const error of Value.Errors(schema, env)) {
    const name = error.instancePath.slice(1) as VariableName;
    problems.add(name, hintFor(name));
  }
  return env;
}

type DatabaseEnv = Pick<Env, 'APP_ENV' | 'DATABASE_URL' | 'EMBEDDED_DB_DIR'>;

/** The rules of the database variables, the same for the server and the migrate command. */
function checkDatabase(env: DatabaseEnv, problems: Problems): void {
  if (env.DATABASE_URL !== '' && !isPostgresUrl(env.DATABASE_URL)) {
    problems.add('DATABASE_URL', hintFor('DATABASE_URL'));
  }
  if (env.DATABASE_URL !== '' && env.EMBEDDED_DB_DIR !== '') {
    problems.add('EMBEDDED_DB_DIR', 'to be empty when DATABASE_URL is set');
  }
  // An embedded database outside dev would lose every tenant on restart without a word.
  if (isDeployed(env.APP_ENV) && env.DATABASE_URL === '') {
    problems.add('DATABASE_URL', `a postgres:// URL when APP_ENV is ${env.APP_ENV}`);
  }
}

function databaseOf(env: DatabaseEnv): Config['database'] {
  return env.DATABASE_URL !== ''
    ? { kind: 'postgres', url: env.DATABASE_URL }
    : { kind: 'embedded', dataDir: env.EMBEDDED_DB_DIR === '' ? null : env.EMBEDDED_DB_DIR };
}

type Signal = 'traces' | 'metrics' | 'logs';
const SIGNAL_ENDPOINT = {
  traces: 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  metrics: 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT',
  logs: 'OTEL_EXPORTER_OTLP_LOGS_ENDPOINT',
} as const satisfies Record<Signal, VariableName>;
const SIGNAL_PROTOCOL = {
  traces: 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL',
  metrics: 'OTEL_EXPORTER_OTLP_METRICS_PROTOCOL',
  logs: 'OTEL_EXPORTER_OTLP_LOGS_PROTOCOL',
} as const satisfies Record<Signal, VariableName>;

/**
 * The exporters a comma-separated list names (case and blanks as the specification allows), or
 * null when it names one this service does not have, or none beside another: an exporter someone
 * asked for that would silently not run is refused rather than dropped.
 */
function exportersOf<const T extends string>(value: string, known: readonly T[]): Set<T> | null {
  const names = new Set(
    value
      .split(',')
      .map((name) => name.trim().toLowerCase())
      .filter((name) => name !== ''),
  );
  if ([...names].some((name) => !(known as readonly string[]).includes(name))) return null;
  if (names.has('none') && names.size > 1) return null;
  return names as Set<T>;
}

/** The OpenTelemetry variables each on its own: URLs, exporter names, the switch. */
function checkTelemetryValues(env: Env, problems: Problems): void {
  if (!['', 'true', 'false'].includes(env.OTEL_SDK_DISABLED.toLowerCase())) {
    problems.add('OTEL_SDK_DISABLED', hintFor('OTEL_SDK_DISABLED'));
  }
  for (const name of ['OTEL_EXPORTER_OTLP_ENDPOINT', ...Object.values(SIGNAL_ENDPOINT)] as const) {
    if (env[name] !== '' && !isHttpUrl(env[name])) problems.add(name, hintFor(name));
  }
  if (!exportersOf(env.OTEL_METRICS_EXPORTER, METRICS_EXPORTERS)) problems.add('OTEL_METRICS_EXPORTER', hintFor('OTEL_METRICS_EXPORTER'));
  if (!exportersOf(env.OTEL_LOGS_EXPORTER, LOGS_EXPORTERS)) problems.add('OTEL_LOGS_EXPORTER', hintFor('OTEL_LOGS_EXPORTER'));
}

/** What each signal sends over OTLP, after the rules of how the variables combine. */
function telemetryOf(env: Env, problems: Problems, metricsServed: boolean): Config['telemetry'] {
  const metricsExporters = exportersOf(env.OTEL_METRICS_EXPORTER, METRICS_EXPORTERS) ?? new Set();
  const logsExporters = exportersOf(env.OTEL_LOGS_EXPORTER, LOGS_EXPORTERS) ?? new Set();
  // Named on purpose and served nowhere, the scrape someone set up would find nothing.
  if (metricsExporters.has('prometheus') && !metricsServed) {
    problems.add('OTEL_METRICS_EXPORTER', 'prometheus only where GET /metrics is served: set METRICS_ADDR or METRICS_ON_MAIN_LISTENER=true, or leave prometheus out');
  }
  if (env.OTEL_SDK_DISABLED.toLowerCase() === 'true') return { traces: null, metrics: null, logs: null };

  const hasEndpoint = (signal: Signal) => env[SIGNAL_ENDPOINT[signal]] !== '' || env.OTEL_EXPORTER_OTLP_ENDPOINT !== '';
  const protocolOf = (signal: Signal): OtlpProtocol => env[SIGNAL_PROTOCOL[signal]] || env.OTEL_EXPORTER_OTLP_PROTOCOL || 'http/protobuf';
  // Asked for with nowhere to send it: the SDK would fall back to localhost:4318 and lose every
  // export unless a collector happened to listen there.
  for (const [signal, exporters, variable] of [
    ['metrics', metricsExporters, 'OTEL_METRICS_EXPORTER'],
    ['logs', logsExporters, 'OTEL_LOGS_EXPORTER'],
  ] as const) {
    if (exporters.has('otlp') && !hasEndpoint(signal)) {
      problems.add(SIGNAL_ENDPOINT[signal], `an http(s) URL when ${variable} includes otlp and OTEL_EXPORTER_OTLP_ENDPOINT is empty`);
    }
  }
  return {
    // Traces keep the rule they had before metrics and logs could be pushed: an endpoint turns them on.
    traces: hasEndpoint('traces') ? { protocol: protocolOf('traces') } : null,
    metrics: metricsExporters.has('otlp')
      ? { protocol: protocolOf('metrics'), exportIntervalMs: Number(env.OTEL_METRIC_EXPORT_INTERVAL) }
      : null,
    logs: logsExporters.has('otlp') ? { protocol: protocolOf('logs') } : null,
  };
}

/**
 * What stage and prod refuse unless an exception is written down, and what no environment may
 * combine: each rule closes a way for the service to run open, or to report what did not happen.
 */
function failClosed(env: Env, problems: Problems): void {
  const deployed = isDeployed(env.APP_ENV);
  // Without an audience, a token the realm minted for any of its other clients (the portal, a
  // product) would be accepted here with the roles it carries.
  if (deployed && env.KEYCLOAK_AUDIENCE === '') {
    problems.add('KEYCLOAK_AUDIENCE', `the audience tokens must carry in aud when APP_ENV is ${env.APP_ENV}`);
  }
  // The mock adapter answers every provisioning "done" and would audit invitations nobody sent.
  if (deployed && env.KEYCLOAK_PROVISIONING === 'on' && env.KEYCLOAK_ADMIN_URL === '') {
    problems.add('KEYCLOAK_ADMIN_URL', `an http(s) URL of Keycloak when APP_ENV is ${env.APP_ENV}, or KEYCLOAK_PROVISIONING=off`);
  }
  // Provisioning off with an Admin API configured is two answers to one question.
  if (env.KEYCLOAK_PROVISIONING === 'off' && env.KEYCLOAK_ADMIN_URL !== '') {
    problems.add('KEYCLOAK_ADMIN_URL', 'to be empty when KEYCLOAK_PROVISIONING is off');
  }
  // Anyone who reaches POST /dev/token mints platform_admin tokens: fine for throwaway data,
  // not for a database that may hold real tenants.
  if (env.APP_ENV === 'dev' && env.KEYCLOAK_ISSUER === '' && env.DATABASE_URL !== '' && env.DEV_ISSUER_WITH_DATABASE !== 'true') {
    problems.add('KEYCLOAK_ISSUER', 'an http(s) URL when DATABASE_URL is set, or DEV_ISSUER_WITH_DATABASE=true to run the development issuer on that database');
  }
  if (deployed && env.DEV_ISSUER_WITH_DATABASE === 'true') {
    problems.add('DEV_ISSUER_WITH_DATABASE', `false when APP_ENV is ${env.APP_ENV}: the development issuer runs in dev only`);
  }
}

/** Reads the environment (process.env by default) into a Config, or throws one ConfigError naming every bad variable. */
export function loadConfig(source: Record<string, string | undefined> = process.env): Config {
  const problems = new Problems();
  const env = readEnvironment(EnvSchema, source, problems);
  if (!problems.has('ADDR') && !hasValidPort(env.ADDR)) problems.add('ADDR', hintFor('ADDR'));
  if (!problems.has('METRICS_ADDR') && env.METRICS_ADDR !== '' && !hasValidPort(env.METRICS_ADDR)) {
    problems.add('METRICS_ADDR', hintFor('METRICS_ADDR'));
  }
  // Kept exactly as written: tokens must name the issuer exactly, and some issuers end in a slash
  // (Auth0's https://tenant.auth0.com/) while Keycloak's never do.
  if (env.KEYCLOAK_ISSUER !== '' && !isIssuerUrl(env.KEYCLOAK_ISSUER)) {
    problems.add('KEYCLOAK_ISSUER', hintFor('KEYCLOAK_ISSUER'));
  }
  if (env.KEYCLOAK_DISCOVERY_URL !== '' && !isFetchableUrl(env.KEYCLOAK_DISCOVERY_URL)) {
    problems.add('KEYCLOAK_DISCOVERY_URL', hintFor('KEYCLOAK_DISCOVERY_URL'));
  }
  // Without an issuer there is nothing to discover (the development issuer has its own keys).
  if (env.KEYCLOAK_DISCOVERY_URL !== '' && env.KEYCLOAK_ISSUER === '') {
    problems.add('KEYCLOAK_DISCOVERY_URL', 'to be empty when KEYCLOAK_ISSUER is empty');
  }
  if (env.KEYCLOAK_ADMIN_URL !== '' && !isHttpUrl(env.KEYCLOAK_ADMIN_URL)) {
    problems.add('KEYCLOAK_ADMIN_URL', hintFor('KEYCLOAK_ADMIN_URL'));
  }
  if (env.REDIS_URL !== '') {
    const url = URL.parse(env.REDIS_URL);
    if (!url || (url.protocol !== 'redis:' && url.protocol !== 'rediss:') || url.hostname === '') {
      problems.add('REDIS_URL', hintFor('REDIS_URL'));
    }
  }
  // Each URL must parse: one that does not could not be stripped of its password before logging.
  if (env.NATS_URL !== '' && !env.NATS_URL.split(',').every((url) => URL.parse(url)?.hostname)) {
    problems.add('NATS_URL', hintFor('NATS_URL'));
  }
  checkTelemetryValues(env, problems);
  checkDatabase(env, problems);
  // Without an issuer only the development issuer could sign tokens; it must never run for real.
  if (isDeployed(env.APP_ENV) && env.KEYCLOAK_ISSUER === '') {
    problems.add('KEYCLOAK_ISSUER', `an http(s) URL when APP_ENV is ${env.APP_ENV}`);
  }
  // A half-configured Keycloak would fail every provisioning; say so at boot instead.
  if (env.KEYCLOAK_ADMIN_URL !== '' && env.KEYCLOAK_PROVISIONING === 'on') {
    for (const name of ['KEYCLOAK_CLIENT_ID', 'KEYCLOAK_CLIENT_SECRET'] as const) {
      if (env[name] === '') problems.add(name, 'a value when KEYCLOAK_ADMIN_URL is set');
    }
  }
  // Without a pepper, a copy of the database alone could confirm a leaked key; fine for dev only.
  // Changing the pepper invalidates every stored key, so it is set once per environment.
  if (env.API_KEY_PEPPER !== '' && env.API_KEY_PEPPER.length < 32) {
    problems.add('API_KEY_PEPPER', hintFor('API_KEY_PEPPER'));
  }
  if (isDeployed(env.APP_ENV) && env.API_KEY_PEPPER === '') {
    problems.add('API_KEY_PEPPER', `a secret of at least 32 characters when APP_ENV is ${env.APP_ENV}`);
  }
  failClosed(env, problems);
  const metricsListen = env.METRICS_ADDR === '' ? null : parseListen(env.METRICS_ADDR);
  const metricsOnMainListener =
    env.METRICS_ON_MAIN_LISTENER === '' ? env.APP_ENV === 'dev' && env.METRICS_ADDR === '' : env.METRICS_ON_MAIN_LISTENER === 'true';
  const telemetry = telemetryOf(env, problems, metricsOnMainListener || metricsListen !== null);
  problems.throwIfAny();

  return {
    appEnv: env.APP_ENV,
    listen: parseListen(env.ADDR),
    auth: {
      issuer: env.KEYCLOAK_ISSUER === '' ? null : env.KEYCLOAK_ISSUER,
      discoveryUrl: env.KEYCLOAK_DISCOVERY_URL === '' ? null : env.KEYCLOAK_DISCOVERY_URL,
      audience: env.KEYCLOAK_AUDIENCE === '' ? null : env.KEYCLOAK_AUDIENCE,
      rolesClient: env.AUTH_ROLES_CLIENT,
      roles: {
        platformAdmin: env.ROLE_PLATFORM_ADMIN,
        itAdmin: env.ROLE_IT_ADMIN,
        service: env.ROLE_REGISTRY_SERVICE,
      },
      devIssuerWithDatabase: env.DEV_ISSUER_WITH_DATABASE === 'true',
    },
    database: databaseOf(env),
    keycloak: {
      provisioning: env.KEYCLOAK_PROVISIONING,
      adminUrl: env.KEYCLOAK_ADMIN_URL,
      realm: env.KEYCLOAK_REALM,
      clientId: env.KEYCLOAK_CLIENT_ID,
      clientSecret: env.KEYCLOAK_CLIENT_SECRET,
      provisionBudgetMs: Number(env.KEYCLOAK_PROVISION_BUDGET_SECONDS) * 1000,
    },
    apiKeyPepper: env.API_KEY_PEPPER === '' ? null : env.API_KEY_PEPPER,
    catalogPath: env.CATALOG_PATH === '' ? null : env.CATALOG_PATH,
    trialExpiryIntervalMs: Number(env.TRIAL_EXPIRY_INTERVAL_SECONDS) * 1000,
    keycloakReconcileMs: Number(env.KEYCLOAK_RECONCILE_MINUTES) * 60_000,
    logLevel: env.LOG_LEVEL,
    bodyLimitBytes: Number(env.BODY_LIMIT_BYTES),
    requestTimeoutMs: Number(env.REQUEST_TIMEOUT_SECONDS) * 1000,
    headersTimeoutMs: Number(env.HEADERS_TIMEOUT_SECONDS) * 1000,
    pool: { size: Number(env.DB_POOL_SIZE), statementTimeoutMs: Number(env.DB_STATEMENT_TIMEOUT_MS) },
    rateLimits: {
      publicPerMinute: Number(env.RATE_LIMIT_PER_MINUTE),
      servicePerMinute: Number(env.RATE_LIMIT_SERVICE_PER_MINUTE),
      internalPerMinute: Number(env.RATE_LIMIT_INTERNAL_PER_MINUTE),
      authFailuresPerMinute: Number(env.RATE_LIMIT_AUTH_FAILURES_PER_MINUTE),
    },
    redisUrl: env.REDIS_URL === '' ? null : env.REDIS_URL,
    metricsListen,
    metricsOnMainListener,
    shutdownDrainMs: Number(env.SHUTDOWN_DRAIN_SECONDS) * 1000,
    shutdownGraceMs: Number(env.SHUTDOWN_GRACE_SECONDS) * 1000,
    events: {
      retentionMs: Number(env.EVENT_RETENTION_DAYS) * 86_400_000,
      webhookRetryMs: env.WEBHOOK_RETRY_SECONDS.split(',').map((seconds) => Number(seconds) * 1000),
      leaseMs: Number(env.FEED_LEASE_SECONDS) * 1000,
      webhookAllowPrivate: env.WEBHOOK_ALLOW_PRIVATE.split(',').filter((entry) => entry !== ''),
      nats:
        env.NATS_URL === ''
          ? null
          : { servers: env.NATS_URL.split(','), stream: env.NATS_STREAM, subjectPrefix: env.NATS_SUBJECT_PREFIX },
    },
    telemetry,
  };
}

// An init container gets DATABASE_URL and no API key pepper or issuer: the migrate command reads
// the database variables alone.
const MigrationEnvSchema = Type.Pick(EnvSchema, ['APP_ENV', 'DATABASE_URL', 'EMBEDDED_DB_DIR']);

/** The migrate command's configuration, checked by the same rules as the server's; or one ConfigError. */
export function loadMigrationConfig(source: Record<string, string | undefined> = process.env): MigrationConfig {
  const problems = new Problems();
  const env = readEnvironment(MigrationEnvSchema, source, problems);
  checkDatabase(env, problems);
  // Migrating an in-memory database would change nothing that outlives the command.
  if (env.DATABASE_URL === '' && env.EMBEDDED_DB_DIR === '') {
    problems.add('DATABASE_URL', 'a postgres:// URL to migrate (or EMBEDDED_DB_DIR for a persistent embedded database)');
  }
  problems.throwIfAny();
  return { appEnv: env.APP_ENV, database: databaseOf(env) };
}
