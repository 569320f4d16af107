// The budgets that fit the callers: service accounts get a public budget of their own, users keep
// theirs, and a flood of bad tokens from one address is refused before signatures are checked
// while that address's callers with verified tokens keep working. Counted locally and in the real
// Redis. Requests go through node:http so each chooses its connection and its source address
// (127.0.0.2 and 127.0.0.3 are loopback too); the windows' clock is pinned to one minute.
import { randomInt } from 'node:crypto';
import { Agent, request as httpRequest } from 'node:http';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { discoveredKeys } from '../../src/auth/discovery.js';
import { createTokenVerifier, type TokenVerifier } from '../../src/auth/verifier.js';
import { loadConfig } from '../../src/config.js';
import { LocalCounter, RedisCounter, sourceOf, type Counter, type RateLimits } from '../../src/http/rate-limit.js';
import { until } from '../support/until.js';
import { eachDriver, openMigratedDatabase, type TestDatabase } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { identities, ROLE_NAMES } from '../support/identities.js';
import { startServerOn, type StartedApp } from '../support/server.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const DEFAULTS = loadConfig({}).rateLimits;
const MINUTE = 60_000;

interface Reply {
  status: number;
  retryAfter: string | undefined;
  code: unknown;
}

interface SendOptions {
  token?: string;
  /** A keep-alive agent to reuse its connection; by default each request opens its own. */
  agent?: Agent;
  /** The source address (127.0.0.1 by default). */
  from?: string;
}

function send(baseUrl: string, path: string, options: SendOptions = {}): Promise<Reply> {
  const url = new URL(path, baseUrl);
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
        agent: options.agent ?? false,
        localAddress: options.from ?? '127.0.0.1',
      },
      (response) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => {
          const retryAfter = response.headers['retry-after'];
          resolve({ status: response.statusCode ?? 0, retryAfter, code: text.startsWith('{') ? (JSON.parse(text) as { code?: unknown }).code : undefined });
        });
      },
    );
    outgoing.on('error', reject);
    outgoing.end();
  });
}

/** The same token with its signature changed: well-formed, its key known, the check fails. */
function badSignature(token: string): string {
  const [header, payload, signature = ''] = token.split('.');
  return `${header}.${payload}.${signature.startsWith('A') ? 'B' : 'A'}${signature.slice(1)}`;
}

interface Counted {
  server: StartedApp;
  /** Signatures the server's verifier has checked (each a lookup of the issuer's key). */
  signatureChecks: () => number;
}

/**
 * A server whose token verifier counts its signature checks. The verifier is bound to the test
 * issuer startServerOn makes, once the server is up; no request arrives before that.
 */
async function startCounted(
  database: TestDatabase,
  counter: Counter,
  limits: RateLimits,
  clock: () => number,
  options: { withoutKnown?: boolean } = {},
): Promise<Counted> {
  const bound: { inner?: TokenVerifier } = {};
  let checks = 0;
  const verify = (token: string) => bound.inner!.verify(token);
  const verifier: TokenVerifier = options.withoutKnown ? { verify } : { verify, known: (token) => bound.inner!.known!(token) };
  const server = await startServerOn(database.db, { auth: { verifier, devIssuer: null }, rateLimits: { counter, limits, clock } });
  const keys = discoveredKeys(server.issuer.url, { cooldownMs: 0 });
  bound.inner = createTokenVerifier({
    issuer: server.issuer.url,
    audience: null,
    roles: ROLE_NAMES,
    rolesClient: 'tenant-registry',
    keys: (protectedHeader, token) => {
      checks += 1;
      return keys(protectedHeader, token);
    },
  });
  return { server, signatureChecks: () => checks };
}

/** `count` requests, `concurrency` at a time; their statuses in order. */
async function statusesOf(count: number, concurrency: number, one: () => Promise<Reply>): Promise<number[]> {
  const statuses: number[] = [];
  for (let done = 0; done < count; done += concurrency) {
    const batch = await Promise.all(Array.from({ length: Math.min(concurrency, count - done) }, one));
    statuses.push(...batch.map((reply) => reply.status));
  }
  return statuses;
}

