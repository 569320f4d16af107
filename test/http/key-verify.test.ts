// POST /v1/internal/api-keys/verify: every verdict, always 200; bad bodies 400; MALFORMED and
// cached answers without the database. The server runs on a database that the test can break,
// so "no database work" is proven by the answers a broken database still gets.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/domain/api-key.js';
import type { ApiKey } from '../../src/http/schemas/api-key.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import type { VerifyAnswer } from '../../src/domain/key-verdict.js';
import type { Database, Queryable } from '../../src/store/database.js';
import { openPg } from '../../src/store/pg-driver.js';
import { openPglite } from '../../src/store/pglite-driver.js';
import { eachDriver, openMigratedDatabase, type TestDatabase } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { problemOf, type Answer, type Client } from '../support/http.js';
import { identities } from '../support/identities.js';
import { hearingNotifications, type HearingDatabase } from '../support/notifications.js';
import { startServerOn, type StartedApp } from '../support/server.js';
import { DAY_MS, iso, START, TestClock } from '../support/time.js';

type CreatedKey = ApiKey & { key: string };

const VERIFY = '/v1/internal/api-keys/verify';
const ANSWER_FIELDS = ['code', 'expires_at', 'key_id', 'plan', 'products', 'scopes', 'slug', 'tenant_id', 'tenant_status', 'valid', 'valid_until'];

/** The database, with a switch that makes every query fail as an unreachable server would. */
function breakable(db: Database) {
  const state = { broken: false, queries: 0 };
  const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
  const wrapped: Database = {
    ...db,
    query: <Row,>(text: string, params?: readonly unknown[]) => {
      state.queries += 1;
      return state.broken ? Promise.reject(refused()) : db.query<Row>(text, params);
    },
    transaction: <T,>(fn: (tx: Queryable) => Promise<T>) => {
      state.queries += 1;
      return state.broken ? Promise.reject(refused()) : db.transaction(fn);
    },
  };
  return { db: wrapped, state };
}

/** A one-character change that breaks the checksum (and so the key). */
const mistyped = (key: string) => key.slice(0, 20) + (key[20] === 'a' ? 'b' : 'a') + key.slice(21);

