// The Fastify plugin and the Express/Connect middleware in front of real routes, verifying
// against a real registry: where the key is read from, what a refusal answers (problem+json,
// 401 for the key, 403 for its reach, 503 without the registry), and what a handler sees.
import type { AddressInfo } from 'node:net';
import express from 'express';
import fc from 'fast-check';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../../src/domain/api-key.js';
import type { Tenant } from '../../../src/http/schemas/tenant.js';
import { createTenant } from '../../../test/support/factories.js';
import { call, type Client } from '../../../test/support/http.js';
import type { TestServer } from '../../../test/support/server.js';
import { apiKeyMiddleware, type RequestWithApiKey } from '../src/connect.js';
import { apiKeyPlugin } from '../src/fastify.js';
import { createKeyVerifier, keyFromHeaders, type Answer, type KeyVerifier } from '../src/index.js';
import { VERIFIER_HEARTBEAT_MS, createKey, ok, startRegistry, type CreatedKey } from './support.js';

let server: TestServer;
let api: Client;
let token: string;
let tenant: Tenant;
let verifier: KeyVerifier;
let valid: CreatedKey;

beforeAll(async () => {
  ({ server, api, token } = await startRegistry());
  tenant = await createTenant(api);
  await ok(api, 'PUT', `/v1/entitlements/${tenant.id}/compliance`);
  valid = await createKey(api, tenant.id, { scopes: ['documents:read'] });
  verifier = createKeyVerifier({ registryUrl: server.url, token, heartbeatMs: VERIFIER_HEARTBEAT_MS, product: 'compliance' });
  await verifier.whenLive();
});
afterAll(async () => {
  await verifier.close();
  await server.close();
});

describe('keyFromHeaders', () => {
  it('reads Authorization: Bearer first, then X-API-Key, and nothing else', () => {
    expect(keyFromHeaders({ authorization: 'Bearer bp_abc' })).toBe('bp_abc');
    expect(keyFromHeaders({ authorization: 'bearer   bp_abc ' })).toBe('bp_abc');
    expect(keyFromHeaders({ authorization: 'Bearer bp_a', 'x-api-key': 'bp_b' })).toBe('bp_a');
    expect(keyFromHeaders({ 'x-api-key': ' bp_b ' })).toBe('bp_b');
    expect(keyFromHeaders({ 'x-api-key': ['bp_c', 'bp_d'] })).toBe('bp_c');
    expect(keyFromHeaders({ authorization: 'Basic dXNlcjpwYXNz' })).toBeUndefined();
    expect(keyFromHeaders({ authorization: 'Bearer two words' })).toBeUndefined();
    expect(keyFromHeaders({ 'x-api-key': '' })).toBeUndefined();
    expect(keyFromHeaders({})).toBeUndefined();
  });

  it('reads the usual "Bearer <key>" without the rule, and finds what the rule finds in any header', () => {
    // The rule, as the header's grammar says it: the scheme in any case, spaces or tabs, the key.
    const byRule = (authorization: string) => /^bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization)?.[1];
    const piece = fc.constantFrom('Bearer', 'bearer', 'BEARER', 'Basic', ' ', '  ', '\t', '\u00a0', '\u2028', 'bp_', 'x', '');
    const header = fc.oneof(fc.string(), fc.array(piece, { maxLength: 8 }).map((parts) => parts.join('')), fc.string().map((rest) => `Bearer ${rest}`));
    fc.assert(
      fc.property(header, (authorization) => {
        expect(keyFromHeaders({ authorization })).toBe(byRule(authorization));
      }),
      { numRuns: 2_000 },
    );
  });
});

/** A verifier of a product's own, whose verify() is `verify` and which holds nothing. */
function ownVerifier(verify: () => PromiseLike<Answer>): KeyVerifier {
  return {
    verify: verify as unknown as KeyVerifier['verify'],
    verifyNow: () => undefined,
    stats: () => ({ live: false, keys: 0, unknown: 0, registryCalls: 0, hits: 0, lastEventSeq: null }),
    cachedHashes: () => [],
    whenLive: async () => {},
    close: async () => {},
  };
}
const VALID_ANSWER: Answer = { valid: true, code: 'VALID', slug: 'own' };
/** What a careless verifier may do: reject with no reason at all. */
// eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- the case under test
const rejectsWithNothing = () => Promise.reject<Answer>(undefined);
/** A thenable that is not this realm's Promise (another promise library's, another realm's). */
const thenable = (answer: Answer): PromiseLike<Answer> => ({
  then: (onFulfilled) => Promise.resolve(onFulfilled ? onFulfilled(answer) : answer) as never,
});

