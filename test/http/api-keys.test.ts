// /v1/api-keys: create (the plaintext once), list (never a secret), revoke, rotate with grace,
// and last_used_at written by the batched usage recorder. The key verification is built here
// rather than by the harness, so the test holds its usage recorder and can flush it.
import { createHmac } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/domain/api-key.js';
import type { ApiKey } from '../../src/http/schemas/api-key.js';
import type { AuditEvent } from '../../src/http/schemas/audit.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import type { VerifyAnswer } from '../../src/domain/key-verdict.js';
import { startKeyVerification, type KeyVerification } from '../../src/keys/setup.js';
import type { Database } from '../../src/store/database.js';
import { eachDriver, openMigratedDatabase, type TestDatabase } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { problemOf, type Answer, type Client } from '../support/http.js';
import { identities } from '../support/identities.js';
import { TEST_PEPPER, startServerOn, type StartedApp } from '../support/server.js';
import { DAY_MS, iso, START, TestClock } from '../support/time.js';

type CreatedKey = ApiKey & { key: string };

const NO_SUCH_TENANT = '7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11';
const NO_SUCH_KEY = '2b1c7e55-0d7a-4f0e-8d7e-5a1f3c9b8e42';
const API_KEY_FIELDS = [
  'created_at',
  'expires_at',
  'id',
  'last4',
  'last_used_at',
  'name',
  'prefix',
  'products',
  'revoked_at',
  'scopes',
  'tenant_id',
];
const USAGE_WRITE = /UPDATE api_keys SET last_used_at/;

/** The database with every query recorded, so a test can count the writes of one kind. */
function recorded(db: Database) {
  const queries: Array<{ text: string; params: readonly unknown[] }> = [];
  const wrapped: Database = {
    ...db,
    query: <Row,>(text: string, params: readonly unknown[] = []) => {
      queries.push({ text, params });
      return db.query<Row>(text, params);
    },
  };
  return { db: wrapped, queries };
}

