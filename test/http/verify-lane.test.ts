// The verify lane (src/http/key-verify.ts) answers key verification before Fastify's router, and
// hands every request it cannot settle at once to the route. Whatever door a request goes
// through, the answer must be the same: each request here is sent over HTTP to the listening app
// (the lane first) and through app.inject (the route alone, the lane is part of the server), with
// the same X-Request-Id, and the two answers are compared byte for byte. The lane's own counter
// shows which door answered. The embedded driver only: the lane reads no database (a cold key is
// the route's), so the driver changes nothing here; test/http/key-verify.test.ts runs both.
import http from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/domain/api-key.js';
import { KeyCache } from '../../src/caching/key-cache.js';
import { LocalCounter } from '../../src/http/rate-limit.js';
import { createKeyVerifier, type KeyVerifier } from '../../src/keys/key-verifier.js';
import { UsageRecorder } from '../../src/keys/usage-recorder.js';
import { metricsRegistry } from '../../src/observability/metrics.js';
import { openMigratedDatabase, type TestDatabase } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { identities } from '../support/identities.js';
import { startServerOn, TEST_PEPPER, type StartedApp } from '../support/server.js';

const VERIFY = '/v1/internal/api-keys/verify';
/** The /v1/internal budget of the server: far above what the comparisons send. */
const INTERNAL_PER_MINUTE = 100_000;

interface Sent {
  body?: string;
  headers?: Record<string, string>;
  /** Sent in two chunks with Transfer-Encoding: chunked, no Content-Length. */
  chunked?: boolean;
  token?: string | null;
}

interface Answered {
  status: number;
  contentType: string | undefined;
  requestId: string | undefined;
  retryAfter: string | undefined;
  text: string;
}

/** One request over a fresh connection, framed exactly as asked. */
function overHttp(url: string, sent: Sent, requestId: string): Promise<Answered> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'x-request-id': requestId, ...sent.headers };
    if (sent.token) headers.authorization = `Bearer ${sent.token}`;
    if (!sent.chunked && sent.body !== undefined) headers['content-length'] = String(Buffer.byteLength(sent.body));
    const request = http.request(`${url}${VERIFY}`, { method: 'POST', headers, agent: false }, (response) => {
      let text = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      response.on('end', () =>
        resolve({
          status: response.statusCode!,
          contentType: response.headers['content-type'],
          requestId: response.headers['x-request-id'] as string | undefined,
          retryAfter: response.headers['retry-after'],
          text,
        }),
      );
    });
    request.on('error', reject);
    if (sent.chunked && sent.body !== undefined) {
      const middle = Math.floor(sent.body.length / 2);
      request.write(sent.body.slice(0, middle));
      request.end(sent.body.slice(middle));
    } else {
      request.end(sent.body);
    }
  });
}

async function laneCounts(): Promise<{ answered: number; handed_over: number }> {
  const metric = await metricsRegistry.getSingleMetric('tenant_registry_verify_lane_requests_total')!.get();
  const of = (outcome: string) => metric.values.find((value) => value.labels.outcome === outcome)?.value ?? 0;
  return { answered: of('answered'), handed_over: of('handed_over') };
}

