import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant, randomSlug } from '../support/factories.js';
import { problemOf, type Client } from '../support/http.js';
import { identities } from '../support/identities.js';
import { startServer, type TestServer } from '../support/server.js';
import { START, TestClock } from '../support/time.js';

const HOUR = 3_600_000;

eachDriver('Idempotency-Key', (driver) => {
  let server: TestServer;
  let api: Client;
  const clock = new TestClock();
  beforeAll(async () => {
    server = await startServer(driver, { clock: clock.now });
    api = server.api;
  });
  beforeEach(() => clock.reset());
  afterAll(() => server.close());

  const withKey = (key: string) => ({ 'idempotency-key': key });
  const count = async (sql: string, params: unknown[]) => (await server.db.query<{ n: number }>(sql, params))[0]!.n;

  it('replays the first answer of a tenant creation: same status, body and Location, one tenant, one event', async () => {
    const key = `create-${randomSlug()}`;
    const body = { slug: randomSlug(), name: 'Retry GmbH' };
    const first = await api.post<{ tenant: Tenant }>('/v1/tenants', { body, headers: withKey(key) });
    const again = await api.post<{ tenant: Tenant }>('/v1/tenants', { body, headers: withKey(key) });
    expect(first.status).toBe(201);
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get('location')).toBe(first.headers.get('location'));
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    expect(await count('SELECT count(*) AS n FROM tenants WHERE slug = $1', [body.slug])).toBe(1);
    expect(await count(`SELECT count(*) AS n FROM audit_log WHERE tenant_id = $1 AND action = 'tenant.created'`, [first.body.tenant.id])).toBe(1);
  });

  it('refuses the same key with another body: 422 idempotency_key_reused, nothing created', async () => {
    const key = `reuse-${randomSlug()}`;
    await api.post('/v1/tenants', { body: { slug: randomSlug(), name: 'First' }, headers: withKey(key) });
    const other = randomSlug();
    const answer = await api.post('/v1/tenants', { body: { slug: other, name: 'Second' }, headers: withKey(key) });
    expect(answer.status).toBe(422);
    expect(problemOf(answer).code).toBe('idempotency_key_reused');
    expect(await count('SELECT count(*) AS n FROM tenants WHERE slug = $1', [other])).toBe(0);
  });

  it('gives concurrent requests with one key one effect', async () => {
    const key = `race-${randomSlug()}`;
    const body = { slug: randomSlug(), name: 'Racer' };
    const answers = await Promise.all(Array.from({ length: 6 }, () => api.post('/v1/tenants', { body, headers: withKey(key) })));
    const statuses = answers.map((a) => a.status);
    // One ran; each other one either replayed it (201) or was told to wait (409), never a second tenant.
    expect(statuses.every((s) => s === 201 || s === 409)).toBe(true);
    expect(answers.filter((a) => a.status === 201 && a.headers.get('idempotent-replayed') === null)).toHaveLength(1);
    for (const waited of answers.filter((a) => a.status === 409)) {
      expect(problemOf(waited).code).toBe('idempotency_in_progress');
      expect(waited.headers.get('retry-after')).toBe('1');
    }
    expect(await count('SELECT count(*) AS n FROM tenants WHERE slug = $1', [body.slug])).toBe(1);
  });

  it('replays an error answer too (the request was refused, and is refused again the same way)', async () => {
    const taken = await createTenant(api);
    const key = `refused-${randomSlug()}`;
    const body = { slug: taken.slug, name: 'Duplicate' };
    const first = await api.post('/v1/tenants', { body, headers: withKey(key) });
    const again = await api.post('/v1/tenants', { body, headers: withKey(key) });
    expect(first.status).toBe(409);
    expect(again.status).toBe(409);
    expect(problemOf(again).code).toBe('slug_taken');
    expect(again.headers.get('idempotent-replayed')).toBe('true');
  });

  it('keeps keys per caller: another caller with the same key makes its own request', async () => {
    const tenant = await createTenant(api);
    const itAdmin = await server.as(identities.itAdmin(tenant.id));
    const key = `shared-${randomSlug()}`;
    const mine = await api.post<{ id: string }>('/v1/api-keys', { body: { tenant_id: tenant.id, name: 'mine' }, headers: withKey(key) });
    const theirs = await itAdmin.post<{ id: string }>('/v1/api-keys', { body: { tenant_id: tenant.id, name: 'theirs' }, headers: withKey(key) });
    expect(mine.status).toBe(201);
    expect(theirs.status).toBe(201);
    expect(theirs.body.id).not.toBe(mine.body.id);
  });

  it('replays an API key creation without the plaintext key, which is never kept at rest', async () => {
    const tenant = await createTenant(api);
    const key = `apikey-${randomSlug()}`;
    const body = { tenant_id: tenant.id, name: 'ci' };
    const first = await api.post<{ id: string; key?: string }>('/v1/api-keys', { body, headers: withKey(key) });
    const again = await api.post<{ id: string; key?: string }>('/v1/api-keys', { body, headers: withKey(key) });
    expect(first.status).toBe(201);
    expect(first.body.key).toMatch(/^bp_/);
    expect(again.status).toBe(201);
    expect(again.body.id).toBe(first.body.id);
    expect(again.body).not.toHaveProperty('key');
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const stored = await server.db.query<{ body: string }>('SELECT body FROM idempotency_keys WHERE key = $1', [key]);
    expect(stored[0]!.body).not.toContain(first.body.key);
    expect(await count('SELECT count(*) AS n FROM api_keys WHERE tenant_id = $1', [tenant.id])).toBe(1);
  });

  it('replays a trial request instead of answering trial_used', async () => {
    const tenant = await createTenant(api);
    const key = `trial-${randomSlug()}`;
    const body = { tenant_id: tenant.id, product: 'risk' };
    const first = await api.post('/v1/catalog/trial-request', { body, headers: withKey(key) });
    const again = await api.post('/v1/catalog/trial-request', { body, headers: withKey(key) });
    expect(first.status).toBe(201);
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    expect((await api.post('/v1/catalog/trial-request', { body })).status).toBe(409);
  });

  it('replays a sales request', async () => {
    const tenant = await createTenant(api);
    const key = `sales-${randomSlug()}`;
    const body = { tenant_id: tenant.id, product: 'api', message: 'call me' };
    const first = await api.post('/v1/catalog/request', { body, headers: withKey(key) });
    const again = await api.post('/v1/catalog/request', { body, headers: withKey(key) });
    expect(first.status).toBe(202);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
  });

  it('forgets a key after 24 hours: the same key then makes a new request', async () => {
    const key = `old-${randomSlug()}`;
    const first = await api.post('/v1/tenants', { body: { slug: randomSlug(), name: 'Yesterday' }, headers: withKey(key) });
    expect(first.status).toBe(201);
    clock.advance(24 * HOUR + 1);
    const second = await api.post('/v1/tenants', { body: { slug: randomSlug(), name: 'Today' }, headers: withKey(key) });
    expect(second.status).toBe(201);
    expect(second.headers.get('idempotent-replayed')).toBeNull();
  });

  it('refuses a malformed key with 400 naming the header', async () => {
    for (const bad of ['x'.repeat(256), 'has space', 'ünïcode']) {
      const answer = await api.post('/v1/tenants', { body: { slug: randomSlug(), name: 'X' }, headers: withKey(bad) });
      expect(answer.status, bad).toBe(400);
      expect(problemOf(answer).errors).toContainEqual(expect.objectContaining({ path: '/idempotency-key', in: 'headers' }));
    }
  });
});

it('housekeeping deletes only expired answers', async () => {
  const { deleteExpiredIdempotencyKeys } = await import('../../src/store/idempotency.js');
  const { openMigratedDatabase } = await import('../support/drivers.js');
  const database = await openMigratedDatabase('pglite');
  try {
    const now = new Date(START);
    await database.db.query(
      `INSERT INTO idempotency_keys (principal, key, request_hash, expires_at) VALUES
         ('p', 'old', 'h', $1), ('p', 'fresh', 'h', $2)`,
      [new Date(now.getTime() - 1), new Date(now.getTime() + 1000)],
    );
    expect(await deleteExpiredIdempotencyKeys(database.db, now)).toBe(1);
    expect((await database.db.query<{ key: string }>('SELECT key FROM idempotency_keys')).map((r) => r.key)).toEqual(['fresh']);
  } finally {
    await database.close();
  }
});
