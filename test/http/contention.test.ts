// A transaction PostgreSQL rolls back because it met a concurrent one (a deadlock) is answered
// 503 contention with Retry-After, not 500: nothing was written and running it again will do.
// The error is a real one, made by two connections that wait for each other.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import type { Database } from '../../src/store/database.js';
import { openPg } from '../../src/store/pg-driver.js';
import { DRIVERS, openMigratedDatabase, type TestDatabase } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { problemOf } from '../support/http.js';
import { startServerOn, type StartedApp } from '../support/server.js';

/** Two transactions that each lock one tenant and then want the other's: PostgreSQL aborts one. */
async function realDeadlock(url: string, ids: [string, string]): Promise<unknown> {
  const [a, b] = [openPg({ url, poolSize: 1 }), openPg({ url, poolSize: 1 })];
  let locked = 0;
  let bothLocked!: () => void;
  const ready = new Promise<void>((resolve) => (bothLocked = resolve));
  const crossing = (db: Database, first: string, second: string) =>
    db.transaction(async (tx) => {
      await tx.query('SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE', [first]);
      if (++locked === 2) bothLocked();
      await ready;
      await tx.query('SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE', [second]);
    });
  try {
    const outcomes = await Promise.allSettled([crossing(a, ids[0], ids[1]), crossing(b, ids[1], ids[0])]);
    const failed = outcomes.find((outcome) => outcome.status === 'rejected');
    if (!failed) throw new Error('no deadlock');
    return failed.reason;
  } finally {
    await a.close();
    await b.close();
  }
}

describe.runIf(DRIVERS.includes('pg'))('a transaction rolled back for a deadlock [pg]', () => {
  let database: TestDatabase;
  let app: StartedApp;
  let deadlock: unknown;
  let failNext = false;
  beforeAll(async () => {
    database = await openMigratedDatabase('pg');
    // The app's database, whose next transaction fails as PostgreSQL failed the real one.
    const db: Database = {
      ...database.db,
      transaction: (fn) => {
        if (!failNext) return database.db.transaction(fn);
        failNext = false;
        return database.db.transaction(async (tx) => {
          await fn(tx);
          throw deadlock;
        });
      },
    };
    app = await startServerOn(db);
    const [one, two] = [await createTenant(app.api), await createTenant(app.api)];
    deadlock = await realDeadlock(database.url!, [one.id, two.id]);
    expect((deadlock as { code?: string }).code).toBe('40P01');
  });
  afterAll(async () => {
    await app.close();
    await database.close();
  });

  it('answers 503 contention with Retry-After, and nothing of the change is kept', async () => {
    const tenant = await createTenant(app.api, { plan: 'before' });
    failNext = true;
    const answer = await app.api.request('PATCH', `/v1/tenants/${tenant.id}`, { body: { plan: 'after' }, headers: { 'if-match': '*' } });
    expect(answer.status).toBe(503);
    expect(problemOf(answer)).toMatchObject({ code: 'contention' });
    expect(answer.headers.get('retry-after')).toBe('1');
    expect(answer.text).not.toContain('deadlock');
    expect((await app.api.get<Tenant>(`/v1/tenants/${tenant.id}`)).body.plan).toBe('before');
    // Run again, it goes through.
    expect((await app.api.request('PATCH', `/v1/tenants/${tenant.id}`, { body: { plan: 'after' }, headers: { 'if-match': '*' } })).status).toBe(200);
  });
});