describe('the verify lane', () => {
  let database: TestDatabase;
  let server: StartedApp;
  let serviceToken: string;
  let operatorToken: string;
  let hotKey: string;
  let revokedKey: string;
  let requestNumber = 0;

  beforeAll(async () => {
    database = await openMigratedDatabase('pglite');
    server = await startServerOn(database.db, {
      rateLimits: {
        counter: new LocalCounter(),
        limits: { publicPerMinute: 0, servicePerMinute: 0, internalPerMinute: INTERNAL_PER_MINUTE, authFailuresPerMinute: 0 },
      },
    });
    serviceToken = await server.issuer.mint(identities.service());
    operatorToken = await server.issuer.mint(identities.platformAdmin());
    const tenant = await createTenant(server.api, { plan: 'business' });
    expect((await server.api.request('PUT', `/v1/entitlements/${tenant.id}/compliance`, { body: {} })).status).toBeLessThan(300);
    const create = async () => {
      const created = await server.api.post<{ id: string; key: string }>('/v1/api-keys', {
        body: { tenant_id: tenant.id, name: 'lane', scopes: ['documents:read'] },
      });
      expect(created.status, created.text).toBe(201);
      return created.body;
    };
    hotKey = (await create()).key;
    const revoked = await create();
    revokedKey = revoked.key;
    expect((await server.api.request('DELETE', `/v1/api-keys/${revoked.id}`)).status).toBeLessThan(300);
  });
  afterAll(async () => {
    await server?.close();
    await database?.close();
  });

  const throughRoute = async (sent: Sent, requestId: string): Promise<Answered> => {
    const headers: Record<string, string> = { 'x-request-id': requestId, ...sent.headers };
    if (sent.token) headers.authorization = `Bearer ${sent.token}`;
    const answer = await server.app.inject({ method: 'POST', url: VERIFY, headers, ...(sent.body === undefined ? {} : { payload: sent.body }) });
    return {
      status: answer.statusCode,
      contentType: answer.headers['content-type'] as string | undefined,
      requestId: answer.headers['x-request-id'] as string | undefined,
      retryAfter: answer.headers['retry-after'],
      text: answer.body,
    };
  };

  /** The request through both doors (the lane's first, so a cold key is the lane's to hand over); their answers. */
  const bothDoors = async (sent: Sent) => {
    const requestId = `lane-test-${++requestNumber}`;
    const before = await laneCounts();
    const lane = await overHttp(server.url, { token: serviceToken, ...sent }, requestId);
    const after = await laneCounts();
    const route = await throughRoute({ token: serviceToken, ...sent }, requestId);
    return { lane, route, answeredByLane: after.answered - before.answered === 1, handedOver: after.handed_over - before.handed_over === 1 };
  };

  const json = (body: Record<string, unknown>) => ({ body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

  it('answers a key whose facts it holds itself, with the bytes the route sends', async () => {
    const question = { key: hotKey, product: 'compliance', scope: 'documents:read' };
    // The first sight of the key is a cold one: the route loads it.
    const first = await bothDoors(json(question));
    expect(first.handedOver).toBe(true);
    expect(first.lane).toEqual(first.route);
    for (const body of [question, { key: hotKey }, { key: hotKey, scope: 'documents:write' }, { key: hotKey, product: 'nope' }, { key: revokedKey }]) {
      await bothDoors(json(body)); // warms the key of each
      const { lane, route, answeredByLane } = await bothDoors(json(body));
      expect(answeredByLane, JSON.stringify(body)).toBe(true);
      expect(lane.status).toBe(200);
      expect(lane).toEqual(route);
    }
    const valid = await bothDoors(json(question));
    expect(JSON.parse(valid.lane.text)).toMatchObject({ valid: true, code: 'VALID' });
  });

  it('answers malformed keys itself and hands unknown ones to the route first, then answers them from the cache', async () => {
    const malformed = await bothDoors(json({ key: 'bp_not-a-key' }));
    expect(malformed.answeredByLane).toBe(true);
    expect(malformed.lane).toEqual(malformed.route);
    expect(JSON.parse(malformed.lane.text)).toEqual({ valid: false, code: 'MALFORMED' });

    const unknown = generateApiKey();
    const cold = await bothDoors(json({ key: unknown }));
    expect(cold.handedOver).toBe(true);
    const warm = await bothDoors(json({ key: unknown }));
    expect(warm.answeredByLane).toBe(true);
    expect([cold.lane, warm.lane, warm.route].map((answer) => JSON.parse(answer.text) as unknown)).toEqual(
      Array(3).fill({ valid: false, code: 'NOT_FOUND' }),
    );
  });

  // Refused whatever the key: a well-formed one nobody has.
  const anyKey = generateApiKey();
  const refusals: Array<[string, Sent]> = [
    ['an unknown field', json({ key: anyKey, tenant: 'x' })],
    ['a key longer than the schema allows', json({ key: 'k'.repeat(201) })],
    ['a product code the pattern refuses', json({ key: anyKey, product: 'Not A Code' })],
    ['a body that is not JSON', { body: '{"key":', headers: { 'content-type': 'application/json' } }],
    ['JSON that is not an object', { body: '["key"]', headers: { 'content-type': 'application/json' } }],
    ['an empty body', { body: '', headers: { 'content-type': 'application/json' } }],
    ['a __proto__ key', { body: `{"key":"${'a'.repeat(10)}","__proto__":{"x":1}}`, headers: { 'content-type': 'application/json' } }],
    ['a NUL in the key', json({ key: 'bp_\u0000' })],
    ['an escaped lone surrogate', { body: '{"key":"\\ud800"}', headers: { 'content-type': 'application/json' } }],
    ['a text/plain body', { body: JSON.stringify({ key: 'x' }), headers: { 'content-type': 'text/plain' } }],
    ['no token', { ...json({ key: 'x' }), token: null }],
    ['a token that is not a JWT', { ...json({ key: 'x' }), token: 'not-a-token' }],
  ];

  it.each(refusals)('refuses %s exactly as the route does', async (_name, sent) => {
    const { lane, route, answeredByLane } = await bothDoors(sent);
    expect(answeredByLane).toBe(false);
    expect(lane.status).toBeGreaterThanOrEqual(400);
    expect(lane.status).toBeLessThan(500);
    expect(lane).toEqual(route);
  });

  it('refuses an operator (no service role) as the route does: 403 before the body is read', async () => {
    const { lane, route, answeredByLane } = await bothDoors({ ...json({ key: hotKey }), token: operatorToken });
    expect(answeredByLane).toBe(false);
    expect(lane.status).toBe(403);
    expect(lane).toEqual(route);
  });

  it('hands over, unread, what it does not take as sent: chunked, large, other spellings of JSON', async () => {
    const padded = `{"key":"${hotKey}"${' '.repeat(3000)}}`;
    const cases: Sent[] = [
      { ...json({ key: hotKey }), chunked: true },
      { body: padded, headers: { 'content-type': 'application/json' } },
      { body: JSON.stringify({ key: hotKey }), headers: { 'content-type': 'Application/JSON; charset=UTF-8' } },
    ];
    for (const sent of cases) {
      const { lane, route, handedOver } = await bothDoors(sent);
      expect(handedOver).toBe(true);
      expect(lane.status).toBe(200);
      expect(lane).toEqual(route);
    }
  });

  it('gives any body the answer the route gives (property)', async () => {
    let answered = 0;
    const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 20 }));
    // Mostly shapes the lane takes (known keys, codes and scopes, or none), so that both doors are
    // exercised; then anything at all.
    const key = fc.oneof(fc.constantFrom(hotKey, revokedKey, generateApiKey(), 'bp_short'), text);
    const product = fc.option(fc.oneof(fc.constantFrom('compliance', 'billing', 'nope'), text), { nil: undefined, freq: 2 });
    const scope = fc.option(fc.oneof(fc.constantFrom('documents:read', 'documents:write', 'a.b-c_d'), text), { nil: undefined, freq: 2 });
    const body = fc.oneof(
      { weight: 4, arbitrary: fc.record({ key, product, scope }, { requiredKeys: ['key'] }) },
      fc.dictionary(fc.constantFrom('key', 'product', 'scope', 'other'), fc.oneof(key, fc.integer(), fc.constant(null))),
      fc.jsonValue({ maxDepth: 2 }),
    );
    await fc.assert(
      fc.asyncProperty(body, async (value) => {
        const { lane, route, answeredByLane } = await bothDoors(json(value as Record<string, unknown>));
        if (answeredByLane) answered += 1;
        expect(lane).toEqual(route);
      }),
      { numRuns: 150, seed: 20261206 },
    );
    // Both doors were taken, many times each.
    expect(answered).toBeGreaterThan(20);
    expect(answered).toBeLessThan(130);
  });
});

