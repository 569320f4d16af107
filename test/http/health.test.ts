import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPg } from '../../src/store/pg-driver.js';
import { eachDriver } from '../support/drivers.js';
import { problemOf, type Client } from '../support/http.js';
import { startServer, startServerOn, type TestServer } from '../support/server.js';

eachDriver('health probes', (driver) => {
  let server: TestServer;
  let api: Client;
  beforeAll(async () => {
    server = await startServer(driver);
    api = server.api;
  });
  afterAll(() => server.close());

  it('answers liveness and readiness while the database is up', async () => {
    expect((await api.get('/healthz')).body).toEqual({ status: 'ok' });
    const ready = await api.get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready', checks: { database: 'up', keycloak: 'mock' } });
  });
});

describe('health probes with the database unreachable', () => {
  // Port 1 on loopback: nothing listens there, so every connection is refused at once.
  const db = openPg({ url: 'postgres://postgres@127.0.0.1:1/nothing', poolSize: 1 });
  let api: Client;
  let close: () => Promise<void>;
  beforeAll(async () => {
    const started = await startServerOn(db);
    api = started.api;
    close = async () => {
      await started.close();
      await db.close();
    };
  });
  afterAll(() => close());

  it('keeps liveness green, answers readiness 503 problem', async () => {
    expect((await api.get('/healthz')).status).toBe(200);
    const ready = await api.get('/readyz');
    expect(ready.status).toBe(503);
    expect(problemOf(ready).code).toBe('unavailable');
  });

  it('answers requests that need the database 503 unavailable with Retry-After, quickly', async () => {
    const started = Date.now();
    const answer = await api.get('/v1/tenants/by-slug/acme');
    expect(answer.status).toBe(503);
    expect(problemOf(answer).code).toBe('unavailable');
    expect(answer.headers.get('retry-after')).toBe('2');
    expect(answer.text).not.toContain('ECONNREFUSED');
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
