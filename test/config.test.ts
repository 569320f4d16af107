import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, loadMigrationConfig } from '../src/config.js';

/** Everything stage and prod require, so a test can take one thing away. */
const PROD = {
  APP_ENV: 'prod',
  DATABASE_URL: 'postgres://registry:hunter2@db.internal:5432/registry',
  KEYCLOAK_ISSUER: 'https://id.example.com/realms/prod',
  KEYCLOAK_AUDIENCE: 'tenant-registry',
  KEYCLOAK_ADMIN_URL: 'https://id.example.com',
  KEYCLOAK_CLIENT_ID: 'tenant-registry',
  KEYCLOAK_CLIENT_SECRET: 's3cret',
  API_KEY_PEPPER: 'p'.repeat(32),
};

/** The ConfigError loadConfig throws for env (the test fails if it throws none). */
function refusal(env: Record<string, string>, load: (env: Record<string, string>) => unknown = loadConfig): ConfigError {
  try {
    load(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('applies the documented defaults to an empty environment', () => {
    expect(loadConfig({})).toEqual({
      appEnv: 'dev',
      listen: { host: '0.0.0.0', port: 8090 },
      auth: {
        issuer: null,
        discoveryUrl: null,
        audience: null,
        rolesClient: 'tenant-registry',
        roles: { platformAdmin: 'platform_admin', itAdmin: 'IT_ADMIN', service: 'registry_service' },
        devIssuerWithDatabase: false,
      },
      database: { kind: 'embedded', dataDir: null },
      keycloak: { provisioning: 'on', adminUrl: '', realm: 'breakpilot-dev', clientId: '', clientSecret: '', provisionBudgetMs: 5000 },
      apiKeyPepper: null,
      catalogPath: null,
      trialExpiryIntervalMs: 60_000,
      keycloakReconcileMs: 3_600_000,
      logLevel: 'info',
      bodyLimitBytes: 262144,
      requestTimeoutMs: 30_000,
      headersTimeoutMs: 10_000,
      pool: { size: 10, statementTimeoutMs: 5000 },
      rateLimits: { publicPerMinute: 600, servicePerMinute: 3_000_000, internalPerMinute: 600000, authFailuresPerMinute: 120 },
      redisUrl: null,
      metricsListen: null,
      metricsOnMainListener: true,
      shutdownDrainMs: 5000,
      shutdownGraceMs: 10_000,
      events: {
        retentionMs: 30 * 86_400_000,
        webhookRetryMs: [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000],
        leaseMs: 15_000,
        webhookAllowPrivate: [],
        nats: null,
      },
      telemetry: { traces: null, metrics: null, logs: null },
    });
  });

  it('reads every variable it knows', () => {
    const config = loadConfig({
      APP_ENV: 'prod',
      ADDR: '127.0.0.1:9000',
      KEYCLOAK_ISSUER: 'https://id.example.com/realms/prod',
      DATABASE_URL: 'postgres://registry:pw@db.internal:5432/registry',
      KEYCLOAK_ADMIN_URL: 'https://id.example.com',
      KEYCLOAK_REALM: 'prod',
      KEYCLOAK_CLIENT_ID: 'tenant-registry',
      KEYCLOAK_CLIENT_SECRET: 's3cret',
      KEYCLOAK_AUDIENCE: 'tenant-registry',
      AUTH_ROLES_CLIENT: 'registry-api',
      ROLE_PLATFORM_ADMIN: 'ops',
      ROLE_IT_ADMIN: 'tenant-admin',
      ROLE_REGISTRY_SERVICE: 'svc',
      API_KEY_PEPPER: 'p'.repeat(32),
      CATALOG_PATH: '/etc/registry/catalog.json',
      TRIAL_EXPIRY_INTERVAL_SECONDS: '0',
      LOG_LEVEL: 'warn',
      BODY_LIMIT_BYTES: '1000',
      SHUTDOWN_GRACE_SECONDS: '3',
    });
    expect(config.appEnv).toBe('prod');
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(config.database).toEqual({ kind: 'postgres', url: 'postgres://registry:pw@db.internal:5432/registry' });
    expect(config.keycloak).toEqual({
      provisioning: 'on',
      adminUrl: 'https://id.example.com',
      realm: 'prod',
      clientId: 'tenant-registry',
      clientSecret: 's3cret',
      provisionBudgetMs: 5000,
    });
    expect(config.auth).toEqual({
      issuer: 'https://id.example.com/realms/prod',
      discoveryUrl: null,
      audience: 'tenant-registry',
      rolesClient: 'registry-api',
      roles: { platformAdmin: 'ops', itAdmin: 'tenant-admin', service: 'svc' },
      devIssuerWithDatabase: false,
    });
    expect(config.apiKeyPepper).toBe('p'.repeat(32));
    expect(config.catalogPath).toBe('/etc/registry/catalog.json');
    expect(config.trialExpiryIntervalMs).toBe(0);
    expect(config.bodyLimitBytes).toBe(1000);
    expect(config.shutdownGraceMs).toBe(3000);
  });

  it('treats an empty variable as unset, as the shell does', () => {
    expect(loadConfig({ APP_ENV: '', ADDR: '' }).listen.port).toBe(8090);
  });

  // Tokens must carry the issuer exactly; Auth0's issuers end in a slash, Keycloak's do not.
  it('keeps KEYCLOAK_ISSUER exactly as written, a trailing slash included', () => {
    expect(loadConfig({ KEYCLOAK_ISSUER: 'https://tenant.eu.auth0.com/' }).auth.issuer).toBe('https://tenant.eu.auth0.com/');
    expect(loadConfig({ KEYCLOAK_ISSUER: 'https://id.example.com/realms/prod/' }).auth.issuer).toBe('https://id.example.com/realms/prod/');
    expect(loadConfig({ KEYCLOAK_ISSUER: 'https://id.example.com/realms/prod' }).auth.issuer).toBe('https://id.example.com/realms/prod');
  });

  it('reads KEYCLOAK_DISCOVERY_URL as written, beside the issuer it discovers', () => {
    const config = loadConfig({
      KEYCLOAK_ISSUER: 'https://login.example.com/realms/prod',
      KEYCLOAK_DISCOVERY_URL: 'http://keycloak.internal:8080/realms/prod',
    });
    expect(config.auth).toMatchObject({
      issuer: 'https://login.example.com/realms/prod',
      discoveryUrl: 'http://keycloak.internal:8080/realms/prod',
    });
  });

  it('reads the JetStream relay from NATS_URL, NATS_STREAM and NATS_SUBJECT_PREFIX', () => {
    expect(loadConfig({ NATS_URL: 'nats://127.0.0.1:4222' }).events.nats).toEqual({
      servers: ['nats://127.0.0.1:4222'],
      stream: 'TENANT_REGISTRY_EVENTS',
      subjectPrefix: 'tenant-registry.events',
    });
    expect(
      loadConfig({ NATS_URL: 'nats://a:4222,nats://b:4222', NATS_STREAM: 'REGISTRY_STAGE', NATS_SUBJECT_PREFIX: 'stage.registry' }).events.nats,
    ).toEqual({ servers: ['nats://a:4222', 'nats://b:4222'], stream: 'REGISTRY_STAGE', subjectPrefix: 'stage.registry' });
  });

  // A wildcard or an empty token would make the stream's subjects (<prefix>.>) take what is not ours.
  it.each(['tenant-registry.>', 'tenant.*.events', 'tenant-registry.', '.events', 'a b', 'a..b'])('refuses NATS_SUBJECT_PREFIX=%s', (prefix) => {
    expect(refusal({ NATS_URL: 'nats://127.0.0.1:4222', NATS_SUBJECT_PREFIX: prefix }).variable).toBe('NATS_SUBJECT_PREFIX');
  });

  it('reads the feed consumers\' lease and the webhook retry delays', () => {
    const config = loadConfig({ FEED_LEASE_SECONDS: '4', WEBHOOK_RETRY_SECONDS: '1,2,30', EVENT_RETENTION_DAYS: '7' });
    expect(config.events).toMatchObject({ leaseMs: 4_000, webhookRetryMs: [1_000, 2_000, 30_000], retentionMs: 7 * 86_400_000 });
  });

  it.each([
    ['FEED_LEASE_SECONDS', '2'],
    ['FEED_LEASE_SECONDS', '1000'],
    ['WEBHOOK_RETRY_SECONDS', ''.padEnd(41, '1,').slice(0, 41)],
    ['WEBHOOK_RETRY_SECONDS', '5,,300'],
    ['WEBHOOK_RETRY_SECONDS', '-5'],
    ['EVENT_RETENTION_DAYS', '0'],
    ['WEBHOOK_ALLOW_PRIVATE', '10.0.0.0/8 127.0.0.1'],
    ['NATS_URL', 'http://127.0.0.1:4222'],
    // Does not parse as a URL (a / in the password): it could not be stripped before logging.
    ['NATS_URL', 'nats://relay:s3cr/et@127.0.0.1:4222'],
    ['NATS_URL', 'nats://relay:pa#ss@127.0.0.1:4222'],
  ])('refuses %s=%s', (variable, value) => {
    expect(refusal({ [variable]: value }).variable).toBe(variable);
  });

  it('takes an IPv6 listen address in brackets', () => {
    expect(loadConfig({ ADDR: '[::1]:8091' }).listen).toEqual({ host: '::1', port: 8091 });
  });

  it('keeps a persistent embedded database in EMBEDDED_DB_DIR', () => {
    expect(loadConfig({ EMBEDDED_DB_DIR: './data/db' }).database).toEqual({ kind: 'embedded', dataDir: './data/db' });
  });

  const refused: Array<[string, Record<string, string>]> = [
    ['APP_ENV', { APP_ENV: 'production' }],
    ['ADDR', { ADDR: 'abc' }],
    ['ADDR', { ADDR: ':99999' }],
    ['ADDR', { ADDR: 'localhost:' }],
    ['DATABASE_URL', { DATABASE_URL: 'not a url' }],
    ['DATABASE_URL', { DATABASE_URL: 'mysql://db/registry' }],
    ['KEYCLOAK_ISSUER', { KEYCLOAK_ISSUER: 'ftp://id.example.com' }],
    ['KEYCLOAK_ISSUER', { KEYCLOAK_ISSUER: 'https://id.example.com/realms/prod?x=1' }],
    ['KEYCLOAK_ISSUER', { KEYCLOAK_ISSUER: 'https://id.example.com/realms/prod#' }],
    ['KEYCLOAK_DISCOVERY_URL', { KEYCLOAK_ISSUER: 'https://id.example.com/realms/prod', KEYCLOAK_DISCOVERY_URL: 'keycloak:8080' }],
    ['KEYCLOAK_DISCOVERY_URL', { KEYCLOAK_DISCOVERY_URL: 'http://keycloak.internal:8080/realms/prod' }],
    ['KEYCLOAK_DISCOVERY_URL', { KEYCLOAK_ISSUER: 'https://id.example.com/realms/prod', KEYCLOAK_DISCOVERY_URL: 'http://kc:pw@keycloak:8080/realms/prod' }],
    ['KEYCLOAK_ISSUER', { KEYCLOAK_ISSUER: 'https://user@id.example.com/realms/prod' }],
    ['KEYCLOAK_ADMIN_URL', { KEYCLOAK_ADMIN_URL: 'id.example.com' }],
    ['KEYCLOAK_REALM', { KEYCLOAK_REALM: 'a/b' }],
    ['LOG_LEVEL', { LOG_LEVEL: 'verbose' }],
    ['BODY_LIMIT_BYTES', { BODY_LIMIT_BYTES: '-1' }],
    ['SHUTDOWN_GRACE_SECONDS', { SHUTDOWN_GRACE_SECONDS: 'soon' }],
    ['EMBEDDED_DB_DIR', { DATABASE_URL: 'postgres://db/registry', EMBEDDED_DB_DIR: '/tmp/x' }],
    ['DATABASE_URL', { APP_ENV: 'stage' }],
    ['KEYCLOAK_ISSUER', { APP_ENV: 'prod', DATABASE_URL: 'postgres://db/registry' }],
    ['KEYCLOAK_ISSUER', { APP_ENV: 'stage', DATABASE_URL: 'postgres://db/registry', KEYCLOAK_ISSUER: 'issuer' }],
    ['ROLE_IT_ADMIN', { ROLE_IT_ADMIN: 'has space' }],
    ['API_KEY_PEPPER', { API_KEY_PEPPER: 'too-short' }],
    ['API_KEY_PEPPER', { APP_ENV: 'prod', DATABASE_URL: 'postgres://db/registry', KEYCLOAK_ISSUER: 'https://id.example.com/realms/prod' }],
    ['TRIAL_EXPIRY_INTERVAL_SECONDS', { TRIAL_EXPIRY_INTERVAL_SECONDS: 'hourly' }],
    ['REDIS_URL', { REDIS_URL: 'http://localhost:6379' }],
    ['RATE_LIMIT_PER_MINUTE', { RATE_LIMIT_PER_MINUTE: '-5' }],
    ['KEYCLOAK_CLIENT_ID', { KEYCLOAK_ADMIN_URL: 'http://localhost:8080' }],
    ['KEYCLOAK_CLIENT_SECRET', { KEYCLOAK_ADMIN_URL: 'http://localhost:8080', KEYCLOAK_CLIENT_ID: 'registry' }],
    ['KEYCLOAK_PROVISION_BUDGET_SECONDS', { KEYCLOAK_PROVISION_BUDGET_SECONDS: '0' }],
  ];
  it.each(refused)('refuses a bad %s with a one-line message naming it', (variable, env) => {
    let caught: unknown;
    try {
      loadConfig(env);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const error = caught as ConfigError;
    expect(error.variable).toBe(variable);
    expect(error.message).toMatch(new RegExp(`^invalid ${variable}: expected `));
    expect(error.message).not.toContain('\n');
  });

  it('never echoes the value of a refused variable (it may hold a password)', () => {
    expect(() => loadConfig({ DATABASE_URL: 'postgres://user:hunter2@' })).toThrow(ConfigError);
    try {
      loadConfig({ DATABASE_URL: 'postgres://user:hunter2@' });
    } catch (error) {
      expect((error as Error).message).not.toContain('hunter2');
    }
  });
});

describe('loadConfig outside dev: fails closed', () => {
  it.each(['stage', 'prod'])('accepts APP_ENV=%s with everything it requires, /metrics off the public listener', (appEnv) => {
    const config = loadConfig({ ...PROD, APP_ENV: appEnv });
    expect(config.appEnv).toBe(appEnv);
    expect(config.auth.audience).toBe('tenant-registry');
    expect(config.keycloak.provisioning).toBe('on');
    expect(config.metricsOnMainListener).toBe(false);
  });

  it.each(['stage', 'prod'])('APP_ENV=%s refuses no KEYCLOAK_AUDIENCE: tokens minted for other clients would pass', (appEnv) => {
    const error = refusal({ ...PROD, APP_ENV: appEnv, KEYCLOAK_AUDIENCE: '' });
    expect(error.problems.map((problem) => problem.variable)).toEqual(['KEYCLOAK_AUDIENCE']);
    expect(error.message).toBe(`invalid KEYCLOAK_AUDIENCE: expected the audience tokens must carry in aud when APP_ENV is ${appEnv}`);
  });

  it.each(['stage', 'prod'])('APP_ENV=%s refuses no KEYCLOAK_ADMIN_URL, and says how to turn provisioning off', (appEnv) => {
    const error = refusal({ ...PROD, APP_ENV: appEnv, KEYCLOAK_ADMIN_URL: '', KEYCLOAK_CLIENT_ID: '', KEYCLOAK_CLIENT_SECRET: '' });
    expect(error.problems.map((problem) => problem.variable)).toEqual(['KEYCLOAK_ADMIN_URL']);
    expect(error.message).toMatch(/^invalid KEYCLOAK_ADMIN_URL: expected an http\(s\) URL of Keycloak when APP_ENV is \w+, or KEYCLOAK_PROVISIONING=off$/);
  });

  it('runs without Keycloak when KEYCLOAK_PROVISIONING=off says so', () => {
    const config = loadConfig({ ...PROD, KEYCLOAK_PROVISIONING: 'off', KEYCLOAK_ADMIN_URL: '', KEYCLOAK_CLIENT_ID: '', KEYCLOAK_CLIENT_SECRET: '' });
    expect(config.keycloak).toMatchObject({ provisioning: 'off', adminUrl: '' });
  });

  it.each([
    ['dev', {}],
    ['prod', PROD],
  ])('in %s refuses KEYCLOAK_PROVISIONING=off beside a KEYCLOAK_ADMIN_URL: two answers to one question', (_, base) => {
    const error = refusal({ ...base, KEYCLOAK_PROVISIONING: 'off', KEYCLOAK_ADMIN_URL: 'https://id.example.com' });
    expect(error.problems).toEqual([{ variable: 'KEYCLOAK_ADMIN_URL', expected: 'to be empty when KEYCLOAK_PROVISIONING is off' }]);
  });

  it('refuses a KEYCLOAK_PROVISIONING that is neither on nor off', () => {
    expect(refusal({ KEYCLOAK_PROVISIONING: 'false' }).message).toBe('invalid KEYCLOAK_PROVISIONING: expected one of on, off');
  });

  it('refuses DEV_ISSUER_WITH_DATABASE=true outside dev', () => {
    const error = refusal({ ...PROD, DEV_ISSUER_WITH_DATABASE: 'true' });
    expect(error.problems.map((problem) => problem.variable)).toEqual(['DEV_ISSUER_WITH_DATABASE']);
  });
});

describe('loadConfig: the development issuer and DATABASE_URL', () => {
  const DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/registry';

  it('refuses the development issuer on a DATABASE_URL database unless asked, naming the way to ask', () => {
    const error = refusal({ DATABASE_URL });
    expect(error.problems.map((problem) => problem.variable)).toEqual(['KEYCLOAK_ISSUER']);
    expect(error.message).toContain('DEV_ISSUER_WITH_DATABASE=true');
  });

  it('runs it there with DEV_ISSUER_WITH_DATABASE=true', () => {
    const config = loadConfig({ DATABASE_URL, DEV_ISSUER_WITH_DATABASE: 'true' });
    expect(config.auth).toMatchObject({ issuer: null, devIssuerWithDatabase: true });
    expect(config.database).toEqual({ kind: 'postgres', url: DATABASE_URL });
  });

  it('needs no flag with a real issuer, nor with the embedded database', () => {
    expect(loadConfig({ DATABASE_URL, KEYCLOAK_ISSUER: 'http://localhost:8080/realms/breakpilot-dev' }).auth.issuer).not.toBeNull();
    expect(loadConfig({}).auth.issuer).toBeNull();
  });

  it('refuses a DEV_ISSUER_WITH_DATABASE that is neither true nor false', () => {
    expect(refusal({ DEV_ISSUER_WITH_DATABASE: 'yes' }).variable).toBe('DEV_ISSUER_WITH_DATABASE');
  });
});

describe('loadConfig: where /metrics is served', () => {
  it.each<[string, Record<string, string>, boolean]>([
    ['dev', {}, true],
    ['dev with METRICS_ADDR', { METRICS_ADDR: '127.0.0.1:9100' }, false],
    ['dev, turned off', { METRICS_ON_MAIN_LISTENER: 'false' }, false],
    ['prod', PROD, false],
    ['prod, turned on', { ...PROD, METRICS_ON_MAIN_LISTENER: 'true' }, true],
    ['prod with METRICS_ADDR, turned on too', { ...PROD, METRICS_ADDR: ':9100', METRICS_ON_MAIN_LISTENER: 'true' }, true],
  ])('%s: on the main listener is %s', (_, env, onMain) => {
    expect(loadConfig(env).metricsOnMainListener).toBe(onMain);
  });

  it('refuses a METRICS_ON_MAIN_LISTENER that is neither true nor false', () => {
    expect(refusal({ METRICS_ON_MAIN_LISTENER: '1' }).message).toMatch(/^invalid METRICS_ON_MAIN_LISTENER: expected true or false/);
  });
});

describe('loadConfig with several problems', () => {
  it('names every bad variable in one line, in the order the rules ran, echoing no value', () => {
    const error = refusal({ APP_ENV: 'prod', ADDR: 'abc', DATABASE_URL: 'postgres://user:hunter2@' });
    expect(error.problems.map((problem) => problem.variable)).toEqual([
      'ADDR',
      'DATABASE_URL',
      'KEYCLOAK_ISSUER',
      'API_KEY_PEPPER',
      'KEYCLOAK_AUDIENCE',
      'KEYCLOAK_ADMIN_URL',
    ]);
    expect(error.variable).toBe('ADDR');
    expect(error.message).toBe(error.problems.map((problem) => `invalid ${problem.variable}: expected ${problem.expected}`).join('; '));
    expect(error.message).toMatch(/^invalid ADDR: expected host:port or :port, e\.g\. :8090 or 127\.0\.0\.1:8090; invalid DATABASE_URL: expected /);
    expect(error.message).not.toContain('\n');
    expect(error.message).not.toContain('hunter2');
  });

  it('names a variable once, with the first rule it breaks', () => {
    const error = refusal({ KEYCLOAK_PROVISIONING: 'off', KEYCLOAK_ADMIN_URL: 'id.example.com' });
    expect(error.problems).toEqual([{ variable: 'KEYCLOAK_ADMIN_URL', expected: 'empty (mock adapter) or an http(s) URL of Keycloak' }]);
  });

  it('does not pile rules of APP_ENV on a bad APP_ENV', () => {
    expect(refusal({ APP_ENV: 'production' }).problems.map((problem) => problem.variable)).toEqual(['APP_ENV']);
  });
});

describe('loadMigrationConfig', () => {
  const DATABASE_URL = 'postgres://registry:hunter2@db.internal:5432/registry';

  it('needs DATABASE_URL alone in prod: no pepper, no issuer, no Keycloak (an init container has none)', () => {
    expect(loadMigrationConfig({ APP_ENV: 'prod', DATABASE_URL })).toEqual({ appEnv: 'prod', database: { kind: 'postgres', url: DATABASE_URL } });
    expect(() => loadConfig({ APP_ENV: 'prod', DATABASE_URL })).toThrow(ConfigError);
  });

  it("ignores the server's variables, even bad ones", () => {
    expect(loadMigrationConfig({ DATABASE_URL, ADDR: 'abc', API_KEY_PEPPER: 'short', KEYCLOAK_PROVISIONING: 'maybe' }).database.kind).toBe('postgres');
  });

  it('takes a persistent embedded database in dev', () => {
    expect(loadMigrationConfig({ EMBEDDED_DB_DIR: './data/db' })).toEqual({ appEnv: 'dev', database: { kind: 'embedded', dataDir: './data/db' } });
  });

  it.each<[string, Record<string, string>, string[]]>([
    ['nothing to migrate', {}, ['DATABASE_URL']],
    ['prod without DATABASE_URL', { APP_ENV: 'prod' }, ['DATABASE_URL']],
    ['prod on an embedded database', { APP_ENV: 'stage', EMBEDDED_DB_DIR: './data/db' }, ['DATABASE_URL']],
    ['a URL that is not postgres://', { DATABASE_URL: 'mysql://db/registry' }, ['DATABASE_URL']],
    ['both databases', { DATABASE_URL, EMBEDDED_DB_DIR: './data/db' }, ['EMBEDDED_DB_DIR']],
    ['a bad APP_ENV and no database', { APP_ENV: 'production' }, ['APP_ENV', 'DATABASE_URL']],
  ])('refuses %s, by the same rules as the server', (_, env, variables) => {
    const error = refusal(env, loadMigrationConfig);
    expect(error.problems.map((problem) => problem.variable)).toEqual(variables);
    expect(error.message).toMatch(/^invalid [A-Z_]+: expected [^\n]+$/);
  });

  it('never echoes a password', () => {
    expect(refusal({ APP_ENV: 'prod', DATABASE_URL: 'postgres://user:hunter2@' }, loadMigrationConfig).message).not.toContain('hunter2');
  });
});