describe('the verify lane and the /v1/internal budget', () => {
  let database: TestDatabase;
  let server: StartedApp;

  beforeAll(async () => {
    database = await openMigratedDatabase('pglite');
    server = await startServerOn(database.db, {
      rateLimits: {
        counter: new LocalCounter(),
        limits: { publicPerMinute: 0, servicePerMinute: 0, internalPerMinute: 4, authFailuresPerMinute: 0 },
        // One window for the whole test, whatever the time of day.
        clock: () => 30_000,
      },
    });
  });
  afterAll(async () => {
    await server?.close();
    await database?.close();
  });

  it('counts each request once, whichever door answers it, and refuses past the budget with the route\'s 429', async () => {
    const token = await server.issuer.mint(identities.service());
    const send = (key: string) => overHttp(server.url, { body: JSON.stringify({ key }), headers: { 'content-type': 'application/json' }, token }, `budget-${key.length}`);
    const before = await laneCounts();
    // 1: a token never seen, handed over unread and counted by the route; 2: an unknown key,
    // cold, counted by the lane and handed over (not counted again by the route); 3 and 4: the
    // lane's alone. The fifth is past the budget of four.
    const unknown = generateApiKey();
    const answers = [await send('bp_x'), await send(unknown), await send(unknown), await send('bp_y')];
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200]);
    const after = await laneCounts();
    expect(after.answered - before.answered).toBe(2);
    expect(after.handed_over - before.handed_over).toBe(2);
    const refused = await send('bp_z');
    expect(refused.status).toBe(429);
    expect(refused.contentType).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(refused.text)).toMatchObject({ code: 'rate_limited' });
    expect(Number(refused.retryAfter)).toBeGreaterThan(0);
  });
});

