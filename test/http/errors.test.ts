import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../src/store/database.js';
import { eachDriver, openMigratedDatabase, type TestDatabase } from '../support/drivers.js';
import { randomSlug } from '../support/factories.js';
import { problemOf, type Client } from '../support/http.js';
import { startServer, startServerOn, type TestServer } from '../support/server.js';

const PROBLEM_KEYS = ['code', 'detail', 'request_id', 'status', 'title', 'type'];

eachDriver('errors and conventions', (driver) => {
  let server: TestServer;
  let api: Client;
  beforeAll(async () => {
    server = await startServer(driver);
    api = server.api;
  });
  afterAll(() => server.close());

  it('answers an unknown route 404 route_not_found as problem+json with every member', async () => {
    const answer = await api.get('/v1/nothing-here');
    expect(answer.status).toBe(404);
    const problem = problemOf(answer);
    expect(Object.keys(problem).sort()).toEqual(PROBLEM_KEYS);
    expect(problem).toMatchObject({
      type: 'urn:tenant-registry:problem:route_not_found',
      status: 404,
      code: 'route_not_found',
      request_id: answer.headers.get('x-request-id'),
    });
  });

  it('answers a known path with the wrong method 405 with Allow', async () => {
    const answer = await api.request('DELETE', '/v1/tenants/7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11');
    expect(answer.status).toBe(405);
    expect(problemOf(answer).code).toBe('method_not_allowed');
    expect(answer.headers.get('allow')).toBe('GET, HEAD, PATCH');
    const onCollection = await api.request('PUT', '/v1/tenants');
    expect(onCollection.status).toBe(405);
    expect(onCollection.headers.get('allow')).toBe('GET, HEAD, POST');
  });

  it('does not echo a mistyped path, which may carry a secret', async () => {
    const answer = await api.get('/v1/tenantz/bp_SuperSecretKeyMaterial');
    expect(answer.status).toBe(404);
    expect(answer.text).not.toContain('SuperSecret');
  });

  it('answers malformed JSON 400 malformed_json', async () => {
    for (const raw of ['{"slug": ', '[1,2', '{"a":1}}']) {
      const answer = await api.post('/v1/tenants', { raw, headers: { 'content-type': 'application/json' } });
      expect(answer.status).toBe(400);
      expect(problemOf(answer).code).toBe('malformed_json');
    }
  });

  it('refuses prototype-poisoning JSON', async () => {
    const answer = await api.post('/v1/tenants', {
      raw: `{"slug":"${randomSlug()}","name":"X","__proto__":{"admin":true}}`,
      headers: { 'content-type': 'application/json' },
    });
    expect(answer.status).toBe(400);
    expect(problemOf(answer).code).toBe('malformed_json');
  });

  it('answers a non-JSON body 415 unsupported_media_type', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
      const answer = await api.post('/v1/tenants', { raw: 'slug=acme', headers: { 'content-type': type } });
      expect(answer.status).toBe(415);
      expect(problemOf(answer).code).toBe('unsupported_media_type');
    }
  });

  it('answers a body over the limit 413 payload_too_large', async () => {
    const answer = await api.post('/v1/tenants', { body: { slug: randomSlug(), name: 'x'.repeat(70 * 1024) } });
    expect(answer.status).toBe(413);
    expect(problemOf(answer).code).toBe('payload_too_large');
  });

  it('answers a POST without a body 400 validation_failed', async () => {
    const answer = await api.post('/v1/tenants');
    expect(answer.status).toBe(400);
    expect(problemOf(answer).code).toBe('validation_failed');
  });

  it('echoes a sane X-Request-Id, in the header and in problem bodies', async () => {
    const answer = await api.get('/v1/tenants/by-slug/missing-tenant', { headers: { 'x-request-id': 'portal-42.a:b' } });
    expect(answer.headers.get('x-request-id')).toBe('portal-42.a:b');
    expect(problemOf(answer).request_id).toBe('portal-42.a:b');
    expect((await api.get('/healthz', { headers: { 'x-request-id': 'abc' } })).headers.get('x-request-id')).toBe('abc');
  });

  it('replaces an insane X-Request-Id with a generated one', async () => {
    for (const given of ['x'.repeat(200), 'has space', '<script>']) {
      const answer = await api.get('/healthz', { headers: { 'x-request-id': given } });
      const id = answer.headers.get('x-request-id');
      expect(id).not.toBe(given);
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
    }
  });
});

describe('an unexpected failure', () => {
  let database: TestDatabase;
  let api: Client;
  let closeApp: () => Promise<void>;
  beforeAll(async () => {
    database = await openMigratedDatabase('pglite');
    // The real database, with one fault injected: every query fails with internals in the message.
    const faulty: Database = {
      ...database.db,
      query: () => Promise.reject(new Error('relation "secret_table" at /srv/app/src/store.ts:42 exploded')),
    };
    const started = await startServerOn(faulty);
    api = started.api;
    closeApp = () => started.close();
  });
  afterAll(async () => {
    await closeApp();
    await database.close();
  });

  it('answers 500 internal_error without internals', async () => {
    const answer = await api.get('/v1/tenants/by-slug/acme');
    expect(answer.status).toBe(500);
    const problem = problemOf(answer);
    expect(problem.code).toBe('internal_error');
    expect(answer.text).not.toMatch(/secret_table|\/srv\/app|store\.ts|stack/);
  });
});
