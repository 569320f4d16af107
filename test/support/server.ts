// A real HTTP server around buildApp, listening on a loopback port, with a real database of the
// chosen driver; tests talk to it with fetch like any client would.
import { pino } from 'pino';
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppDeps } from '../../src/app.js';
import type { Database } from '../../src/store/database.js';
import { openMigratedDatabase, type DriverName } from './drivers.js';

export interface TestServer {
  url: string;
  db: Database;
  app: FastifyInstance;
  close(): Promise<void>;
}

export async function startServerOn(db: Database, overrides: Partial<AppDeps> = {}): Promise<{ url: string; app: FastifyInstance }> {
  const app = await buildApp({
    db,
    config: { appEnv: 'dev', bodyLimitBytes: 64 * 1024 },
    logger: pino({ level: 'silent' }),
    ...overrides,
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { url, app };
}

export async function startServer(driver: DriverName, overrides: Partial<AppDeps> = {}): Promise<TestServer> {
  const database = await openMigratedDatabase(driver);
  const { url, app } = await startServerOn(database.db, overrides);
  return {
    url,
    db: database.db,
    app,
    async close() {
      await app.close();
      await database.close();
    },
  };
}