/** The same checks for either framework, on a product listening at `url`. */
function refusals(url: () => string) {
  const get = (headers: Record<string, string> = {}, path = '/v1/documents') => call(url(), 'GET', path, { headers });

  it('lets a valid key through, with the verdict on the request, by either header', async () => {
    const bearer = await get({ authorization: `Bearer ${valid.key}` });
    expect(bearer.status, bearer.text).toBe(200);
    expect(bearer.body).toEqual({ key_id: valid.id, tenant: tenant.slug });
    expect((await get({ 'x-api-key': valid.key })).status).toBe(200);
  });

  it('401 api_key_missing with WWW-Authenticate when no key is sent', async () => {
    const answer = await get();
    expect(answer.status).toBe(401);
    expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(answer.headers.get('www-authenticate')).toBe('Bearer');
    expect(answer.body).toMatchObject({ status: 401, code: 'api_key_missing', title: 'Unauthorized' });
  });

  it('401 api_key_invalid for an unknown or malformed key, and the key is not echoed', async () => {
    const unknown = generateApiKey();
    const answer = await get({ authorization: `Bearer ${unknown}` });
    expect(answer.status).toBe(401);
    expect(answer.body).toMatchObject({ code: 'api_key_invalid' });
    expect(answer.text).not.toContain(unknown);
    expect((await get({ 'x-api-key': 'not-a-key' })).body).toMatchObject({ code: 'api_key_invalid' });
  });

  it('403 insufficient_scope for a scope the key lacks, 403 not_entitled for a product the tenant lacks', async () => {
    const scoped = await get({ authorization: `Bearer ${valid.key}` }, '/v1/admin');
    expect(scoped.status).toBe(403);
    expect(scoped.body).toMatchObject({ status: 403, code: 'insufficient_scope' });
    const other = await createTenant(api);
    const unentitled = await createKey(api, other.id);
    expect((await get({ authorization: `Bearer ${unentitled.key}` })).body).toMatchObject({ status: 403, code: 'not_entitled' });
  });
}

describe('the Fastify plugin', () => {
  let product: FastifyInstance;
  let url = '';
  beforeAll(async () => {
    product = Fastify();
    product.get('/healthz', async () => ({ ok: true }));
    await product.register(async (protectedRoutes) => {
      await protectedRoutes.register(apiKeyPlugin, {
        verifier,
        scope: (request) => (request.url.startsWith('/v1/admin') ? 'admin:write' : undefined),
      });
      protectedRoutes.get('/v1/documents', async (request) => ({ key_id: request.apiKey?.key_id, tenant: request.apiKey?.slug }));
      protectedRoutes.get('/v1/admin', async () => ({ ok: true }));
    });
    url = await product.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await product.close();
  });

  refusals(() => url);

  it('leaves routes outside the context it was registered in open', async () => {
    expect((await call(url, 'GET', '/healthz')).status).toBe(200);
  });

  it('asks every request the same fixed question when product and scope are given as values', async () => {
    const app = Fastify();
    await app.register(apiKeyPlugin, { verifier, product: 'compliance', scope: 'admin:write' });
    app.get('/x', async () => ({ ok: true }));
    try {
      for (let i = 0; i < 2; i += 1) {
        const answer = await app.inject({ method: 'GET', url: '/x', headers: { authorization: `Bearer ${valid.key}` } });
        expect(answer.statusCode).toBe(403);
        expect(answer.json()).toMatchObject({ code: 'insufficient_scope' });
      }
    } finally {
      await app.close();
    }
  });

  it('refuses to register with a product code that is not one; a scope that throws fails its request (500), not the process', async () => {
    const bad = Fastify();
    await expect(bad.register(apiKeyPlugin, { verifier, product: 'Not A Code' }).ready()).rejects.toThrow(TypeError);
    await bad.close();

    const app = Fastify();
    await app.register(apiKeyPlugin, {
      verifier,
      scope: () => {
        throw new Error('no scope for this route');
      },
    });
    app.get('/x', async () => ({ ok: true }));
    try {
      const answer = await app.inject({ method: 'GET', url: '/x', headers: { authorization: `Bearer ${valid.key}` } });
      expect(answer.statusCode).toBe(500);
      expect(answer.body).not.toContain(valid.key);
    } finally {
      await app.close();
    }
  });

  it("takes any thenable for a verdict to come, and fails a rejection with nothing in it (500), never lets it through", async () => {
    for (const [verifierOf, status] of [
      [ownVerifier(() => thenable(VALID_ANSWER)), 200],
      [ownVerifier(rejectsWithNothing), 500],
    ] as const) {
      const app = Fastify();
      await app.register(apiKeyPlugin, { verifier: verifierOf });
      app.get('/x', async (request) => ({ tenant: request.apiKey?.slug }));
      try {
        const answer = await app.inject({ method: 'GET', url: '/x', headers: { authorization: 'Bearer bp_own' } });
        expect(answer.statusCode, answer.body).toBe(status);
        if (status === 200) expect(answer.json()).toEqual({ tenant: 'own' });
      } finally {
        await app.close();
      }
    }
  });

  it('503 verification_unavailable with Retry-After when the registry cannot answer (fail-closed)', async () => {
    const away = createKeyVerifier({ registryUrl: 'http://127.0.0.1:9', token, requestTimeoutMs: 300 });
    const app = Fastify();
    await app.register(apiKeyPlugin, { verifier: away });
    app.get('/x', async () => ({ ok: true }));
    try {
      const answer = await app.inject({ method: 'GET', url: '/x', headers: { authorization: `Bearer ${valid.key}` } });
      expect(answer.statusCode).toBe(503);
      expect(answer.headers['retry-after']).toBe('2');
      expect(answer.json()).toMatchObject({ status: 503, code: 'verification_unavailable' });
    } finally {
      await app.close();
      await away.close();
    }
  });
});

