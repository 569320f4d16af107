// Changes reach verify caches: on the server that made them (the very next verify), on another
// replica of the same PostgreSQL (within a second), and through a dropped listening connection
// (the fallback poll, then notifications again once it is back).
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiKey } from '../../src/http/schemas/api-key.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { startInvalidationFeed, type InvalidationFeed, type InvalidationTarget } from '../../src/caching/invalidation-feed.js';
import type { InvalidationScope } from '../../src/caching/scope.js';
import type { VerifyAnswer } from '../../src/domain/key-verdict.js';
import type { Database } from '../../src/store/database.js';
import { openPg } from '../../src/store/pg-driver.js';
import { DRIVERS, eachDriver, openMigratedDatabase, type TestDatabase } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import type { Client } from '../support/http.js';
import { identities } from '../support/identities.js';
import { hearingNotifications, type HearingDatabase } from '../support/notifications.js';
import { startServerOn, type StartedApp } from '../support/server.js';

type CreatedKey = ApiKey & { key: string };
type Question = { product?: string; scope?: string };

/** The calls every test here makes, bound to one server. */
function keyClient(admin: Client, service: Client) {
  const expectStatus = async (pending: Promise<{ status: number; text: string }>, status: number) => {
    const answer = await pending;
    expect(answer.status, answer.text).toBe(status);
  };
  return {
    async createKey(tenantId: string, body: Record<string, unknown> = {}) {
      const answer = await admin.post<CreatedKey>('/v1/api-keys', { body: { tenant_id: tenantId, name: 'cache test', ...body } });
      expect(answer.status, answer.text).toBe(201);
      return answer.body;
    },
    async code(key: string, question: Question = {}) {
      const answer = await service.post<VerifyAnswer>('/v1/internal/api-keys/verify', { body: { key, ...question } });
      expect(answer.status, answer.text).toBe(200);
      return answer.body.code;
    },
    revoke: (id: string) => expectStatus(admin.request('DELETE', `/v1/api-keys/${id}`), 204),
    rotate: (id: string) => expectStatus(admin.post(`/v1/api-keys/${id}/rotate`, { body: { grace_seconds: 0 } }), 201),
    narrow: (id: string, body: { scopes?: string[]; products?: string[] }) =>
      expectStatus(admin.request('PATCH', `/v1/api-keys/${id}`, { body }), 200),
    cancel: (tenantId: string) => expectStatus(admin.post(`/v1/tenants/${tenantId}/cancel`), 200),
    activate: (tenantId: string) => expectStatus(admin.post(`/v1/tenants/${tenantId}/activate`), 200),
    grant: (tenantId: string, product: string) =>
      expectStatus(admin.request('PUT', `/v1/entitlements/${tenantId}/${product}`, { body: {} }), 200),
    revokeProduct: (tenantId: string, product: string) =>
      expectStatus(admin.request('DELETE', `/v1/entitlements/${tenantId}/${product}`), 204),
  };
}
type KeyClient = ReturnType<typeof keyClient>;

/** Polls a verify every 50 ms until it answers `expected` or withinMs has passed; the last answer. */
async function settle(keys: KeyClient, key: string, question: Question, expected: string, withinMs = 1_000) {
  const deadline = performance.now() + withinMs;
  for (;;) {
    const code = await keys.code(key, question);
    if (code === expected || performance.now() > deadline) return code;
    await sleep(50);
  }
}

async function waitFor(condition: () => boolean | Promise<boolean>, withinMs: number, what: string) {
  const deadline = performance.now() + withinMs;
  while (!(await condition())) {
    if (performance.now() > deadline) throw new Error(`not within ${withinMs} ms: ${what}`);
    await sleep(5);
  }
}

