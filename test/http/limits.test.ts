// The limits that keep one slow client or one slow query from holding the service: header and
// request timeouts on the socket, statement_timeout on every query, a bounded pool.
import net from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMigrations } from '../../src/store/migration-files.js';
import { migrateUp } from '../../src/store/migrator.js';
import { openPg } from '../../src/store/pg-driver.js';
import type { Database } from '../../src/store/database.js';
import { DRIVERS } from '../support/drivers.js';
import { randomSlug } from '../support/factories.js';
import { createTestPgDatabase, type TestPgDatabase } from '../support/postgres.js';
import { startServer, startServerOn, type StartedApp, type TestServer } from '../support/server.js';

interface RawAnswer {
  text: string;
  afterMs: number;
}

/** Writes `partial` to a fresh connection and never finishes the request; resolves when the server closes it. */
async function sendAndStall(url: string, partial: string): Promise<RawAnswer> {
  const { port } = new URL(url);
  const startedAt = performance.now();
  const socket = net.connect(Number(port), '127.0.0.1');
  socket.write(partial);
  let text = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
  await new Promise((resolve) => socket.on('close', resolve));
  return { text, afterMs: performance.now() - startedAt };
}

function problemIn(raw: string): { status: number; contentType: string; body: Record<string, unknown> } {
  const [head = '', body = ''] = raw.split('\r\n\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  const contentType = /content-type: ([^\r\n]+)/i.exec(head)?.[1] ?? '';
  return { status, contentType, body: JSON.parse(body) as Record<string, unknown> };
}

describe('socket timeouts', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(DRIVERS[0]!, {
      config: { appEnv: 'dev', bodyLimitBytes: 64 * 1024, requestTimeoutMs: 1_000, headersTimeoutMs: 1_000 },
    });
  });
  afterAll(() => server.close());

  it('answers 408 problem+json and closes a connection whose headers never finish', { timeout: 15_000 }, async () => {
    const answer = await sendAndStall(server.url, 'GET /healthz HTTP/1.1\r\nHost: registry\r\nX-Slow: ');
    const problem = problemIn(answer.text);
    expect(problem.status).toBe(408);
    expect(problem.contentType).toContain('application/problem+json');
    expect(problem.body).toMatchObject({ status: 408, code: 'request_timeout' });
    // The timeout plus at most one connection check (every second), never Node's 30 s default.
    expect(answer.afterMs).toBeGreaterThan(900);
    expect(answer.afterMs).toBeLessThan(5_000);
  });

  it('answers 408 to an authenticated request whose body stops arriving', { timeout: 15_000 }, async () => {
    const token = server.api.token!;
    const answer = await sendAndStall(
      server.url,
      'POST /v1/tenants HTTP/1.1\r\nHost: registry\r\ncontent-type: application/json\r\n' +
        `authorization: Bearer ${token}\r\ncontent-length: 200\r\n\r\n{"name":`,
    );
    expect(problemIn(answer.text)).toMatchObject({ status: 408, body: { code: 'request_timeout' } });
    expect(answer.afterMs).toBeLessThan(5_000);
  });

  it('answers malformed HTTP with a 400 problem, not Fastify\'s own shape', async () => {
    const answer = await sendAndStall(server.url, 'THIS IS NOT HTTP\r\n\r\n');
    expect(problemIn(answer.text)).toMatchObject({ status: 400, body: { code: 'malformed_request' } });
  });

  it('answers oversized headers with 431', async () => {
    const answer = await sendAndStall(server.url, `GET /healthz HTTP/1.1\r\nHost: registry\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(problemIn(answer.text)).toMatchObject({ status: 431, body: { code: 'headers_too_large' } });
  });
});

// statement_timeout and the pool are properties of the pg driver (the embedded one has one connection).
describe.runIf(DRIVERS.includes('pg'))('database limits [pg]', () => {
  let created: TestPgDatabase;
  let db: Database;
  let started: StartedApp;
  let admin: pg.Client;
  const POOL_SIZE = 3;

  beforeAll(async () => {
    created = await createTestPgDatabase();
    db = openPg({ url: created.url, poolSize: POOL_SIZE, statementTimeoutMs: 300 });
    await migrateUp(db, await loadMigrations());
    started = await startServerOn(db);
    admin = new pg.Client({ connectionString: created.url });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await started?.close();
    await db?.close();
    await created?.drop();
  });

  it('cancels a statement stuck behind a lock: 503 timeout with Retry-After, and nothing half-written', { timeout: 15_000 }, async () => {
    const slug = randomSlug('locked');
    const countEvents = async () => Number((await admin.query<{ n: string }>('SELECT count(*) AS n FROM audit_log')).rows[0]!.n);
    const eventsBefore = await countEvents();
    await admin.query('BEGIN');
    await admin.query('LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE');
    let answer;
    const startedAt = performance.now();
    try {
      answer = await started.api.post('/v1/tenants', { body: { name: 'Locked Out', slug } });
    } finally {
      await admin.query('ROLLBACK');
    }
    expect(answer.status).toBe(503);
    expect(answer.headers.get('content-type')).toContain('application/problem+json');
    expect(answer.body).toMatchObject({ code: 'timeout' });
    expect(Number(answer.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(performance.now() - startedAt).toBeLessThan(3_000);

    const tenants = await admin.query('SELECT 1 FROM tenants WHERE slug = $1', [slug]);
    expect(tenants.rowCount).toBe(0);
    expect(await countEvents()).toBe(eventsBefore);
    // The service is fine once the lock is gone.
    expect((await started.api.post('/v1/tenants', { body: { name: 'Let In', slug } })).status).toBe(201);
  });

  it('never opens more connections than DB_POOL_SIZE, however many queries wait', async () => {
    const countConnections = async () =>
      Number((await admin.query<{ n: string }>('SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [created.name])).rows[0]!.n);
    let peak = 0;
    const queries = Array.from({ length: 4 * POOL_SIZE }, () => db.query('SELECT pg_sleep(0.05)'));
    const watching = (async () => {
      for (let i = 0; i < 10; i++) {
        peak = Math.max(peak, await countConnections());
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    await Promise.all([...queries, watching]);
    // The service's pool plus its one LISTEN connection, which carries both the invalidation
    // feed and the change feed's signal (store/pg-listener.ts).
    expect(peak).toBeGreaterThanOrEqual(POOL_SIZE);
    expect(peak).toBeLessThanOrEqual(POOL_SIZE + 1);
  });
});
