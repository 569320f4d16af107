// The process outside dev fails closed: it refuses to start without an audience, without a real
// Keycloak Admin API (unless provisioning is turned off on purpose), or with the development issuer
// on a real database unless asked, and lists every bad variable in one line. Started for real in
// prod with provisioning off, it says so on /readyz, claims no invitation, and keeps /metrics off
// the public listener. The migrate command needs DATABASE_URL alone, and down-all asks for a flag.
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { DRIVERS } from '../support/drivers.js';
import { randomSlug } from '../support/factories.js';
import { client, problemOf, type Client } from '../support/http.js';
import { identities } from '../support/identities.js';
import { startTestIssuer, type TestIssuer } from '../support/issuer.js';
import { createTestPgDatabase, type TestPgDatabase } from '../support/postgres.js';
import { freePort, PROCESS_TEST_TIMEOUT_MS, PROCESS_WAIT_MS, runMigrate, spawnService, startService, stopAll, stopService, type ServiceProcess } from './spawn.js';

afterAll(() => stopAll());

// Nothing listens on port 1: a process that got past the configuration would fail differently.
const UNREACHABLE = {
  DATABASE_URL: 'postgres://registry:hunter2secret@127.0.0.1:1/registry',
  KEYCLOAK_ISSUER: 'http://127.0.0.1:1/realms/prod',
  KEYCLOAK_ADMIN_URL: 'http://127.0.0.1:1',
};
/** Everything prod requires, so a test can take one thing away. */
const PROD = {
  APP_ENV: 'prod',
  ...UNREACHABLE,
  KEYCLOAK_AUDIENCE: 'tenant-registry',
  KEYCLOAK_CLIENT_ID: 'tenant-registry',
  KEYCLOAK_CLIENT_SECRET: 'client-s3cret',
  API_KEY_PEPPER: 'pepper-that-is-at-least-32-characters-long',
};

/** Runs the service with env and waits for it to give up before listening; returns its stderr. */
async function refusedBoot(env: Record<string, string>): Promise<string> {
  // LOG_LEVEL=info would print "Server listening" had it listened: stdout must stay empty.
  const service = spawnService({ LOG_LEVEL: 'info', ...env }, await freePort());
  const exit = await service.waitForExit(PROCESS_WAIT_MS);
  expect(exit, 'the process should have exited at boot').toMatchObject({ code: 1, signal: null });
  expect(service.stdout()).toBe('');
  // One line on stderr, whatever the number of problems.
  expect(service.stderr()).toMatch(/^tenant-registry: [^\n]+\n$/);
  return service.stderr();
}

describe('outside dev, the process refuses to start', () => {
  afterEach(() => stopAll());

  it('without KEYCLOAK_AUDIENCE: a token minted for any other client of the realm would pass', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    const stderr = await refusedBoot({ ...PROD, KEYCLOAK_AUDIENCE: '' });
    expect(stderr).toBe('tenant-registry: invalid KEYCLOAK_AUDIENCE: expected the audience tokens must carry in aud when APP_ENV is prod\n');
  });

  it('without KEYCLOAK_ADMIN_URL, unless provisioning is turned off, and says how', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    const stderr = await refusedBoot({ ...PROD, APP_ENV: 'stage', KEYCLOAK_ADMIN_URL: '' });
    expect(stderr).toBe(
      'tenant-registry: invalid KEYCLOAK_ADMIN_URL: expected an http(s) URL of Keycloak when APP_ENV is stage, or KEYCLOAK_PROVISIONING=off\n',
    );
  });

  it('naming every missing variable in one line, and no value', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    const stderr = await refusedBoot({ APP_ENV: 'prod', DATABASE_URL: UNREACHABLE.DATABASE_URL, ADDR: 'abc' });
    const named = [...stderr.matchAll(/invalid ([A-Z_]+): expected/g)].map((match) => match[1]);
    expect(named).toEqual(['ADDR', 'KEYCLOAK_ISSUER', 'API_KEY_PEPPER', 'KEYCLOAK_AUDIENCE', 'KEYCLOAK_ADMIN_URL']);
    expect(stderr).toMatch(/^tenant-registry: invalid ADDR: expected [^;]+; invalid KEYCLOAK_ISSUER: expected /);
    expect(stderr).not.toContain('hunter2secret');
  });

  it('in dev, with the development issuer on a DATABASE_URL database it was not asked to run on', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    const stderr = await refusedBoot({ APP_ENV: 'dev', DATABASE_URL: UNREACHABLE.DATABASE_URL });
    expect(stderr).toMatch(/^tenant-registry: invalid KEYCLOAK_ISSUER: expected .*DEV_ISSUER_WITH_DATABASE=true/);
    expect(stderr).not.toContain('hunter2secret');
  });
});