eachDriver('the verify cache of the server that made a change', (driver) => {
  // The NOTIFY of a change races the answer to the change; a stale verdict shows up only now
  // and then, so each kind of change is made many times, each checked on the very next verify.
  const ROUNDS = 100;
  let database: TestDatabase;
  let server: StartedApp;
  let keys: KeyClient;
  let hearing: HearingDatabase;
  let loads = 0;
  /** How often a verify has gone to the database for a key's facts. */
  const factLoads = () => loads;
  beforeAll(async () => {
    database = await openMigratedDatabase(driver);
    hearing = hearingNotifications(database.db);
    const counted: Database = {
      ...hearing.db,
      query: <Row,>(text: string, params?: readonly unknown[]) => {
        if (text.includes('FROM api_keys k JOIN tenants t')) loads += 1;
        return database.db.query<Row>(text, params);
      },
    };
    server = await startServerOn(counted);
    keys = keyClient(server.api, await server.as(identities.service()));
  });
  afterAll(async () => {
    await server.close();
    await database.close();
  });

  it('sees a revocation on the very next verify', async () => {
    const tenant = await createTenant(server.api);
    const stale: string[] = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      const created = await keys.createKey(tenant.id);
      expect(await keys.code(created.key)).toBe('VALID');
      await keys.revoke(created.id);
      const code = await keys.code(created.key);
      if (code !== 'REVOKED') stale.push(`round ${round}: ${code}`);
    }
    expect(stale, `${stale.length} of ${ROUNDS} verifies right after a revoke were stale`).toEqual([]);
  });

  it('sees the end of a rotated key (grace 0) on the very next verify', async () => {
    const tenant = await createTenant(server.api);
    const stale: string[] = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      const created = await keys.createKey(tenant.id);
      expect(await keys.code(created.key)).toBe('VALID');
      await keys.rotate(created.id);
      const code = await keys.code(created.key);
      if (code !== 'EXPIRED') stale.push(`round ${round}: ${code}`);
    }
    expect(stale, `${stale.length} of ${ROUNDS} verifies right after a rotation were stale`).toEqual([]);
  });

  it('sees a narrowed key (INSUFFICIENT_SCOPE, NOT_ENTITLED) on the very next verify', async () => {
    const tenant = await createTenant(server.api);
    await keys.grant(tenant.id, 'risk');
    await keys.grant(tenant.id, 'compliance');
    const stale: string[] = [];
    for (let round = 0; round < ROUNDS / 2; round += 1) {
      const created = await keys.createKey(tenant.id, { scopes: ['docs:read', 'docs:write'], products: ['risk', 'compliance'] });
      const warmScope = await keys.code(created.key, { scope: 'docs:write' });
      const warmProduct = await keys.code(created.key, { product: 'compliance' });
      if (warmScope !== 'VALID' || warmProduct !== 'VALID') stale.push(`round ${round} before: ${warmScope}, ${warmProduct}`);
      await keys.narrow(created.id, { scopes: ['docs:read'] });
      const scope = await keys.code(created.key, { scope: 'docs:write' });
      if (scope !== 'INSUFFICIENT_SCOPE') stale.push(`round ${round} after narrowing scopes: ${scope}`);
      await keys.narrow(created.id, { products: ['risk'] });
      const product = await keys.code(created.key, { product: 'compliance' });
      if (product !== 'NOT_ENTITLED') stale.push(`round ${round} after narrowing products: ${product}`);
    }
    expect(stale, `${stale.length} of ${ROUNDS} verifies right after a narrowing were stale`).toEqual([]);
  });

  it('sees a tenant cancelled (TENANT_INACTIVE) and activated again on the very next verify', async () => {
    const tenant = await createTenant(server.api);
    const created = await keys.createKey(tenant.id);
    const stale: string[] = [];
    for (let round = 0; round < ROUNDS / 2; round += 1) {
      const warm = await keys.code(created.key);
      if (warm !== 'VALID') stale.push(`round ${round} before cancel: ${warm}`);
      await keys.cancel(tenant.id);
      const cancelled = await keys.code(created.key);
      if (cancelled !== 'TENANT_INACTIVE') stale.push(`round ${round} after cancel: ${cancelled}`);
      await keys.activate(tenant.id);
      const activated = await keys.code(created.key);
      if (activated !== 'VALID') stale.push(`round ${round} after activate: ${activated}`);
    }
    expect(stale, `${stale.length} of ${ROUNDS} verifies right after a tenant change were stale`).toEqual([]);
  });

  it('sees a product revoked (NOT_ENTITLED) and granted again (VALID) on the very next verify', async () => {
    const tenant = await createTenant(server.api);
    const created = await keys.createKey(tenant.id);
    await keys.grant(tenant.id, 'risk');
    const stale: string[] = [];
    for (let round = 0; round < ROUNDS / 2; round += 1) {
      const warm = await keys.code(created.key, { product: 'risk' });
      if (warm !== 'VALID') stale.push(`round ${round} before revoke: ${warm}`);
      await keys.revokeProduct(tenant.id, 'risk');
      const revoked = await keys.code(created.key, { product: 'risk' });
      if (revoked !== 'NOT_ENTITLED') stale.push(`round ${round} after revoke: ${revoked}`);
      await keys.grant(tenant.id, 'risk');
      const granted = await keys.code(created.key, { product: 'risk' });
      if (granted !== 'VALID') stale.push(`round ${round} after grant: ${granted}`);
    }
    expect(stale, `${stale.length} of ${ROUNDS} verifies right after an entitlement change were stale`).toEqual([]);
  });

  it("drops only what changed: other tenants' keys stay cached", async () => {
    const [mine, theirs] = [await createTenant(server.api), await createTenant(server.api)];
    const changed = await keys.createKey(mine.id);
    const kept = await keys.createKey(theirs.id);
    // The creations' own notifications land first, so they cannot be mistaken for the changes': heard, not waited 150 ms for.
    await hearing.arrived();
    expect(await keys.code(changed.key)).toBe('VALID');
    expect(await keys.code(kept.key)).toBe('VALID');
    await keys.cancel(mine.id);
    const revokedKey = await keys.createKey(theirs.id);
    await keys.revoke(revokedKey.id);
    // Every notification of these changes has arrived (heard, not waited 150 ms for) before the cache is counted.
    await hearing.arrived();
    const loads = factLoads();
    expect(await keys.code(kept.key)).toBe('VALID');
    expect(factLoads()).toBe(loads);
    expect(await keys.code(changed.key)).toBe('TENANT_INACTIVE');
    expect(factLoads()).toBe(loads + 1);
  });
});