const tally = (statuses: number[]) => statuses.reduce<Record<number, number>>((t, s) => ({ ...t, [s]: (t[s] ?? 0) + 1 }), {});

describe('the defaults', () => {
  it('give service accounts a public budget that one replica cannot exhaust, users 600, bad tokens 120 an address', () => {
    expect(DEFAULTS).toEqual({ publicPerMinute: 600, servicePerMinute: 3_000_000, internalPerMinute: 600_000, authFailuresPerMinute: 120 });
  });
});

describe('the source an address counts as', () => {
  it('is the IPv4 address itself, also when written as IPv4-mapped IPv6', () => {
    expect(sourceOf('203.0.113.7')).toBe('203.0.113.7');
    expect(sourceOf('::ffff:203.0.113.7')).toBe('203.0.113.7');
  });

  it('is the /64 of an IPv6 address, however it is written', () => {
    expect(sourceOf('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(sourceOf('2001:db8:1:2::ffff')).toBe('2001:db8:1:2::/64');
    expect(sourceOf('2001:0db8:0001:0002:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(sourceOf('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(sourceOf('::1')).toBe('0:0:0:0::/64');
    expect(sourceOf('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(sourceOf('2001:db8:1:3::1')).not.toBe(sourceOf('2001:db8:1:2::1'));
  });
});

eachDriver('rate limits under the default budgets', (driver) => {
  let database: TestDatabase;
  let counted: Counted;
  let now: number;
  beforeAll(async () => {
    database = await openMigratedDatabase(driver);
  });
  afterAll(() => database.close());
  beforeEach(async () => {
    // Each test has its own server (the budget of failures belongs to the loopback address).
    now = Date.parse('2026-11-27T10:00:00.000Z');
    counted = await startCounted(database, new LocalCounter(), DEFAULTS, () => now);
  });
  afterEach(() => counted.server.close());

  it('serves a service account well over 600 by-slug requests a minute, while a user is limited at 600', async () => {
    const { server } = counted;
    const tenant = await createTenant(server.api);
    const service = await server.as({ ...identities.service(), sub: 'service-account-portal-backend' });
    const portal = new Agent({ keepAlive: true, maxSockets: 50 });
    try {
      const bySlug = () => send(server.url, `/v1/tenants/by-slug/${tenant.slug}`, { token: service.token!, agent: portal });
      expect(tally(await statusesOf(2_000, 50, bySlug))).toEqual({ 200: 2_000 });
    } finally {
      portal.destroy();
    }

    const member = await server.as(identities.member(tenant.id));
    const statuses = await statusesOf(605, 1, () => send(server.url, `/v1/tenants/by-slug/${tenant.slug}`, { token: member.token! }));
    expect(statuses.slice(0, 600)).toEqual(Array<number>(600).fill(200));
    expect(statuses.slice(600)).toEqual([429, 429, 429, 429, 429]);
  });

  it('refuses a flood of bad tokens from one address after 120 failures, without checking their signatures', async () => {
    const { server, signatureChecks } = counted;
    const tenant = await createTenant(server.api);
    const path = `/v1/tenants/by-slug/${tenant.slug}`;
    // A caller of this address verified before the flood, and one keeping its connection open.
    const portalToken = (await server.as({ ...identities.service(), sub: 'service-account-portal' })).token!;
    const keptOpen = new Agent({ keepAlive: true, maxSockets: 1 });
    const operatorToken = (await server.as({ ...identities.platformAdmin(), sub: 'operator-on-a-connection' })).token!;
    try {
      expect((await send(server.url, path, { token: portalToken })).status).toBe(200);
      expect((await send(server.url, path, { token: operatorToken, agent: keptOpen })).status).toBe(200);
      const checksBefore = signatureChecks();

      const bad = badSignature((await server.as(identities.platformAdmin())).token!);
      const statuses = await statusesOf(150, 1, () => send(server.url, path, { token: bad }));
      expect(statuses.slice(0, 120)).toEqual(Array<number>(120).fill(401));
      expect(statuses.slice(120)).toEqual(Array<number>(30).fill(429));
      // Every 401 cost a signature check; the 30 refusals cost none.
      expect(signatureChecks() - checksBefore).toBe(120);

      const refused = await send(server.url, path, { token: bad });
      expect(refused).toMatchObject({ status: 429, code: 'rate_limited' });
      expect(Number(refused.retryAfter)).toBe(60);

      // The tokens already verified still work: from the verifier's cache on a new connection,
      // and remembered on the kept one; neither is checked again.
      const checksAfterFlood = signatureChecks();
      for (let i = 0; i < 5; i += 1) {
        expect((await send(server.url, path, { token: portalToken })).status).toBe(200);
        expect((await send(server.url, path, { token: operatorToken, agent: keptOpen })).status).toBe(200);
      }
      expect(signatureChecks()).toBe(checksAfterFlood);

      // A token this replica has not verified yet waits for the next window at this address (the
      // price of the bound), and is verified at once from another address.
      const fresh = (await server.as({ ...identities.service(), sub: 'service-account-new' })).token!;
      expect(await send(server.url, path, { token: fresh })).toMatchObject({ status: 429, code: 'rate_limited' });
      expect(signatureChecks()).toBe(checksAfterFlood);
      expect((await send(server.url, path, { token: fresh, from: '127.0.0.2' })).status).toBe(200);
      expect(signatureChecks()).toBe(checksAfterFlood + 1);

      // A new window forgives the address: the bad token is checked and refused as such again.
      now += MINUTE;
      expect((await send(server.url, path, { token: bad })).status).toBe(401);
      expect(signatureChecks()).toBe(checksAfterFlood + 2);
    } finally {
      keptOpen.destroy();
    }
  });

  it('keeps serving a caller remembered on its connection, also with a verifier that knows no token in advance', async () => {
    await counted.server.close();
    counted = await startCounted(database, new LocalCounter(), DEFAULTS, () => now, { withoutKnown: true });
    const { server, signatureChecks } = counted;
    const keptOpen = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const token = server.api.token!;
      expect((await send(server.url, '/v1/catalog', { token, agent: keptOpen })).status).toBe(200);
      const statuses = await statusesOf(121, 1, () => send(server.url, '/v1/catalog', { token: 'not.a-valid.token' }));
      expect(tally(statuses)).toEqual({ 401: 120, 429: 1 });
      const checks = signatureChecks();
      expect((await send(server.url, '/v1/catalog', { token, agent: keptOpen })).status).toBe(200);
      // The same token on a new connection: this verifier cannot vouch for it before checking it.
      expect((await send(server.url, '/v1/catalog', { token })).status).toBe(429);
      expect(signatureChecks()).toBe(checks);
    } finally {
      keptOpen.destroy();
    }
  });

  it('counts requests without any Authorization header as failures too', async () => {
    const { server, signatureChecks } = counted;
    const statuses = await statusesOf(125, 1, () => send(server.url, '/v1/catalog', { from: '127.0.0.3' }));
    expect(statuses.slice(0, 120)).toEqual(Array<number>(120).fill(401));
    expect(statuses.slice(120)).toEqual([429, 429, 429, 429, 429]);
    expect(signatureChecks()).toBe(0);
    // The other addresses are untouched.
    expect((await send(server.url, '/v1/catalog', { token: server.api.token! })).status).toBe(200);
  });
});

eachDriver('rate limits of services and failures counted in Redis', (driver) => {
  const limits = { publicPerMinute: 3, servicePerMinute: 6, internalPerMinute: 100, authFailuresPerMinute: 4 };
  let database: TestDatabase;
  let redis: Redis[];
  let replicas: Counted[];
  // A minute no other run uses, so its Redis keys start from zero.
  const window = Math.floor(Date.now() / MINUTE) + 1_000_000 + randomInt(1_000_000);
  const clock = () => window * MINUTE + 5_000;
  const keyOf = (name: string) => `tenant-registry:rate:${window}:${name}`;
  beforeAll(async () => {
    database = await openMigratedDatabase(driver);
    redis = [new Redis(REDIS_URL), new Redis(REDIS_URL), new Redis(REDIS_URL)];
    replicas = [
      await startCounted(database, new RedisCounter(redis[0]!), limits, clock),
      await startCounted(database, new RedisCounter(redis[1]!), limits, clock),
    ];
  });
  afterAll(async () => {
    for (const replica of replicas) await replica.server.close();
    for (const client of redis) client.disconnect();
    await database.close();
  });

  it('shares a service account\'s budget across replicas, apart from the users\' budget', async () => {
    const [one, two] = replicas.map((replica) => replica.server);
    const tenant = await createTenant(one!.api);
    const path = `/v1/tenants/by-slug/${tenant.slug}`;
    const sub = `service-shared-${driver}`;
    // Each replica of this test trusts its own issuer: the same caller gets a token from each.
    const services = [await one!.as({ ...identities.service(), sub }), await two!.as({ ...identities.service(), sub })];
    const users = [await one!.as(identities.member(tenant.id)), await two!.as(identities.member(tenant.id))];
    const statuses = [];
    for (let i = 0; i < 8; i += 1) statuses.push((await send(replicas[i % 2]!.server.url, path, { token: services[i % 2]!.token! })).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429, 429]);
    expect(await redis[2]!.get(keyOf(`service:${sub}`))).toBe('8');

    const userStatuses = [];
    for (let i = 0; i < 5; i += 1) userStatuses.push((await send(replicas[i % 2]!.server.url, path, { token: users[i % 2]!.token! })).status);
    expect(userStatuses).toEqual([200, 200, 200, 429, 429]);
  });

  it('shares an address\'s budget of failures: each replica refuses it once a count there says it is over', async () => {
    const from = driver === 'pg' ? '127.0.0.4' : '127.0.0.5';
    const bad = await Promise.all(replicas.map(async ({ server }) => badSignature((await server.as(identities.platformAdmin())).token!)));
    const checksBefore = replicas.map((replica) => replica.signatureChecks());
    const statuses: number[] = [];
    for (let i = 0; i < 10; i += 1) {
      statuses.push((await send(replicas[i % 2]!.server.url, '/v1/catalog', { token: bad[i % 2], from })).status);
      // Let the replica hear Redis's count before the next request: a 401's INCR goes out after its answer, so wait for it in Redis, not for 20 ms.
      const failures = statuses.filter((status) => status === 401).length;
      await until(async () => Number(await redis[2]!.get(keyOf(`auth-failures:${from}`))) >= failures, `Redis to count ${failures} failures from ${from}`);
    }
    // The fourth failure (on the second replica) spends the budget there; the first replica
    // learns it from its next failure's count; from then on both refuse.
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429, 429, 429, 429]);
    expect(await redis[2]!.get(keyOf(`auth-failures:${from}`))).toBe('5');
    expect(replicas.map((replica, i) => replica.signatureChecks() - checksBefore[i]!)).toEqual([3, 2]);
    // Another address of the same clients is not affected.
    expect((await send(replicas[1]!.server.url, '/v1/catalog', { token: replicas[1]!.server.api.token! })).status).toBe(200);
  });

  it('lets failures be answered 401 when Redis cannot be reached', async () => {
    const unreachable = new Redis('redis://127.0.0.1:1', { enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
    unreachable.on('error', () => {});
    const replica = await startCounted(database, new RedisCounter(unreachable), limits, clock);
    try {
      const statuses = await statusesOf(8, 1, () => send(replica.server.url, '/v1/catalog', { from: '127.0.0.6' }));
      expect(statuses).toEqual(Array<number>(8).fill(401));
    } finally {
      await replica.server.close();
      unreachable.disconnect();
    }
  });
});