describe.runIf(DRIVERS.includes('pg'))('prod on a real PostgreSQL, provisioning turned off', () => {
  // The steps share one database and run in the order written.
  let database: TestPgDatabase;
  let issuer: TestIssuer;
  let service: ServiceProcess;
  let api: Client;
  const AUDIENCE = 'tenant-registry';

  beforeAll(async () => {
    [database, issuer] = await Promise.all([createTestPgDatabase(), startTestIssuer()]);
  });
  afterAll(async () => {
    await stopAll();
    await issuer?.close();
    await database?.drop();
  });

  const tablesIn = async (url: string): Promise<string[]> => {
    const db = new pg.Client({ connectionString: url });
    await db.connect();
    try {
      const result = await db.query<{ table_name: string }>(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
      );
      return result.rows.map((row) => row.table_name);
    } finally {
      await db.end();
    }
  };

  it('migrate up runs with only DATABASE_URL and APP_ENV=prod, as an init container runs it', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    const up = await runMigrate(['up'], { APP_ENV: 'prod', DATABASE_URL: database.url });
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toContain('applied 0001_init');
    expect(await tablesIn(database.url)).toContain('tenants');
  });

  it('starts with KEYCLOAK_PROVISIONING=off and no Keycloak, and the boot log says what is off', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    service = await startService({
      APP_ENV: 'prod',
      DATABASE_URL: database.url,
      KEYCLOAK_ISSUER: issuer.url,
      KEYCLOAK_AUDIENCE: AUDIENCE,
      KEYCLOAK_PROVISIONING: 'off',
      API_KEY_PEPPER: 'pepper-that-is-at-least-32-characters-long',
      LOG_LEVEL: 'info',
    });
    api = client(service.baseUrl, await issuer.mint(identities.platformAdmin(), { audience: AUDIENCE }));
    await service.waitForOutput('tenant-registry ready', PROCESS_WAIT_MS);
    const lines = service
      .stdout()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.find((line) => line.msg === 'tenant-registry ready')).toMatchObject({ env: 'prod', keycloak: 'disabled', metrics: 'not served' });
    const messages = lines.map((line) => String(line.msg));
    expect(messages).toContainEqual(expect.stringContaining('METRICS_ON_MAIN_LISTENER=true'));
    expect(messages).toContainEqual(expect.stringContaining('Keycloak provisioning is off'));
  });

  it("/readyz reports Keycloak 'disabled', not fine", async () => {
    const ready = await api.get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready', checks: { database: 'up', keycloak: 'disabled', issuer: 'up' } });
  });

  it('does not serve /metrics on the public listener', async () => {
    const metrics = await fetch(`${service.baseUrl}/metrics`);
    expect(metrics.status).toBe(404);
    expect(await metrics.text()).not.toContain('tenant_registry_');
  });

  it('refuses a token minted for another client of the realm', async () => {
    const other = client(service.baseUrl, await issuer.mint(identities.platformAdmin(), { audience: 'portal' }));
    expect((await other.get('/v1/tenants/by-slug/acme')).status).toBe(401);
  });

  it('records provisioning as failed (disabled) for a tenant with admin_email, and claims no invitation', async () => {
    const slug = randomSlug('off');
    const created = await api.post<{ tenant: Tenant; invite_url?: string }>('/v1/tenants', {
      body: { slug, name: 'Closed GmbH', admin_email: `it@${slug}.example.com` },
    });
    expect(created.status, created.text).toBe(201);
    expect(created.body.tenant.keycloak_provisioning).toBe('failed');
    expect(created.body).not.toHaveProperty('invite_url');

    const audit = await api.get<{ items: Array<{ action: string; fields: Record<string, string> }> }>(
      `/v1/audit?tenant_id=${created.body.tenant.id}&action=keycloak.*`,
    );
    expect(audit.status).toBe(200);
    expect(audit.body.items.map((event) => event.action)).toEqual(['keycloak.provision_failed']);
    expect(audit.body.items[0]?.fields).toMatchObject({ error_type: 'disabled' });

    const retried = await api.post(`/v1/tenants/${created.body.tenant.id}/keycloak/provision`, { body: {} });
    expect(retried.status).toBe(409);
    expect(problemOf(retried).code).toBe('keycloak_provisioning_off');
  });

  it('migrate down-all refuses in prod without the flag, naming it, and leaves every table', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    expect(await stopService(service, 'SIGTERM')).toMatchObject({ code: 0 });
    const before = await tablesIn(database.url);
    const env = { APP_ENV: 'prod', DATABASE_URL: database.url };

    const refused = await runMigrate(['down-all'], env);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/^migrate: down-all [^\n]*APP_ENV=prod[^\n]*migrate down-all --yes-destroy-all-data\n$/);
    const mistyped = await runMigrate(['down-all', '--yes'], env);
    expect(mistyped.code).toBe(1);
    expect(mistyped.stderr).toContain('usage: migrate');
    expect(await tablesIn(database.url)).toEqual(before);
    expect((await runMigrate(['version'], env)).stdout).toContain('0 pending');

    const destroyed = await runMigrate(['down-all', '--yes-destroy-all-data'], env);
    expect(destroyed.code, destroyed.stderr).toBe(0);
    expect(destroyed.stdout).toContain('reverted 0001_init');
    expect(await tablesIn(database.url)).not.toContain('tenants');
  });
});
