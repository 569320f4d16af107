import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { authenticationFor } from '../../src/auth/setup.js';
import { loadCatalog } from '../../src/catalog-file.js';
import { loadConfig } from '../../src/config.js';
import { startCaching, type Caching } from '../../src/caching/setup.js';
import { startKeyVerification, type KeyVerification } from '../../src/keys/setup.js';
import { MockAdapter } from '../../src/keycloak/mock-adapter.js';
import { startFeedSignal, type FeedSignal } from '../../src/events/feed-signal.js';
import { openMigratedDatabase, type TestDatabase } from '../support/drivers.js';

describe('the development issuer routes', () => {
  let database: TestDatabase;
  let app: FastifyInstance;
  let caching: Caching;
  let keys: KeyVerification;
  let feed: FeedSignal;
  beforeAll(async () => {
    database = await openMigratedDatabase('pglite');
    const config = loadConfig({});
    caching = await startCaching(database.db);
    keys = startKeyVerification(database.db, caching.keyCache, { pepper: null, clock: () => new Date(), onError: () => {} });
    feed = await startFeedSignal(database.db);
    app = await buildApp({
      caching,
      feed,
      auth: await authenticationFor(config),
      catalog: await loadCatalog(),
      keys,
      keycloak: { adapter: new MockAdapter('http://keycloak.test/realms/test'), budgetMs: 5_000 },
      config,
      logger: pino({ level: 'silent' }),
    });
  });
  afterAll(async () => {
    await app.close();
    await feed.stop();
    await keys.stop();
    await caching.stop();
    await database.close();
  });

  it('hands tokens to local callers', async () => {
    for (const remoteAddress of ['127.0.0.1', '::1', '::ffff:127.0.0.1']) {
      const answer = await app.inject({ method: 'POST', url: '/dev/token', remoteAddress, payload: { roles: ['platform_admin'] } });
      expect(answer.statusCode).toBe(200);
      const { access_token: token } = answer.json<{ access_token: string }>();
      const tenant = await app.inject({ url: '/v1/tenants/by-slug/acme', headers: { authorization: `Bearer ${token}` }, remoteAddress });
      expect(tenant.statusCode).toBe(404); // authenticated; this test database has no seed
    }
  });

  it('refuses anyone else on the network: ADDR=:8090 listens on every interface', async () => {
    for (const remoteAddress of ['10.0.0.7', '192.0.2.2', '2001:db8::1']) {
      const token = await app.inject({ method: 'POST', url: '/dev/token', remoteAddress, payload: { roles: ['platform_admin'] } });
      expect(token.statusCode).toBe(403);
      expect(token.json<{ code: string }>().code).toBe('forbidden');
      expect(token.body).not.toContain('access_token');
      expect((await app.inject({ url: '/dev/jwks.json', remoteAddress })).statusCode).toBe(403);
    }
  });
});
