// The process at boot: configuration errors stop it before it listens, the embedded database is
// the default (seeded, optionally kept on disk), and a real PostgreSQL must be migrated first.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { openPglite } from '../../src/store/pglite-driver.js';
import { ACME_TENANT } from '../../src/store/seed.js';
import { DRIVERS } from '../support/drivers.js';
import { randomSlug } from '../support/factories.js';
import { client, problemOf } from '../support/http.js';
import { createTestPgDatabase, type TestPgDatabase } from '../support/postgres.js';
import { devToken, freePort, PROCESS_TEST_TIMEOUT_MS, PROCESS_WAIT_MS, runMigrate, spawnService, startService, stopAll, stopService, type ServiceProcess } from './spawn.js';

afterEach(() => stopAll());
afterAll(() => stopAll());

/** Runs the service with env and waits for it to give up; it must not still be running. */
async function bootFailure(env: Record<string, string>): Promise<ServiceProcess> {
  // LOG_LEVEL=info makes Fastify print "Server listening" the moment it listens, so an empty
  // stdout proves the process never opened its port.
  const service = spawnService({ LOG_LEVEL: 'info', ...env }, await freePort());
  const exit = await service.waitForExit(PROCESS_WAIT_MS);
  expect(exit, 'the process should have exited at boot').not.toBeNull();
  expect(exit?.signal).toBeNull();
  expect(exit?.code).toBeGreaterThan(0);
  expect(service.stdout()).toBe('');
  return service;
}

/** stderr is exactly one non-empty line. */
function expectOneLine(stderr: string): void {
  expect(stderr).toMatch(/^[^\n]+\n$/);
}

describe('bad configuration stops the process at boot', () => {
  it.each([
    ['APP_ENV', 'production'],
    ['ADDR', 'abc'],
    ['ADDR', ':99999'],
    ['DATABASE_URL', 'not-a-url'],
    ['DATABASE_URL', 'mysql://x/y'],
    ['KEYCLOAK_ISSUER', 'ftp://x'],
  ])('%s=%s: exits non-zero with one line naming the variable', async (variable, value) => {
    const service = await bootFailure({ [variable]: value });
    expectOneLine(service.stderr());
    expect(service.stderr()).toContain(variable);
  });

  it.each([
    // Rejected by the configuration check.
    'postgres://u:hunter2secret@',
    'postgres://u:hunter2secret@[::1/db',
    // Accepted as a URL, fails when the server connects (nothing listens on port 1).
    'postgres://u:hunter2secret@127.0.0.1:1/db',
  ])('DATABASE_URL=%s: fails without echoing the password', async (url) => {
    // The development issuer is allowed on the database, so the last URL gets as far as connecting.
    const service = await bootFailure({ DATABASE_URL: url, DEV_ISSUER_WITH_DATABASE: 'true' });
    expectOneLine(service.stderr());
    expect(service.stderr()).not.toContain('hunter2secret');
    expect(service.stdout()).not.toContain('hunter2secret');
  });

  it.each(['stage', 'prod'])('APP_ENV=%s without DATABASE_URL refuses the embedded database', async (appEnv) => {
    const service = await bootFailure({ APP_ENV: appEnv });
    expectOneLine(service.stderr());
    expect(service.stderr()).toContain('DATABASE_URL');
  });
});