eachDriver('the verify cache of the server that made a change, with notifications arriving late', (driver) => {
  // PostgreSQL delivers a NOTIFY to the listening connection some time after the commit, with
  // no bound; here that time is 100 ms, so an answer that depends on winning the race loses it
  // every time instead of now and then.
  const DELAY_MS = 100;
  let database: TestDatabase;
  let server: StartedApp;
  let keys: KeyClient;
  beforeAll(async () => {
    database = await openMigratedDatabase(driver);
    const late: Database = {
      ...database.db,
      listen: (channel, onMessage, onState) =>
        database.db.listen(channel, (payload) => void sleep(DELAY_MS, undefined, { ref: false }).then(() => onMessage(payload)), onState),
    };
    server = await startServerOn(late);
    keys = keyClient(server.api, await server.as(identities.service()));
  });
  afterAll(async () => {
    await server.close();
    await database.close();
  });

  it('answers REVOKED on the very next verify after a revoke', async () => {
    const tenant = await createTenant(server.api);
    const created = await keys.createKey(tenant.id);
    expect(await keys.code(created.key)).toBe('VALID');
    await keys.revoke(created.id);
    expect(await keys.code(created.key)).toBe('REVOKED');
  });

  it('answers EXPIRED on the very next verify after a rotation with grace 0', async () => {
    const tenant = await createTenant(server.api);
    const created = await keys.createKey(tenant.id);
    expect(await keys.code(created.key)).toBe('VALID');
    await keys.rotate(created.id);
    expect(await keys.code(created.key)).toBe('EXPIRED');
  });

  it('answers INSUFFICIENT_SCOPE on the very next verify after a scope is taken from the key', async () => {
    const tenant = await createTenant(server.api);
    const created = await keys.createKey(tenant.id, { scopes: ['docs:read', 'docs:write'] });
    expect(await keys.code(created.key, { scope: 'docs:write' })).toBe('VALID');
    await keys.narrow(created.id, { scopes: ['docs:read'] });
    expect(await keys.code(created.key, { scope: 'docs:write' })).toBe('INSUFFICIENT_SCOPE');
    expect(await keys.code(created.key, { scope: 'docs:read' })).toBe('VALID');
  });

  it('answers TENANT_INACTIVE on the very next verify after a cancel', async () => {
    const tenant = await createTenant(server.api);
    const created = await keys.createKey(tenant.id);
    expect(await keys.code(created.key)).toBe('VALID');
    await keys.cancel(tenant.id);
    expect(await keys.code(created.key)).toBe('TENANT_INACTIVE');
  });

  it('answers NOT_ENTITLED on the very next verify after a product revoke, VALID after a grant', async () => {
    const tenant = await createTenant(server.api);
    const created = await keys.createKey(tenant.id);
    expect(await keys.code(created.key, { product: 'risk' })).toBe('NOT_ENTITLED');
    await keys.grant(tenant.id, 'risk');
    expect(await keys.code(created.key, { product: 'risk' })).toBe('VALID');
    await keys.revokeProduct(tenant.id, 'risk');
    expect(await keys.code(created.key, { product: 'risk' })).toBe('NOT_ENTITLED');
  });
});