eachDriver('API keys', (driver) => {
  let database: TestDatabase;
  let server: StartedApp;
  let keys: KeyVerification;
  let queries: Array<{ text: string; params: readonly unknown[] }>;
  let api: Client;
  let service: Client;
  const clock = new TestClock();

  beforeAll(async () => {
    database = await openMigratedDatabase(driver);
    const probe = recorded(database.db);
    queries = probe.queries;
    keys = await startKeyVerification(probe.db, { pepper: TEST_PEPPER, clock: clock.now, onError: () => {} });
    server = await startServerOn(database.db, { keys, clock: clock.now });
    api = server.api;
    service = await server.as(identities.service());
  });
  afterAll(async () => {
    await server.close();
    await keys.stop();
    await database.close();
  });
  beforeEach(() => clock.reset());

  const create = (body: Record<string, unknown>) => api.post<CreatedKey>('/v1/api-keys', { body });
  const createKey = async (tenantId: string, body: Record<string, unknown> = {}) => {
    const answer = await create({ tenant_id: tenantId, name: 'CI deploy', ...body });
    expect(answer.status, answer.text).toBe(201);
    return answer.body;
  };
  const list = (tenantId: string, query = '') => api.get<{ items: ApiKey[] }>(`/v1/api-keys?tenant_id=${tenantId}${query}`);
  const listed = async (tenantId: string, query = '') => {
    const answer = await list(tenantId, query);
    expect(answer.status).toBe(200);
    return answer.body.items;
  };
  const revoke = (id: string) => api.request('DELETE', `/v1/api-keys/${id}`);
  const rotate = (id: string, body: Record<string, unknown> = {}) => api.post<CreatedKey>(`/v1/api-keys/${id}/rotate`, { body });
  const verify = async (key: string, question: Record<string, string> = {}) => {
    const answer = await service.post<VerifyAnswer>('/v1/internal/api-keys/verify', { body: { key, ...question } });
    expect(answer.status, answer.text).toBe(200);
    return answer.body;
  };
  const events = async (tenantId: string, action: string) => {
    const answer = await api.get<{ items: AuditEvent[] }>(`/v1/audit?tenant_id=${tenantId}&action=${action}&limit=200`);
    expect(answer.status).toBe(200);
    return answer.body.items;
  };
  const expectProblem = (answer: Answer, status: number, code: string) => {
    expect(answer.status, answer.text).toBe(status);
    const problem = problemOf(answer);
    expect(problem.code).toBe(code);
    return problem;
  };
  const storedRow = async (id: string) => {
    const [row] = await database.db.query<Record<string, unknown>>('SELECT * FROM api_keys WHERE id = $1', [id]);
    expect(row).toBeDefined();
    return row!;
  };

  describe('POST /v1/api-keys', () => {
    let tenant: Tenant;
    beforeAll(async () => {
      tenant = await createTenant(api);
    });

    it('answers 201 with Location, the key object and its plaintext', async () => {
      clock.set(START + 5_000);
      const expiresAt = iso(START + 30 * DAY_MS);
      const answer = await create({
        tenant_id: tenant.id,
        name: '  Nightly export  ',
        scopes: ['documents:read', 'reports.export'],
        products: ['compliance', 'api'],
        expires_at: expiresAt,
      });
      expect(answer.status, answer.text).toBe(201);
      const body = answer.body;
      expect(answer.headers.get('location')).toBe(`/v1/api-keys/${body.id}`);
      expect(Object.keys(body).sort()).toEqual([...API_KEY_FIELDS, 'key'].sort());
      expect(body.key).toMatch(/^bp_[0-9A-Za-z]{39}$/);
      expect(body).toEqual({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/) as string,
        tenant_id: tenant.id,
        name: 'Nightly export',
        prefix: body.key.slice(0, 7),
        last4: body.key.slice(-4),
        scopes: ['documents:read', 'reports.export'],
        products: ['compliance', 'api'],
        created_at: iso(START + 5_000),
        expires_at: expiresAt,
        last_used_at: null,
        revoked_at: null,
        key: body.key,
      });
    });

    it('stores the HMAC of the key under the pepper, and the plaintext nowhere', async () => {
      const created = await createKey(tenant.id, { scopes: ['a:b'], products: ['risk'], expires_at: iso(START + 3_600_000) });
      const row = await storedRow(created.id);
      const expected = createHmac('sha256', TEST_PEPPER).update(created.key).digest();
      expect(Buffer.from(row.key_hash as Uint8Array).equals(expected)).toBe(true);
      expect(row).toMatchObject({
        prefix: created.key.slice(0, 7),
        last4: created.key.slice(-4),
        scopes: ['a:b'],
        products: ['risk'],
        tenant_id: tenant.id,
        revoked_at: null,
        rotated_to: null,
      });
      expect((row.expires_at as Date).toISOString()).toBe(iso(START + 3_600_000));

      // Every column as the database prints it, and every other table the create wrote to.
      const [text] = await database.db.query<{ row: string }>('SELECT row_to_json(k)::text AS row FROM api_keys k WHERE id = $1', [
        created.id,
      ]);
      const middle = created.key.slice(7, -4);
      expect(text!.row).not.toContain(middle);
      for (const table of ['audit_log', 'cache_invalidations', 'tenants']) {
        const rows = await database.db.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM ${table} t`);
        for (const { row: dumped } of rows) expect(dumped).not.toContain(middle);
      }
    });

    it('answers 404 unknown_product for a product the catalog lacks, and stores nothing', async () => {
      const before = (await listed(tenant.id)).length;
      const problem = expectProblem(await create({ tenant_id: tenant.id, name: 'x', products: ['api', 'teleport'] }), 404, 'unknown_product');
      expect(problem.detail).toContain('teleport');
      expect(await listed(tenant.id)).toHaveLength(before);
    });

    it('answers 400 naming /expires_at for an expiry now or in the past', async () => {
      for (const expiresAt of [iso(START - 1), iso(START), '2001-01-01T00:00:00Z']) {
        const problem = expectProblem(await create({ tenant_id: tenant.id, name: 'x', expires_at: expiresAt }), 400, 'validation_failed');
        expect(problem.errors).toEqual([{ path: '/expires_at', in: 'body', message: 'must be in the future' }]);
      }
      expect((await create({ tenant_id: tenant.id, name: 'x', expires_at: iso(START + 1) })).status).toBe(201);
    });

    it('answers 400 for a bad scope, naming it', async () => {
      for (const scope of ['Documents:Read', 'has space', '', ':leading', 'x'.repeat(65)]) {
        const problem = expectProblem(await create({ tenant_id: tenant.id, name: 'x', scopes: ['ok:scope', scope] }), 400, 'validation_failed');
        expect(problem.errors).toContainEqual(expect.objectContaining({ path: '/scopes/1', in: 'body' }));
      }
      expectProblem(await create({ tenant_id: tenant.id, name: 'x', scopes: ['a:b', 'a:b'] }), 400, 'validation_failed');
    });

    it('answers 400 naming /name without a usable name', async () => {
      for (const body of [{ tenant_id: tenant.id }, { tenant_id: tenant.id, name: '' }, { tenant_id: tenant.id, name: '   ' }]) {
        const problem = expectProblem(await create(body), 400, 'validation_failed');
        expect(problem.errors).toContainEqual(expect.objectContaining({ path: '/name', in: 'body' }));
      }
      expectProblem(await create({ tenant_id: tenant.id, name: 'x', key: generateApiKey() }), 400, 'validation_failed');
    });

    it('answers 404 not_found for a tenant that does not exist', async () => {
      const problem = expectProblem(await create({ tenant_id: NO_SUCH_TENANT, name: 'x' }), 404, 'not_found');
      expect(problem.detail).toBe('tenant not found');
    });

    it('writes api_key.created naming the key by id and display parts only', async () => {
      const created = await createKey(tenant.id, { name: 'Audited' });
      const [event] = (await events(tenant.id, 'api_key.created')).filter((e) => e.target?.id === created.id);
      expect(event).toMatchObject({
        action: 'api_key.created',
        crud: 'c',
        tenant_id: tenant.id,
        target: { id: created.id, type: 'api_key', name: `${created.prefix}…${created.last4}` },
        fields: { name: 'Audited' },
        actor: { id: 'operator-1', name: 'olga.operator' },
      });
      expect(JSON.stringify(event)).not.toContain(created.key.slice(7, -4));
    });
  });

  describe('GET /v1/api-keys', () => {
    it('lists newest first with exactly the documented fields, never a secret', async () => {
      const tenant = await createTenant(api);
      const other = await createTenant(api);
      const created: CreatedKey[] = [];
      for (let i = 0; i < 3; i += 1) {
        clock.set(START + i * 1_000);
        created.push(await createKey(tenant.id, { name: `key ${i}` }));
      }
      await createKey(other.id);
      const answer = await list(tenant.id);
      expect(answer.status).toBe(200);
      expect(answer.body.items.map((item) => item.id)).toEqual(created.map((key) => key.id).reverse());
      for (const item of answer.body.items) expect(Object.keys(item).sort()).toEqual(API_KEY_FIELDS);
      expect(answer.body.items).toEqual(created.map(({ key: _key, ...shown }) => shown).reverse());
      for (const { key } of created) expect(answer.text).not.toContain(key.slice(7, -4));
    });

    it('lists revoked keys only with include_revoked=true', async () => {
      const tenant = await createTenant(api);
      const kept = await createKey(tenant.id);
      clock.set(START + 1_000);
      const gone = await createKey(tenant.id);
      clock.set(START + 2_000);
      expect((await revoke(gone.id)).status).toBe(204);
      expect((await listed(tenant.id)).map((item) => item.id)).toEqual([kept.id]);
      expect((await listed(tenant.id, '&include_revoked=false')).map((item) => item.id)).toEqual([kept.id]);
      const all = await listed(tenant.id, '&include_revoked=true');
      expect(all.map((item) => item.id)).toEqual([gone.id, kept.id]);
      expect(all[0]!.revoked_at).toBe(iso(START + 2_000));
      expect(all[1]!.revoked_at).toBeNull();
    });

    it('answers 404 for an unknown tenant and 400 without a tenant_id', async () => {
      expectProblem(await list(NO_SUCH_TENANT), 404, 'not_found');
      expectProblem(await api.get('/v1/api-keys'), 400, 'validation_failed');
      expectProblem(await list(NO_SUCH_TENANT, '&include_revoked=maybe'), 400, 'validation_failed');
    });
  });

  describe('last_used_at', () => {
    it('is written by the usage recorder, not by verify: one statement per flush, one row per key', async () => {
      const tenant = await createTenant(api);
      const first = await createKey(tenant.id, { scopes: ['a:read'] });
      const second = await createKey(tenant.id);
      const writes = () => queries.filter((query) => USAGE_WRITE.test(query.text));
      await keys.usage.flush();
      const writesBefore = writes().length;

      for (const offset of [1_000, 2_000, 3_000]) {
        clock.set(START + offset);
        expect((await verify(first.key)).code).toBe('VALID');
      }
      clock.set(START + 4_000);
      expect((await verify(second.key)).code).toBe('VALID');
      // Refused verdicts are no use of the key.
      clock.set(START + 5_000);
      expect((await verify(first.key, { scope: 'a:write' })).code).toBe('INSUFFICIENT_SCOPE');
      expect((await verify(second.key, { product: 'risk' })).code).toBe('NOT_ENTITLED');

      expect((await listed(tenant.id)).map((item) => item.last_used_at)).toEqual([null, null]);
      expect(writes()).toHaveLength(writesBefore);

      await keys.usage.flush();
      const written = writes().slice(writesBefore);
      expect(written).toHaveLength(1);
      const ids = written[0]!.params[0] as string[];
      expect([...ids].sort()).toEqual([first.id, second.id].sort());
      const byId = new Map((await listed(tenant.id)).map((item) => [item.id, item.last_used_at]));
      expect(byId.get(first.id)).toBe(iso(START + 3_000));
      expect(byId.get(second.id)).toBe(iso(START + 4_000));

      await keys.usage.flush();
      expect(writes()).toHaveLength(writesBefore + 1);
    });

    it('never moves backwards, and its write evicts no cached key', async () => {
      const tenant = await createTenant(api);
      const created = await createKey(tenant.id);
      clock.set(START + 10_000);
      expect((await verify(created.key)).code).toBe('VALID');
      await keys.usage.flush();
      clock.set(START + 5_000);
      expect((await verify(created.key)).code).toBe('VALID');
      await keys.usage.flush();
      expect((await listed(tenant.id))[0]!.last_used_at).toBe(iso(START + 10_000));

      // The notifications of the creation have arrived (pg delivers them a little later), the
      // key is cached, and a use is pending; then the use is written. Had the write published an
      // invalidation, it would have arrived 150 ms later and the next verify would be a miss.
      await sleep(150);
      clock.set(START + 20_000);
      expect((await verify(created.key)).code).toBe('VALID');
      const misses = keys.verifier.cache.misses;
      await keys.usage.flush();
      await sleep(150);
      expect((await verify(created.key)).code).toBe('VALID');
      expect(keys.verifier.cache.misses).toBe(misses);
    });
  });

  describe('DELETE /v1/api-keys/:id', () => {
    // Verdicts right after a change with a warm cache are the subject of test/keys/invalidation.test.ts.
    it('answers 204, again 204, writes one api_key.revoked, and verify says REVOKED', async () => {
      const tenant = await createTenant(api);
      const created = await createKey(tenant.id, { name: 'Doomed' });

      clock.set(START + 60_000);
      const first = await revoke(created.id);
      expect(first.status).toBe(204);
      expect(first.text).toBe('');
      expect((await verify(created.key)).code).toBe('REVOKED');

      clock.set(START + 120_000);
      expect((await revoke(created.id)).status).toBe(204);
      const revoked = await events(tenant.id, 'api_key.revoked');
      expect(revoked).toHaveLength(1);
      expect(revoked[0]).toMatchObject({
        crud: 'd',
        target: { id: created.id, type: 'api_key', name: `${created.prefix}…${created.last4}` },
        fields: { name: 'Doomed' },
      });
      // The first revocation's time stands.
      expect((await listed(tenant.id, '&include_revoked=true'))[0]!.revoked_at).toBe(iso(START + 60_000));
    });

    it('answers 404 for an unknown key and 400 for an id that is not a UUID', async () => {
      expectProblem(await revoke(NO_SUCH_KEY), 404, 'not_found');
      const problem = expectProblem(await revoke('bp_not-a-uuid'), 400, 'validation_failed');
      expect(problem.errors).toContainEqual(expect.objectContaining({ path: '/id', in: 'params' }));
    });
  });

  describe('POST /v1/api-keys/:id/rotate', () => {
    it('answers 201 with a new key of the same name, scopes and products', async () => {
      const tenant = await createTenant(api);
      const old = await createKey(tenant.id, { name: 'Rolled', scopes: ['x:y'], products: ['api'] });
      clock.set(START + 1_000);
      const answer = await rotate(old.id, { grace_seconds: 60 });
      expect(answer.status, answer.text).toBe(201);
      const fresh = answer.body;
      expect(answer.headers.get('location')).toBe(`/v1/api-keys/${fresh.id}`);
      expect(Object.keys(fresh).sort()).toEqual([...API_KEY_FIELDS, 'key'].sort());
      expect(fresh).toMatchObject({
        tenant_id: tenant.id,
        name: 'Rolled',
        scopes: ['x:y'],
        products: ['api'],
        created_at: iso(START + 1_000),
        revoked_at: null,
        last_used_at: null,
        prefix: fresh.key.slice(0, 7),
        last4: fresh.key.slice(-4),
      });
      expect(fresh.id).not.toBe(old.id);
      expect(fresh.key).not.toBe(old.key);
      expect(fresh.key).toMatch(/^bp_[0-9A-Za-z]{39}$/);
      expect((await storedRow(old.id)).rotated_to).toBe(fresh.id);
      expect((await verify(fresh.key)).code).toBe('VALID');

      const [event] = await events(tenant.id, 'api_key.rotated');
      expect(event).toMatchObject({
        crud: 'c',
        target: { id: fresh.id, type: 'api_key', name: `${fresh.prefix}…${fresh.last4}` },
        fields: { name: 'Rolled', replaces: old.id, grace_seconds: '60' },
      });
    });

    it('with grace_seconds=0, or none given, ends the old key at once', async () => {
      const tenant = await createTenant(api);
      for (const body of [{ grace_seconds: 0 }, {}]) {
        const old = await createKey(tenant.id);
        const answer = await rotate(old.id, body);
        expect(answer.status, answer.text).toBe(201);
        expect((await verify(old.key)).code).toBe('EXPIRED');
        expect((await verify(answer.body.key)).code).toBe('VALID');
      }
    });

    it('with grace_seconds=3600 keeps the old key VALID until the grace has passed', async () => {
      const tenant = await createTenant(api);
      const old = await createKey(tenant.id);
      expect((await rotate(old.id, { grace_seconds: 3600 })).status).toBe(201);
      expect((await verify(old.key)).code).toBe('VALID');
      clock.set(START + 3_599_999);
      expect((await verify(old.key)).code).toBe('VALID');
      clock.set(START + 3_600_000);
      const expired = await verify(old.key);
      expect(expired).toMatchObject({ valid: false, code: 'EXPIRED', expires_at: iso(START + 3_600_000) });
      const shown = (await listed(tenant.id)).find((item) => item.id === old.id);
      expect(shown?.expires_at).toBe(iso(START + 3_600_000));
    });

    it("never extends the old key past its own expires_at", async () => {
      const tenant = await createTenant(api);
      const old = await createKey(tenant.id, { expires_at: iso(START + 600_000) });
      expect((await rotate(old.id, { grace_seconds: 3600 })).status).toBe(201);
      expect((await storedRow(old.id)).expires_at).toEqual(new Date(START + 600_000));
      clock.set(START + 599_999);
      expect((await verify(old.key)).code).toBe('VALID');
      clock.set(START + 600_000);
      expect((await verify(old.key)).code).toBe('EXPIRED');
    });

    it('answers 400 for a grace over 7 days, negative or fractional, and takes exactly 7 days', async () => {
      const tenant = await createTenant(api);
      const old = await createKey(tenant.id);
      for (const grace of [604_801, -1, 1.5, '60']) {
        const problem = expectProblem(await rotate(old.id, { grace_seconds: grace }), 400, 'validation_failed');
        expect(problem.errors).toContainEqual(expect.objectContaining({ path: '/grace_seconds', in: 'body' }));
      }
      expectProblem(await rotate(old.id, { grace_seconds: 60, extra: true }), 400, 'validation_failed');
      // Nothing was rotated by the refused calls.
      expect(await listed(tenant.id)).toHaveLength(1);
      expect((await rotate(old.id, { grace_seconds: 604_800 })).status).toBe(201);
      expect((await storedRow(old.id)).expires_at).toEqual(new Date(START + 604_800_000));
    });

    it('answers 409 key_revoked for a revoked key and 409 key_expired for an expired one', async () => {
      const tenant = await createTenant(api);
      const revoked = await createKey(tenant.id);
      expect((await revoke(revoked.id)).status).toBe(204);
      const problem = expectProblem(await rotate(revoked.id), 409, 'key_revoked');
      expect(problem.key).toBeUndefined();

      const expiring = await createKey(tenant.id, { expires_at: iso(START + 60_000) });
      clock.set(START + 60_000);
      expectProblem(await rotate(expiring.id), 409, 'key_expired');
      expect((await listed(tenant.id)).map((item) => item.id)).toEqual([expiring.id]);
      expect(await events(tenant.id, 'api_key.rotated')).toEqual([]);
    });

    it('answers 409 key_rotated for a key in its rotation grace, naming the successor, writing nothing', async () => {
      const tenant = await createTenant(api);
      const old = await createKey(tenant.id, { name: 'Rolled' });
      const first = await rotate(old.id, { grace_seconds: 3600 });
      expect(first.status).toBe(201);
      const stored = await storedRow(old.id);
      const keysBefore = await listed(tenant.id, '&include_revoked=true');
      const eventsBefore = await events(tenant.id, 'api_key.*');

      clock.set(START + 60_000);
      for (const body of [{ grace_seconds: 3600 }, {}, { grace_seconds: 0 }]) {
        const problem = expectProblem(await rotate(old.id, body), 409, 'key_rotated');
        expect(problem.rotated_to).toBe(first.body.id);
        expect(problem.detail).toMatch(/successor/);
        expect(problem.key).toBeUndefined();
      }
      // An IT admin of the tenant is refused the same way.
      const itAdmin = await server.as(identities.itAdmin(tenant.id));
      expectProblem(await itAdmin.post(`/v1/api-keys/${old.id}/rotate`, { body: {} }), 409, 'key_rotated');

      expect(await storedRow(old.id)).toEqual(stored);
      expect(await listed(tenant.id, '&include_revoked=true')).toEqual(keysBefore);
      expect(await events(tenant.id, 'api_key.*')).toEqual(eventsBefore);
      // Both keys keep answering as the one rotation left them.
      expect((await verify(old.key)).code).toBe('VALID');
      expect((await verify(first.body.key)).code).toBe('VALID');

      // The successor is what rotates next, and the chain goes on from there.
      const second = await rotate(first.body.id, { grace_seconds: 60 });
      expect(second.status).toBe(201);
      expect((await storedRow(first.body.id)).rotated_to).toBe(second.body.id);
      expect((await storedRow(old.id)).rotated_to).toBe(first.body.id);
    });

    it('answers key_rotated, not key_expired, for a rotated key whose grace has ended', async () => {
      const tenant = await createTenant(api);
      const old = await createKey(tenant.id);
      const fresh = await rotate(old.id);
      expect(fresh.status).toBe(201);
      expect((await verify(old.key)).code).toBe('EXPIRED');
      expect(problemOf(await rotate(old.id))).toMatchObject({ code: 'key_rotated', rotated_to: fresh.body.id });
      expect(await listed(tenant.id)).toHaveLength(2);
    });

    it('rotates once of ten concurrent rotations of one key', async () => {
      const tenant = await createTenant(api);
      const old = await createKey(tenant.id);
      const answers = await Promise.all(Array.from({ length: 10 }, () => rotate(old.id, { grace_seconds: 600 })));
      expect(answers.map((answer) => answer.status).sort()).toEqual([201, ...Array.from({ length: 9 }, () => 409)]);
      const winner = answers.find((answer) => answer.status === 201)!;
      for (const answer of answers.filter((a) => a.status === 409)) {
        expect(problemOf(answer)).toMatchObject({ code: 'key_rotated', rotated_to: winner.body.id });
      }
      expect(await listed(tenant.id)).toHaveLength(2);
      expect(await events(tenant.id, 'api_key.rotated')).toHaveLength(1);
    });

    it('answers 404 for an unknown key', async () => {
      expectProblem(await rotate(NO_SUCH_KEY), 404, 'not_found');
    });
  });

  it('never shows a plaintext again: not in lists, other rotations, audit events or errors', async () => {
    const tenant = await createTenant(api);
    const first = await createKey(tenant.id, { scopes: ['a:b'] });
    const second = await createKey(tenant.id);
    const rotated = await rotate(second.id, { grace_seconds: 10 });
    expect(rotated.status).toBe(201);
    const secrets = [first.key, second.key];
    const afterwards: Answer[] = [
      await list(tenant.id),
      await list(tenant.id, '&include_revoked=true'),
      await revoke(second.id),
      await rotate(second.id),
      await rotate(first.id, { grace_seconds: 10_000_000 }),
      await create({ tenant_id: tenant.id, name: 'x', products: ['nope'] }),
      await api.get(`/v1/audit?tenant_id=${tenant.id}&limit=200`),
    ];
    // The export is NDJSON, which the JSON client of the harness cannot parse as one document.
    const exported = await fetch(new URL(`/v1/audit/export?tenant_id=${tenant.id}`, server.url), {
      headers: { authorization: `Bearer ${api.token}` },
    });
    expect(exported.status).toBe(200);
    const exportText = await exported.text();
    expect(exportText).toContain('api_key.rotated');
    // The rotation answer carries only its own new key.
    expect(rotated.text).not.toContain(second.key);
    expect(rotated.text).not.toContain(first.key);
    secrets.push(rotated.body.key);
    for (const text of [...afterwards.map((answer) => answer.text), exportText]) {
      for (const secret of secrets) expect(text).not.toContain(secret.slice(7, -4));
    }
  });
});