describe('embedded database', () => {
  it('is the default: starts seeded with the acme tenant and is ready', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    // In memory, as a newcomer's first start is (not the migrated copy other tests start from).
    const service = await startService({ EMBEDDED_DB_DIR: '' });
    const api = client(service.baseUrl, await devToken(service.baseUrl));

    const acme = await api.get<Tenant>(`/v1/tenants/by-slug/${ACME_TENANT.slug}`);
    expect(acme.status).toBe(200);
    expect(acme.body).toMatchObject({ id: '00000000-0000-0000-0000-000000000001', slug: 'acme' });
    expect((await api.get('/readyz')).status).toBe(200);
    // Something for the portal to show at once: one product paid for, one in its trial.
    const entitlements = await api.get<{ items: Array<{ product: string; status: string; days_left: number | null }> }>(
      `/v1/entitlements?tenant_id=${ACME_TENANT.id}`,
    );
    expect(entitlements.body.items.map(({ product, status, days_left }) => ({ product, status, days_left }))).toEqual([
      { product: 'compliance', status: 'active', days_left: null },
      { product: 'risk', status: 'trial', days_left: 14 },
    ]);
    const claims = await client(service.baseUrl, await devToken(service.baseUrl, ['registry_service'])).post<{ products: string[] }>(
      '/v1/internal/keycloak/claims',
      { body: { tenant_slug: 'acme' } },
    );
    expect(claims.body.products).toEqual(['compliance', 'risk']);
  });

  describe('kept in EMBEDDED_DB_DIR', () => {
    let dataDir: string | undefined;
    afterEach(async () => {
      // The process must be gone before its files are removed.
      await stopAll();
      if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
      dataDir = undefined;
    });

    it('keeps tenants across a restart and seeds acme only once', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
      dataDir = await mkdtemp(path.join(tmpdir(), 'tenant-registry-boot-'));
      const slug = randomSlug('persist');

      const first = await startService({ EMBEDDED_DB_DIR: dataDir });
      const created = await client(first.baseUrl, await devToken(first.baseUrl)).post<{ tenant: Tenant }>('/v1/tenants', {
        body: { slug, name: 'Persistent GmbH' },
      });
      expect(created.status).toBe(201);
      expect(await stopService(first, 'SIGTERM')).toMatchObject({ code: 0, signal: null });

      const second = await startService({ EMBEDDED_DB_DIR: dataDir });
      const api = client(second.baseUrl, await devToken(second.baseUrl));
      const again = await api.get<Tenant>(`/v1/tenants/by-slug/${slug}`);
      expect(again.status).toBe(200);
      expect(again.body).toMatchObject({ id: created.body.tenant.id, slug, name: 'Persistent GmbH' });
      expect((await api.get<Tenant>('/v1/tenants/by-slug/acme')).body.id).toBe(ACME_TENANT.id);
      expect(await stopService(second, 'SIGTERM')).toMatchObject({ code: 0, signal: null });

      // The API has no list endpoint; the files themselves show what the two boots left.
      const db = await openPglite({ dataDir });
      try {
        const rows = await db.query<{ slug: string }>('SELECT slug FROM tenants ORDER BY slug');
        expect(rows.map((row) => row.slug).sort()).toEqual(['acme', slug].sort());
      } finally {
        await db.close();
      }
    });
  });
});

describe.runIf(DRIVERS.includes('pg'))('real PostgreSQL', () => {
  let database: TestPgDatabase | undefined;
  afterEach(async () => {
    await stopAll();
    await database?.drop();
    database = undefined;
  });

  it('refuses pending migrations, then serves once migrated, without seeding', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    database = await createTestPgDatabase();
    // Tokens come from the development issuer, on this throwaway database.
    const env = { DATABASE_URL: database.url, DEV_ISSUER_WITH_DATABASE: 'true' };

    const refused = await bootFailure(env);
    expectOneLine(refused.stderr());
    expect(refused.stderr()).toContain('pending');
    expect(refused.stderr()).toContain('make migrate-up');

    // The refusal only looked: the schema is still untouched.
    const before = await runMigrate(['version'], env);
    expect(before.code).toBe(0);
    expect(before.stdout).toContain('version 0 (none applied)');

    const up = await runMigrate(['up'], env);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toContain('applied 0001_init');

    const service = await startService(env);
    const api = client(service.baseUrl, await devToken(service.baseUrl));
    const ready = await api.get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready', checks: { database: 'up', keycloak: 'mock', issuer: 'dev' } });

    const acme = await api.get('/v1/tenants/by-slug/acme');
    expect(acme.status).toBe(404);
    expect(problemOf(acme)).toMatchObject({ status: 404 });

    expect(await stopService(service, 'SIGTERM')).toMatchObject({ code: 0, signal: null });
  });
});