/**
 * Records what the feed tells its cache, in order: a scope as the database writes it, '?' for
 * one it could not read, '*' for everything.
 */
class Recorder implements InvalidationTarget {
  readonly heard: string[] = [];
  invalidate(scope: InvalidationScope): void {
    this.heard.push(scope.kind === 'key' ? `key:${scope.keyHashHex}` : scope.kind === 'tenant' ? `tenant:${scope.tenantId}` : '?');
  }
  invalidateAll(): void {
    this.heard.push('*');
  }
  resumed(): void {
    this.heard.push('resumed');
  }
}

eachDriver('the invalidation feed', (driver) => {
  let database: TestDatabase;
  const feeds: InvalidationFeed[] = [];
  beforeAll(async () => {
    database = await openMigratedDatabase(driver);
  });
  afterAll(async () => {
    for (const feed of feeds) await feed.stop();
    await database.close();
  });

  const publish = (scope: string) => database.db.query('SELECT publish_invalidation($1::text)', [scope]);
  /** The scope of a key change, as the trigger writes it; the label only tells the tests' keys apart. */
  const keyScope = (label: string) => `key:${createHash('sha256').update(label).digest('hex')}`;

  /** A feed on the real database whose listening state (and reachability) the test drives by hand. */
  const steeredFeed = async (pollMs?: number, overlapMs?: number) => {
    let state: ((listening: boolean) => void) | undefined;
    let message: ((payload: string) => void) | undefined;
    let unreachable = false;
    let reading = 0;
    const db: Database = {
      ...database.db,
      query: async (text: string, params?: readonly unknown[]) => {
        if (unreachable) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
        reading += 1;
        try {
          return await database.db.query(text, params);
        } finally {
          reading -= 1;
        }
      },
      listen: async (_channel, onMessage, onState) => {
        message = onMessage;
        state = onState;
        onState(true);
        return async () => {};
      },
    };
    const target = new Recorder();
    const feed = await startInvalidationFeed(db, target, { ...(pollMs === undefined ? {} : { pollMs }), ...(overlapMs === undefined ? {} : { overlapMs }) });
    feeds.push(feed);
    return {
      target,
      setListening: (listening: boolean) => state!(listening),
      notify: (payload: string) => message!(payload),
      setUnreachable: (value: boolean) => (unreachable = value),
      /** Reads of the log under way. */
      reads: () => reading,
    };
  };

  it('hands the scope of every notification of the real database to its target', async () => {
    const target = new Recorder();
    feeds.push(await startInvalidationFeed(database.db, target));
    await publish(keyScope('notified'));
    await publish('tenant:6c0c1d3e-9a59-4c47-8f7e-4d1c0b2a3e55');
    const scopes = () => target.heard.filter((scope) => scope !== '*' && scope !== 'resumed');
    await waitFor(() => scopes().length >= 2, 1_000, 'two notifications');
    // Each scope once, in order. A scope may also come twice: the feed reads the log once more
    // when its LISTEN connection comes up (what it may have missed before), and on a busy machine
    // that read can run after the publishes; evicting twice rather than missing one is the design.
    expect([...new Set(scopes())]).toEqual([keyScope('notified'), 'tenant:6c0c1d3e-9a59-4c47-8f7e-4d1c0b2a3e55']);
  });

  it('reads the scope after the sequence number of a payload, and passes on what it cannot read as such', async () => {
    const feed = await steeredFeed();
    feed.notify(`41 ${keyScope('payload')}`);
    feed.notify('42 tenant:6c0c1d3e-9a59-4c47-8f7e-4d1c0b2a3e55');
    // Not dropped: the cache is told that something it cannot place changed (and forgets everything).
    feed.notify('garbage');
    feed.notify('43 tenant:x');
    expect(feed.target.heard).toEqual([keyScope('payload'), 'tenant:6c0c1d3e-9a59-4c47-8f7e-4d1c0b2a3e55', '?', '?']);
  });

  it('while not listening, forgets everything once and then polls the log', async () => {
    const feed = await steeredFeed(20);
    feed.setListening(false);
    expect(feed.target.heard).toEqual(['*']);
    await publish(keyScope('polled'));
    await waitFor(() => feed.target.heard.includes(keyScope('polled')), 1_000, 'the polled scope');
    feed.setListening(true);
  });

  it('keeps its window while polls fail: the first poll that succeeds reads what came since it lost track', async () => {
    // An overlap of 50 ms against 400 ms of failing polls: a window moved by the failures would
    // start after the change and never read it.
    const feed = await steeredFeed(20, 50);
    feed.setListening(false);
    feed.setUnreachable(true);
    // Committed after the loss of track, not before it: a commit before would be in the window only if its round trip took under the 50 ms overlap.
    await publish(keyScope('during the outage'));
    await sleep(400);
    expect(feed.target.heard.filter((scope) => scope !== '*')).toEqual([]);
    feed.setUnreachable(false);
    await waitFor(() => feed.target.heard.includes(keyScope('during the outage')), 1_000, 'the change made during the outage');
    // Caught up: told so, after the scopes it read.
    await waitFor(() => feed.target.heard.includes('resumed'), 1_000, 'resumed');
    expect(feed.target.heard.indexOf('resumed')).toBeGreaterThan(feed.target.heard.indexOf(keyScope('during the outage')));
    feed.setListening(true);
  });

  it('stops polling once listening again', async () => {
    const feed = await steeredFeed(20);
    feed.setListening(false);
    await sleep(60);
    feed.setListening(true);
    // The read made on resuming (and a poll already under way) ends before the change, or it could read it: wait for them, not for 30 ms.
    await waitFor(() => feed.reads() === 0, 20_000, 'the reads under way to end');
    await publish(keyScope('after listening'));
    await sleep(150);
    expect(feed.target.heard).not.toContain(keyScope('after listening'));
  });

  it('misses no change committed while not listening, even when listening resumes before the first poll', async () => {
    // The listener retries after 200 ms and the poll first runs after 250 ms: a short blip ends
    // before any poll, so what changed during it must be caught when listening resumes.
    const feed = await steeredFeed();
    feed.setListening(false);
    expect(feed.target.heard).toEqual(['*']);
    await publish(keyScope('during the blip'));
    feed.setListening(true);
    // The read on resuming ends when a busy machine gets round to it: wait for what it hears, not for 400 ms.
    const heardAfter = () => feed.target.heard.slice(1);
    await waitFor(() => heardAfter().includes(keyScope('during the blip')) || heardAfter().includes('*'), 20_000, 'the read on resuming');
    const after = heardAfter();
    expect(after.includes(keyScope('during the blip')) || after.includes('*'), `heard after the blip: ${JSON.stringify(after)}`).toBe(true);
  });
});

