import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';

describe('loadConfig', () => {
  it('applies the documented defaults to an empty environment', () => {
    expect(loadConfig({})).toEqual({
      appEnv: 'dev',
      listen: { host: '0.0.0.0', port: 8090 },
      auth: {
        issuer: null,
        audience: null,
        rolesClient: 'tenant-registry',
        roles: { platformAdmin: 'platform_admin', itAdmin: 'IT_ADMIN', service: 'registry_service' },
      },
      database: { kind: 'embedded', dataDir: null },
      keycloak: { adminUrl: '', realm: 'breakpilot-dev', clientId: '', clientSecret: '', provisionBudgetMs: 5000 },
      apiKeyPepper: null,
      catalogPath: null,
      trialExpiryIntervalMs: 60_000,
      logLevel: 'info',
      bodyLimitBytes: 262144,
      requestTimeoutMs: 30_000,
      headersTimeoutMs: 10_000,
      pool: { size: 10, statementTimeoutMs: 5000 },
      rateLimits: { publicPerMinute: 600, servicePerMinute: 3_000_000, internalPerMinute: 600000, authFailuresPerMinute: 120 },
      redisUrl: null,
      metricsListen: null,
      shutdownDrainMs: 5000,
      shutdownGraceMs: 10_000,
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
      adminUrl: 'https://id.example.com',
      realm: 'prod',
      clientId: 'tenant-registry',
      clientSecret: 's3cret',
      provisionBudgetMs: 5000,
    });
    expect(config.auth).toEqual({
      issuer: 'https://id.example.com/realms/prod',
      audience: 'tenant-registry',
      rolesClient: 'registry-api',
      roles: { platformAdmin: 'ops', itAdmin: 'tenant-admin', service: 'svc' },
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

  it('drops a trailing slash from KEYCLOAK_ISSUER, which tokens never carry', () => {
    expect(loadConfig({ KEYCLOAK_ISSUER: 'https://id.example.com/realms/prod/' }).auth.issuer).toBe('https://id.example.com/realms/prod');
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