describe('the Express middleware', () => {
  let close: () => Promise<void>;
  let url = '';
  beforeAll(async () => {
    const product = express();
    product.use(
      apiKeyMiddleware({ verifier, scope: (request) => (request.url?.startsWith('/v1/admin') ? 'admin:write' : undefined) }),
    );
    product.get('/v1/documents', (request, response) => {
      const verdict = (request as unknown as RequestWithApiKey).apiKey;
      response.json({ key_id: verdict?.key_id, tenant: verdict?.slug });
    });
    product.get('/v1/admin', (_request, response) => {
      response.json({ ok: true });
    });
    const listener = product.listen(0, '127.0.0.1');
    await new Promise((resolve) => listener.once('listening', resolve));
    url = `http://127.0.0.1:${(listener.address() as AddressInfo).port}`;
    close = () => new Promise((resolve) => listener.close(() => resolve()));
  });
  afterAll(async () => {
    await close();
  });

  refusals(() => url);

  it('takes any thenable for a verdict to come; hands a rejection with nothing in it to next() as an Error', async () => {
    const through = (verifierOf: KeyVerifier) =>
      new Promise<{ error: unknown; request: RequestWithApiKey }>((resolve) => {
        const request = { headers: { 'x-api-key': 'bp_own' } } as unknown as RequestWithApiKey;
        apiKeyMiddleware({ verifier: verifierOf })(request, {} as never, (error) => resolve({ error, request }));
      });
    const accepted = await through(ownVerifier(() => thenable(VALID_ANSWER)));
    expect(accepted.error).toBeUndefined();
    expect(accepted.request.apiKey).toEqual(VALID_ANSWER);
    const failed = await through(ownVerifier(rejectsWithNothing));
    expect(failed.error).toBeInstanceOf(Error);
  });

  it('refuses a product code that is not one when made; hands a scope that throws to next() as an error', async () => {
    expect(() => apiKeyMiddleware({ verifier, product: 'Not A Code' })).toThrow(TypeError);
    const failing = new Error('no scope for this route');
    const middleware = apiKeyMiddleware({
      verifier,
      scope: () => {
        throw failing;
      },
    });
    const errors: unknown[] = [];
    await new Promise<void>((resolve) => {
      middleware({ headers: { authorization: `Bearer ${valid.key}` } } as RequestWithApiKey, {} as never, (error) => {
        errors.push(error);
        resolve();
      });
    });
    expect(errors).toEqual([failing]);
  });
});