eachDriver('key verification', (driver) => {
  let database: TestDatabase;
  let faults: ReturnType<typeof breakable>['state'];
  let server: StartedApp;
  let api: Client;
  let service: Client;
  let hearing: HearingDatabase;
  /**
   * With pg, the notifications of changes reach the cache some milliseconds after the change has
   * answered. A test that warms the cache and then relies on it waits for them first, so that a
   * late one cannot evict what it warmed. (How soon changes must be seen is test/keys/invalidation.test.ts.)
   * Until the server has heard them, not for a fixed 150 ms: a busy machine can deliver one later than that.
   */
  const notificationsArrive = () => hearing.arrived();
  const clock = new TestClock();

  beforeAll(async () => {
    database = await openMigratedDatabase(driver);
    hearing = hearingNotifications(database.db);
    const wrapped = breakable(hearing.db);
    faults = wrapped.state;
    server = await startServerOn(wrapped.db, { clock: clock.now });
    api = server.api;
    service = await server.as(identities.service());
  });
  afterAll(async () => {
    await server.close();
    await database.close();
  });
  beforeEach(() => {
    clock.reset();
    faults.broken = false;
  });

  const createKey = async (tenantId: string, body: Record<string, unknown> = {}) => {
    const answer = await api.post<CreatedKey>('/v1/api-keys', { body: { tenant_id: tenantId, name: 'verify test', ...body } });
    expect(answer.status, answer.text).toBe(201);
    return answer.body;
  };
  const post = (body: unknown) => service.post(VERIFY, { body });
  const verify = async (key: string, question: { product?: string; scope?: string } = {}) => {
    const answer = await post({ key, ...question });
    expect(answer.status, answer.text).toBe(200);
    return answer.body as unknown as VerifyAnswer;
  };
  const ok = async (path: string, method = 'POST', body: unknown = {}) => {
    const answer = await api.request(method, path, { body });
    expect(answer.status, answer.text).toBeLessThan(300);
  };
  const grant = (tenantId: string, product: string) => ok(`/v1/entitlements/${tenantId}/${product}`, 'PUT');
  const expectBadRequest = (answer: Answer, path: string) => {
    expect(answer.status, answer.text).toBe(400);
    const problem = problemOf(answer);
    expect(problem.code).toBe('validation_failed');
    expect(problem.errors).toContainEqual(expect.objectContaining({ path, in: 'body' }));
  };
  /** Runs fn with every query failing, then mends the database whatever happened. */
  const withBrokenDatabase = async (fn: () => Promise<void>) => {
    faults.broken = true;
    try {
      await fn();
    } finally {
      faults.broken = false;
    }
  };

  describe('verdicts', () => {
    let tenant: Tenant;
    beforeAll(async () => {
      tenant = await createTenant(api, { plan: 'business' });
      await grant(tenant.id, 'compliance');
    });

    it('VALID: the key, its tenant and its limits', async () => {
      const expiresAt = iso(START + 30 * DAY_MS);
      const created = await createKey(tenant.id, { scopes: ['documents:read'], products: ['compliance'], expires_at: expiresAt });
      const answer = await verify(created.key, { product: 'compliance', scope: 'documents:read' });
      expect(answer).toEqual({
        valid: true,
        code: 'VALID',
        key_id: created.id,
        tenant_id: tenant.id,
        slug: tenant.slug,
        tenant_status: 'trial',
        plan: 'business',
        scopes: ['documents:read'],
        products: ['compliance'],
        expires_at: expiresAt,
        // The tenant's trial ends before the key expires.
        valid_until: iso(START + 14 * DAY_MS),
      });
      expect(Object.keys(answer).sort()).toEqual(ANSWER_FIELDS);
      expect(await verify(created.key)).toEqual(answer);
    });

    it('VALID without an expiry answers expires_at null, and a plan-less tenant plan null', async () => {
      const planless = await createTenant(api);
      const created = await createKey(planless.id);
      expect(await verify(created.key)).toMatchObject({ valid: true, code: 'VALID', expires_at: null, plan: null, scopes: [], products: [] });
    });

    it('MALFORMED: anything that is not a well-formed key, with nothing else in the answer', async () => {
      const key = (await createKey(tenant.id)).key;
      const malformed = ['', 'hello', mistyped(key), key.slice(0, -1), `${key} `, `BP_${key.slice(3)}`, key.replace('bp_', 'bp-'), 'x'.repeat(200)];
      for (const text of malformed) {
        expect(await verify(text), JSON.stringify(text)).toEqual({ valid: false, code: 'MALFORMED' });
      }
    });

    it('NOT_FOUND: a well-formed key nobody issued', async () => {
      expect(await verify(generateApiKey())).toEqual({ valid: false, code: 'NOT_FOUND' });
    });

    it('REVOKED, still naming the key and its tenant', async () => {
      const created = await createKey(tenant.id, { expires_at: iso(START + 60_000) });
      await ok(`/v1/api-keys/${created.id}`, 'DELETE', undefined);
      expect(await verify(created.key, { product: 'compliance' })).toMatchObject({
        valid: false,
        code: 'REVOKED',
        key_id: created.id,
        tenant_id: tenant.id,
      });
      // Revoked goes before expired.
      clock.set(START + 120_000);
      expect((await verify(created.key)).code).toBe('REVOKED');
    });

    it('EXPIRED from the moment of expires_at, computed at each request from cached facts', async () => {
      const created = await createKey(tenant.id, { expires_at: iso(START + 60_000) });
      await notificationsArrive();
      expect((await verify(created.key)).code).toBe('VALID');
      await withBrokenDatabase(async () => {
        clock.set(START + 59_999);
        expect((await verify(created.key)).code).toBe('VALID');
        clock.set(START + 60_000);
        expect(await verify(created.key)).toMatchObject({ valid: false, code: 'EXPIRED', key_id: created.id, expires_at: iso(START + 60_000) });
      });
    });

    it('TENANT_INACTIVE once the tenant is cancelled, before any product or scope question', async () => {
      const own = await createTenant(api);
      const created = await createKey(own.id, { scopes: ['a:b'] });
      await grant(own.id, 'risk');
      await ok(`/v1/tenants/${own.id}/cancel`);
      expect(await verify(created.key)).toMatchObject({ valid: false, code: 'TENANT_INACTIVE', tenant_status: 'frozen' });
      expect((await verify(created.key, { product: 'risk', scope: 'x:y' })).code).toBe('TENANT_INACTIVE');
      await ok(`/v1/tenants/${own.id}/activate`);
      await notificationsArrive();
      expect(await verify(created.key, { product: 'risk', scope: 'a:b' })).toMatchObject({ valid: true, tenant_status: 'active' });
    });

    it('NOT_ENTITLED for a product the tenant lacks, or one outside the key products', async () => {
      const own = await createTenant(api);
      await grant(own.id, 'risk');
      await grant(own.id, 'compliance');
      const anyProduct = await createKey(own.id);
      const limited = await createKey(own.id, { products: ['compliance'] });
      expect((await verify(anyProduct.key, { product: 'risk' })).code).toBe('VALID');
      expect((await verify(anyProduct.key, { product: 'training' })).code).toBe('NOT_ENTITLED');
      expect((await verify(anyProduct.key, { product: 'teleport' })).code).toBe('NOT_ENTITLED');
      expect((await verify(limited.key, { product: 'compliance' })).code).toBe('VALID');
      expect(await verify(limited.key, { product: 'risk' })).toMatchObject({ valid: false, code: 'NOT_ENTITLED', products: ['compliance'] });
      // A key limited to a product the tenant does not have is no use for it either.
      const unentitled = await createKey(own.id, { products: ['training'] });
      expect((await verify(unentitled.key, { product: 'training' })).code).toBe('NOT_ENTITLED');
      expect((await verify(unentitled.key)).code).toBe('VALID');
    });

    it('NOT_ENTITLED once a trial has ended, at read time, with no change in the database', async () => {
      const own = await createTenant(api);
      await ok(`/v1/tenants/${own.id}/activate`);
      const trial = await api.post('/v1/catalog/trial-request', { body: { tenant_id: own.id, product: 'compliance' } });
      expect(trial.status, trial.text).toBe(201);
      const created = await createKey(own.id);
      await notificationsArrive();
      expect((await verify(created.key, { product: 'compliance' })).code).toBe('VALID');
      await withBrokenDatabase(async () => {
        clock.set(START + 14 * DAY_MS - 1);
        expect((await verify(created.key, { product: 'compliance' })).code).toBe('VALID');
        clock.set(START + 14 * DAY_MS);
        expect((await verify(created.key, { product: 'compliance' })).code).toBe('NOT_ENTITLED');
        expect((await verify(created.key)).code).toBe('VALID');
      });
    });

    it('valid_until: the earliest of the expiry, the tenant trial end and the trial end of the product asked about', async () => {
      const own = await createTenant(api);
      await ok(`/v1/tenants/${own.id}/activate`);
      await grant(own.id, 'risk');
      const trial = await api.post('/v1/catalog/trial-request', { body: { tenant_id: own.id, product: 'compliance' } });
      expect(trial.status, trial.text).toBe(201);
      const lasting = await createKey(own.id);
      const expiring = await createKey(own.id, { expires_at: iso(START + 7 * DAY_MS) });
      await notificationsArrive();
      // An active tenant, a granted product, a key without expiry: time alone changes nothing.
      expect(await verify(lasting.key)).toMatchObject({ code: 'VALID', valid_until: null });
      expect(await verify(lasting.key, { product: 'risk' })).toMatchObject({ code: 'VALID', valid_until: null });
      // The product in its trial: the answer about it holds until the trial ends.
      expect(await verify(lasting.key, { product: 'compliance' })).toMatchObject({ code: 'VALID', valid_until: iso(START + 14 * DAY_MS) });
      expect(await verify(expiring.key, { product: 'compliance' })).toMatchObject({ code: 'VALID', valid_until: iso(START + 7 * DAY_MS) });
      expect(await verify(expiring.key, { product: 'risk' })).toMatchObject({ valid_until: iso(START + 7 * DAY_MS) });
      // Past the trial's end the refusal stays a refusal: nothing is left to change but the expiry.
      clock.set(START + 14 * DAY_MS);
      expect(await verify(lasting.key, { product: 'compliance' })).toMatchObject({ code: 'NOT_ENTITLED', valid_until: null });
      // A tenant still in its trial: its end counts for every question.
      clock.reset();
      const trialTenant = await createTenant(api);
      const inTrial = await createKey(trialTenant.id);
      await notificationsArrive();
      expect(await verify(inTrial.key)).toMatchObject({ code: 'VALID', tenant_status: 'trial', valid_until: iso(START + 14 * DAY_MS) });
    });

    it('INSUFFICIENT_SCOPE for a scope the key lacks, after the product check', async () => {
      const scoped = await createKey(tenant.id, { scopes: ['documents:read', 'reports:read'] });
      const bare = await createKey(tenant.id);
      expect((await verify(scoped.key, { scope: 'reports:read' })).code).toBe('VALID');
      expect(await verify(scoped.key, { scope: 'documents:write' })).toMatchObject({
        valid: false,
        code: 'INSUFFICIENT_SCOPE',
        scopes: ['documents:read', 'reports:read'],
      });
      expect((await verify(bare.key, { scope: 'documents:read' })).code).toBe('INSUFFICIENT_SCOPE');
      expect((await verify(scoped.key, { product: 'training', scope: 'documents:write' })).code).toBe('NOT_ENTITLED');
      expect((await verify(scoped.key, { product: 'compliance', scope: 'documents:read' })).code).toBe('VALID');
    });
  });

  describe('bad requests', () => {
    it('answers 400 naming the field for a missing key, an extra field or a bad product or scope', async () => {
      const key = generateApiKey();
      expectBadRequest(await post({}), '/key');
      expectBadRequest(await post({ product: 'api' }), '/key');
      expectBadRequest(await post({ key, extra: 1 }), '/extra');
      expectBadRequest(await post({ key: 42 }), '/key');
      expectBadRequest(await post({ key: null }), '/key');
      expectBadRequest(await post({ key, product: 'Not A Product' }), '/product');
      expectBadRequest(await post({ key, scope: 'UPPER' }), '/scope');
      expectBadRequest(await post([key]), '/');
    });

    it('answers 400 for a key over 200 characters, and a verdict at 200', async () => {
      expectBadRequest(await post({ key: 'x'.repeat(201) }), '/key');
      expectBadRequest(await post({ key: generateApiKey().repeat(5) }), '/key');
      expect(await verify('x'.repeat(200))).toEqual({ valid: false, code: 'MALFORMED' });
    });

    it('answers 400 without a body or with one that is not JSON, 415 for another media type', async () => {
      const empty = await service.post(VERIFY);
      expect(empty.status).toBe(400);
      expect(problemOf(empty).code).toBe('validation_failed');
      const notJson = await service.post(VERIFY, { raw: '{"key": ', headers: { 'content-type': 'application/json' } });
      expect(notJson.status).toBe(400);
      expect(problemOf(notJson).code).toBe('malformed_json');
      const text = await service.post(VERIFY, { raw: generateApiKey(), headers: { 'content-type': 'text/plain' } });
      expect(text.status).toBe(415);
    });
  });

  describe('without the database', () => {
    it('answers MALFORMED without asking the database, which answers 503 to a well-formed key', async () => {
      const key = generateApiKey();
      await withBrokenDatabase(async () => {
        const queries = faults.queries;
        for (const text of ['nope', mistyped(key), key.slice(0, -1)]) {
          expect(await verify(text)).toEqual({ valid: false, code: 'MALFORMED' });
        }
        expect(faults.queries).toBe(queries);
        const unavailable = await post({ key: generateApiKey() });
        expect(unavailable.status).toBe(503);
        expect(problemOf(unavailable).code).toBe('unavailable');
      });
    });

    it('answers a hot key from the cache alone: no query, even with the database down', async () => {
      const tenant = await createTenant(api);
      const created = await createKey(tenant.id, { scopes: ['a:b'] });
      await notificationsArrive();
      const first = await verify(created.key, { scope: 'a:b' });
      expect(first.code).toBe('VALID');
      await withBrokenDatabase(async () => {
        const queries = faults.queries;
        for (let i = 0; i < 5; i += 1) expect(await verify(created.key, { scope: 'a:b' })).toEqual(first);
        expect((await verify(created.key, { scope: 'c:d' })).code).toBe('INSUFFICIENT_SCOPE');
        expect(faults.queries).toBe(queries);
        // The database really is down: a key not yet cached cannot be answered.
        expect((await post({ key: generateApiKey() })).status).toBe(503);
      });
    });

    it('caches unknown keys too: a retried wrong key costs no query', async () => {
      const unknown = generateApiKey();
      // Any invalidation arriving while the answer is loaded keeps it out of the cache.
      await notificationsArrive();
      expect((await verify(unknown)).code).toBe('NOT_FOUND');
      await withBrokenDatabase(async () => {
        const queries = faults.queries;
        for (let i = 0; i < 5; i += 1) expect(await verify(unknown)).toEqual({ valid: false, code: 'NOT_FOUND' });
        expect(faults.queries).toBe(queries);
        expect((await post({ key: generateApiKey() })).status).toBe(503);
      });
    });
  });

  describe('with the database really gone', () => {
    let gone: StartedApp;
    let caller: Client;
    let closeDatabase: () => Promise<void>;
    beforeAll(async () => {
      if (driver === 'pglite') {
        const db = await openPglite({ dataDir: null });
        // Closed under the running server; stopping its listener afterwards must not throw.
        const quiet: Database = {
          ...db,
          listen: async (channel, onMessage, onState) => {
            const stop = await db.listen(channel, onMessage, onState);
            return () => stop().catch(() => {});
          },
        };
        gone = await startServerOn(quiet, { clock: clock.now });
        await db.close();
        closeDatabase = () => Promise.resolve();
      } else {
        // Nothing listens on port 1: every connection is refused.
        const db = openPg({ url: 'postgres://postgres@127.0.0.1:1/nothing', poolSize: 1 });
        gone = await startServerOn(db, { clock: clock.now });
        closeDatabase = () => db.close();
      }
      caller = await gone.as(identities.service());
    });
    afterAll(async () => {
      await gone.close();
      await closeDatabase();
    });

    it('still answers MALFORMED with 200, and 503 for a well-formed key', async () => {
      for (const text of ['', 'bp_short', mistyped(generateApiKey())]) {
        const answer = await caller.post<VerifyAnswer>(VERIFY, { body: { key: text } });
        expect(answer.status).toBe(200);
        expect(answer.body).toEqual({ valid: false, code: 'MALFORMED' });
      }
      const unavailable = await caller.post(VERIFY, { body: { key: generateApiKey() } });
      expect(unavailable.status).toBe(503);
      expect(problemOf(unavailable).code).toBe('unavailable');
    });
  });
});
