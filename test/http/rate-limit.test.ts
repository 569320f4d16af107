import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCounter, RedisCounter } from '../../src/http/rate-limit.js';
import { openMigratedDatabase, type TestDatabase } from '../support/drivers.js';
import { problemOf } from '../support/http.js';
import { identities } from '../support/identities.js';
import { startServerOn, type StartedApp } from '../support/server.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const limits = { publicPerMinute: 5, servicePerMinute: 12, internalPerMinute: 8, authFailuresPerMinute: 3 };
// The windows are fixed minutes: on the real clock, a test's requests that straddle a minute
// would count in two windows. Pinned mid-minute, all of a test's requests share one.
const clock = () => Date.parse('2026-11-27T10:00:30.000Z');

describe('rate limits', () => {
  let database: TestDatabase;
  let local: StartedApp;
  beforeAll(async () => {
    database = await openMigratedDatabase('pglite');
    local = await startServerOn(database.db, { rateLimits: { counter: new LocalCounter(), limits, clock } });
  });
  afterAll(async () => {
    await local.close();
    await database.close();
  });

  it('allows each caller its budget a minute on /v1, then answers 429 rate_limited with Retry-After', async () => {
    const caller = await local.as({ ...identities.platformAdmin(), sub: 'limited-operator' });
    const statuses = [];
    for (let i = 0; i < 7; i += 1) statuses.push((await caller.get('/v1/catalog')).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
    const refused = await caller.get('/v1/catalog');
    expect(problemOf(refused).code).toBe('rate_limited');
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    // Another caller has its own budget.
    expect((await (await local.as({ ...identities.platformAdmin(), sub: 'another-operator' })).get('/v1/catalog')).status).toBe(200);
  });

  it('gives /v1/internal its own, larger budget', async () => {
    const service = await local.as({ ...identities.service(), sub: 'limited-service' });
    const statuses = [];
    for (let i = 0; i < 10; i += 1) {
      statuses.push((await service.post('/v1/internal/api-keys/verify', { body: { key: 'bp_nope' } })).status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 429, 429]);
    // The public budget of the same caller is untouched by its internal calls.
    expect((await service.get('/v1/tenants/by-slug/no-such-tenant')).status).toBe(404);
  });

  it('never limits the probes or the OpenAPI document', async () => {
    for (let i = 0; i < 20; i += 1) expect((await fetch(`${local.url}/healthz`)).status).toBe(200);
  });

  it('counts in fixed one-minute windows', () => {
    const counter = new LocalCounter();
    const start = Date.parse('2026-11-27T10:00:00.000Z');
    expect(counter.hit('k', 2, start).allowed).toBe(true);
    expect(counter.hit('k', 2, start + 1000).allowed).toBe(true);
    const third = counter.hit('k', 2, start + 15_000);
    expect(third).toEqual({ allowed: false, retryAfterS: 45 });
    expect(counter.hit('k', 2, start + 60_000).allowed).toBe(true);
  });
});

describe('rate limits shared through Redis', () => {
  let database: TestDatabase;
  let replicas: StartedApp[];
  let redis: Redis[];
  beforeAll(async () => {
    database = await openMigratedDatabase('pglite');
    redis = [new Redis(REDIS_URL), new Redis(REDIS_URL)];
    replicas = await Promise.all(
      redis.map((client) => startServerOn(database.db, { rateLimits: { counter: new RedisCounter(client), limits, clock } })),
    );
  });
  afterAll(async () => {
    for (const replica of replicas) await replica.close();
    for (const client of redis) client.disconnect();
    await database.close();
  });

  it('shares one budget per caller across replicas', async () => {
    const claims = { ...identities.platformAdmin(), sub: `shared-${Date.now()}` };
    const [one, two] = [await replicas[0]!.as(claims), await replicas[1]!.as(claims)];
    const statuses = [];
    for (let i = 0; i < 8; i += 1) statuses.push((await (i % 2 === 0 ? one : two).get('/v1/catalog')).status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(5);
    expect(statuses.slice(5)).toEqual([429, 429, 429]);
  });

  it('lets requests through when Redis cannot be reached, rather than failing them', async () => {
    const unreachable = new Redis('redis://127.0.0.1:1', { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
    unreachable.on('error', () => {});
    const replica = await startServerOn(database.db, { rateLimits: { counter: new RedisCounter(unreachable), limits } });
    try {
      const caller = await replica.as({ ...identities.platformAdmin(), sub: 'no-redis' });
      for (let i = 0; i < 8; i += 1) expect((await caller.get('/v1/catalog')).status).toBe(200);
    } finally {
      await replica.close();
      unreachable.disconnect();
    }
  });
});