describe('the verify lane when its own code fails', () => {
  let database: TestDatabase;
  let server: StartedApp;
  let failures = 0;

  beforeAll(async () => {
    database = await openMigratedDatabase('pglite');
    // A server whose verifier fails when asked for an answer at once (a bug in the lane's part),
    // and works through the route's door.
    const verifier = createKeyVerifier({ db: database.db, pepper: TEST_PEPPER, clock: () => new Date(), usage: null, cache: new KeyCache() });
    const failing: KeyVerifier = {
      cache: verifier.cache,
      verify: (key, question) => verifier.verify(key, question),
      answerNow: () => {
        failures += 1;
        throw new Error('lane bug');
      },
    };
    server = await startServerOn(database.db, { keys: { verifier: failing, pepper: TEST_PEPPER, usage: new UsageRecorder(database.db, () => {}), stop: async () => {} } });
  });
  afterAll(async () => {
    await server?.close();
    await database?.close();
  });

  it('hands the request to the route, which answers it, and the process lives on', async () => {
    const service = await server.as(identities.service());
    // The first request proves the token (the route's door); the rest take the lane and fail there.
    for (let i = 0; i < 3; i += 1) {
      const answer = await service.post(VERIFY, { body: { key: 'bp_not-a-key' } });
      expect(answer.status, answer.text).toBe(200);
      expect(answer.body).toEqual({ valid: false, code: 'MALFORMED' });
    }
    expect(failures).toBe(2);
  });
});

describe('the verify lane within the app\'s limits', () => {
  let database: TestDatabase;
  let server: StartedApp;

  beforeAll(async () => {
    database = await openMigratedDatabase('pglite');
    server = await startServerOn(database.db, {
      config: { appEnv: 'dev', bodyLimitBytes: 300 },
      rateLimits: {
        counter: new LocalCounter(),
        limits: { publicPerMinute: 0, servicePerMinute: 0, internalPerMinute: 2, authFailuresPerMinute: 0 },
        clock: () => 30_000,
      },
    });
  });
  afterAll(async () => {
    await server?.close();
    await database?.close();
  });

  it('leaves a body past BODY_LIMIT_BYTES to the route (413), even one the lane could read', async () => {
    // A service identity of its own: the budget below is per caller.
    const token = await server.issuer.mint({ ...identities.service(), sub: 'service-account-body-limit' });
    // A first request proves the token, so the next one is the lane's to take or leave.
    const small = await overHttp(server.url, { body: '{"key":"bp_x"}', headers: { 'content-type': 'application/json' }, token }, 'limit-0');
    expect(small.status).toBe(200);
    const padded = `{"key":"bp_x"${' '.repeat(1_000)}}`;
    const answer = await overHttp(server.url, { body: padded, headers: { 'content-type': 'application/json' }, token }, 'limit-1');
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.text)).toMatchObject({ code: 'payload_too_large' });
  });

  it('counts a request against the caller it was sent by, even when the token expires while its body arrives', async () => {
    const token = await server.issuer.mint({ ...identities.service(), sub: 'service-account-expiring' }, { expiresIn: 3 });
    const send = () => overHttp(server.url, { body: '{"key":"bp_x"}', headers: { 'content-type': 'application/json' }, token }, 'expiring');
    // The first proves the token (the route counts it), the second is the lane's: the budget of two is spent.
    expect((await send()).status).toBe(200);
    expect((await send()).status).toBe(200);
    // Headers now, while the token is valid; the body after it has expired.
    const late = await new Promise<number>((resolve, reject) => {
      const request = http.request(
        `${server.url}${VERIFY}`,
        { method: 'POST', agent: false, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-length': '14' } },
        (response) => {
          response.resume();
          resolve(response.statusCode!);
        },
      );
      request.on('error', reject);
      request.flushHeaders();
      setTimeout(() => request.end('{"key":"bp_x"}'), 3_200);
    });
    expect(late).toBe(429);
  });
});