describe.skipIf(!DRIVERS.includes('pg'))('two replicas on one PostgreSQL', () => {
  const REPLICA = 'replica-2';
  let database: TestDatabase;
  let secondPool: Database;
  let one: StartedApp;
  let two: StartedApp;
  let keysOne: KeyClient;
  let keysTwo: KeyClient;
  /** Every listening state replica 2 went through, in order. */
  const states: boolean[] = [];

  beforeAll(async () => {
    database = await openMigratedDatabase('pg');
    const url = new URL(database.url!);
    url.searchParams.set('application_name', REPLICA);
    // A second pool and listener of its own: a separate replica, as another process would be.
    const pool = openPg({ url: url.toString(), poolSize: 3 });
    secondPool = {
      ...pool,
      listen: (channel, onMessage, onState) =>
        pool.listen(channel, onMessage, (listening) => {
          states.push(listening);
          onState(listening);
        }),
    };
    one = await startServerOn(database.db);
    two = await startServerOn(secondPool);
    keysOne = keyClient(one.api, await one.as(identities.service()));
    keysTwo = keyClient(two.api, await two.as(identities.service()));
  });
  afterAll(async () => {
    await two.close();
    await one.close();
    await secondPool.close();
    await database.close();
  });

  const listenerPids = async () =>
    (
      await database.db.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND application_name = $1 AND query LIKE 'LISTEN%'`,
        [REPLICA],
      )
    ).map((row) => row.pid);

  /** Ends replica 2's listening connection from the server side and waits until it notices. */
  const dropListener = async () => {
    const [pid] = await listenerPids();
    expect(pid, 'the LISTEN connection of replica 2').toBeDefined();
    const drops = states.filter((listening) => !listening).length;
    await database.db.query('SELECT pg_terminate_backend($1)', [pid]);
    await waitFor(() => states.filter((listening) => !listening).length > drops, 2_000, 'replica 2 noticing the drop');
    return pid!;
  };

  const freshTenant = async (): Promise<{ tenant: Tenant; key: CreatedKey }> => {
    const tenant = await createTenant(one.api);
    const key = await keysOne.createKey(tenant.id);
    return { tenant, key };
  };

  it('replica 2 answers REVOKED within a second of a revoke on replica 1', async () => {
    const { key } = await freshTenant();
    expect(await keysTwo.code(key.key)).toBe('VALID');
    expect(await keysOne.code(key.key)).toBe('VALID');
    await keysOne.revoke(key.id);
    expect(await settle(keysTwo, key.key, {}, 'REVOKED')).toBe('REVOKED');
  });

  it('replica 2 answers TENANT_INACTIVE within a second of a cancel on replica 1', async () => {
    const { tenant, key } = await freshTenant();
    expect(await keysTwo.code(key.key)).toBe('VALID');
    await keysOne.cancel(tenant.id);
    expect(await settle(keysTwo, key.key, {}, 'TENANT_INACTIVE')).toBe('TENANT_INACTIVE');
  });

  it('replica 2 answers NOT_ENTITLED within a second of a product revoked on replica 1, VALID after a grant', async () => {
    const { tenant, key } = await freshTenant();
    await keysOne.grant(tenant.id, 'compliance');
    expect(await keysTwo.code(key.key, { product: 'compliance' })).toBe('VALID');
    await keysOne.revokeProduct(tenant.id, 'compliance');
    expect(await settle(keysTwo, key.key, { product: 'compliance' }, 'NOT_ENTITLED')).toBe('NOT_ENTITLED');
    await keysOne.grant(tenant.id, 'compliance');
    expect(await settle(keysTwo, key.key, { product: 'compliance' }, 'VALID')).toBe('VALID');
  });

  it("replica 2's entitlements list (served from its cache) shows a grant and a revoke on replica 1 within a second", async () => {
    const { tenant } = await freshTenant();
    const statusOnTwo = async () => {
      const answer = await two.api.get<{ items: Array<{ product: string; status: string }> }>(`/v1/entitlements?tenant_id=${tenant.id}`);
      expect(answer.status).toBe(200);
      return answer.body.items.find((item) => item.product === 'risk')?.status ?? 'none';
    };
    const settleOnTwo = async (expected: string) => {
      const deadline = performance.now() + 1_000;
      for (;;) {
        const status = await statusOnTwo();
        if (status === expected || performance.now() > deadline) return status;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    expect(await statusOnTwo()).toBe('none');
    await keysOne.grant(tenant.id, 'risk');
    expect(await settleOnTwo('active')).toBe('active');
    await keysOne.revokeProduct(tenant.id, 'risk');
    expect(await settleOnTwo('revoked')).toBe('revoked');
  });

  it('with its listening connection dropped, replica 2 still answers REVOKED within a second', async () => {
    const { key } = await freshTenant();
    expect(await keysTwo.code(key.key)).toBe('VALID');
    await dropListener();
    // Cached again while replica 2 is not listening; the revoke's notification cannot reach it.
    expect(await keysTwo.code(key.key)).toBe('VALID');
    await keysOne.revoke(key.id);
    expect(await settle(keysTwo, key.key, {}, 'REVOKED')).toBe('REVOKED');
  });

  it('listens again after a drop, and notifications flow again', async () => {
    const dropped = await dropListener();
    await waitFor(() => states.at(-1) === true, 5_000, 'replica 2 listening again');
    const [pid] = await listenerPids();
    expect(pid).toBeDefined();
    expect(pid).not.toBe(dropped);

    const { key } = await freshTenant();
    expect(await keysTwo.code(key.key)).toBe('VALID');
    await keysOne.revoke(key.id);
    expect(await settle(keysTwo, key.key, {}, 'REVOKED')).toBe('REVOKED');
  });
});
