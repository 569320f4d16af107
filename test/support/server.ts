// A real HTTP server around buildApp, listening on a loopback port, with a real database of the
// chosen driver and a real token issuer (test/support/issuer.ts); tests talk to it with fetch
// like any client would, by default as a platform admin.
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import type { JWTPayload } from 'jose';
import { buildApp, type AppDeps } from '../../src/app.js';
import { discoveredKeys } from '../../src/auth/discovery.js';
import { loadCatalog } from '../../src/catalog-file.js';
import { startCaching, type Caching } from '../../src/caching/setup.js';
import { startKeyVerification, type KeyVerification } from '../../src/keys/setup.js';
import { MockAdapter } from '../../src/keycloak/mock-adapter.js';
import { createTokenVerifier } from '../../src/auth/verifier.js';
import { startFeedSignal } from '../../src/events/feed-signal.js';
import type { Database } from '../../src/store/database.js';
import { openMigratedDatabase, type DriverName } from './drivers.js';
import { client, type Client } from './http.js';
import { identities, ROLE_NAMES } from './identities.js';
import { startTestIssuer, type TestIssuer } from './issuer.js';

/** Tests hash keys with a pepper, as every environment but dev does. */
export const TEST_PEPPER = 'test-pepper-that-is-at-least-32-characters-long';

export interface StartedApp {
  url: string;
  app: FastifyInstance;
  issuer: TestIssuer;
  /** A client calling as a platform admin. */
  api: Client;
  /** A client calling with a token of the given claims (or none). */
  as(claims: JWTPayload | null): Promise<Client>;
  /** The caches the app serves from, and the database its routes write through. */
  caching: Caching;
  /** The key verification the app serves with (its verifier, its usage recorder). */
  keys: KeyVerification;
  close(): Promise<void>;
}

export interface TestServer extends StartedApp {
  db: Database;
}

/** An app on `db`: its caches, key verification and routes all use it (wrap it to count or delay queries). */
export async function startServerOn(db: Database, overrides: Partial<AppDeps> = {}): Promise<StartedApp> {
  const issuer = await startTestIssuer();
  const verifier = createTokenVerifier({
    issuer: issuer.url,
    audience: null,
    roles: ROLE_NAMES,
    rolesClient: 'tenant-registry',
    // No cooldown: tests rotate keys and expect the new kid to be fetched at once.
    keys: discoveredKeys(issuer.url, { cooldownMs: 0 }),
  });
  const caching = await startCaching(db);
  const keys = startKeyVerification(db, caching.keyCache, { pepper: TEST_PEPPER, clock: overrides.clock ?? (() => new Date()), onError: () => {} });
  const feed = await startFeedSignal(db);
  const app = await buildApp({
    caching,
    feed,
    auth: { verifier, devIssuer: null },
    catalog: await loadCatalog(),
    keys,
    keycloak: { adapter: new MockAdapter('http://keycloak.test/realms/test'), budgetMs: 5_000 },
    config: { appEnv: 'dev', bodyLimitBytes: 64 * 1024 },
    logger: pino({ level: 'silent' }),
    // Every answer of every test is checked against its route's declared problems.
    checkProblems: true,
    ...overrides,
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const as = async (claims: JWTPayload | null) => client(url, claims ? await issuer.mint(claims) : undefined);
  return {
    url,
    app,
    issuer,
    api: await as(identities.platformAdmin()),
    as,
    caching: overrides.caching ?? caching,
    keys: overrides.keys ?? keys,
    async close() {
      await app.close();
      await feed.stop();
      await keys.stop();
      await caching.stop();
      await issuer.close();
    },
  };
}

export async function startServer(driver: DriverName, overrides: Partial<AppDeps> = {}): Promise<TestServer> {
  const database = await openMigratedDatabase(driver);
  const started = await startServerOn(database.db, overrides);
  return {
    ...started,
    db: database.db,
    async close() {
      await started.close();
      await database.close();
    },
  };
}
