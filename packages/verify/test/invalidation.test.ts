// What the change stream does for the verifier, timed: a revocation, a freeze, a revoked
// product, a narrowed key and a rotation are refused within a second of the change's answer,
// while the stream is live, across a drop of it and while the registry is unreachable. In the
// timed group (vitest.config.ts): its deadlines are about time.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tenant } from '../../../src/http/schemas/tenant.js';
import { createTenant } from '../../../test/support/factories.js';
import type { Client } from '../../../test/support/http.js';
import type { TestServer } from '../../../test/support/server.js';
import { createKeyVerifier, type KeyVerifier, type Question, type VerifyCode } from '../src/index.js';
import { HEARTBEAT_MS, createKey, ok, startProxy, startRegistry, until, verifiersFor } from './support.js';

// The promise: a change is refused within a second of its answer.
const WITHIN_MS = 1_000;

let server: TestServer;
let api: Client;
let token: string;
const verifiers = verifiersFor(() => ({ url: server.url, token }));
const verifierWith = verifiers.make;

beforeAll(async () => {
  ({ server, api, token } = await startRegistry());
});
afterAll(async () => {
  await server.close();
});
/** A tenant with a product, whose setup changes have settled (verifier.ts SETTLE_MS). */
async function entitledTenant(): Promise<Tenant> {
  const tenant = await createTenant(api);
  await ok(api, 'PUT', `/v1/entitlements/${tenant.id}/compliance`);
  await sleep(1_100);
  return tenant;
}

/** Verifies until the answer has `code`; fails if that takes longer than WITHIN_MS from `since`. */
async function refusedWithin(verifier: KeyVerifier, key: string, question: Question, code: VerifyCode, since: number): Promise<number> {
  for (;;) {
    const answer = await verifier.verify(key, question);
    const elapsed = performance.now() - since;
    if (answer.code === code) return elapsed;
    if (elapsed > WITHIN_MS) throw new Error(`still ${answer.code} ${Math.round(elapsed)} ms after the change (expected ${code})`);
    await sleep(5);
  }
}

/** Runs the change and answers when its answer arrived. */
async function changed(change: () => Promise<void>): Promise<number> {
  await change();
  return performance.now();
}

describe('eviction while the stream is live', () => {
  let tenant: Tenant;
  beforeAll(async () => {
    tenant = await entitledTenant();
  });

  it('a revoked key is refused within a second, after answering from memory before', async () => {
    const { verifier, calls } = await verifierWith({ product: 'compliance' });
    const created = await createKey(api, tenant.id);
    for (let i = 0; i < 20; i += 1) expect((await verifier.verify(created.key)).code).toBe('VALID');
    expect(calls.verifyCalls).toBe(1);
    const at = await changed(() => ok(api, 'DELETE', `/v1/api-keys/${created.id}`));
    await refusedWithin(verifier, created.key, {}, 'REVOKED', at);
  });

  it('a frozen tenant: every key of it refused within a second', async () => {
    const own = await entitledTenant();
    const { verifier } = await verifierWith();
    const keys = await Promise.all([createKey(api, own.id), createKey(api, own.id)]);
    for (const created of keys) {
      expect((await verifier.verify(created.key, { product: 'compliance' })).code).toBe('VALID');
      expect((await verifier.verify(created.key)).code).toBe('VALID');
    }
    const at = await changed(() => ok(api, 'POST', `/v1/tenants/${own.id}/cancel`));
    for (const created of keys) {
      await refusedWithin(verifier, created.key, { product: 'compliance' }, 'TENANT_INACTIVE', at);
      await refusedWithin(verifier, created.key, {}, 'TENANT_INACTIVE', at);
    }
  });

  it('a revoked product is refused within a second; the key stays valid for what else it may do', async () => {
    const own = await entitledTenant();
    const { verifier } = await verifierWith();
    const created = await createKey(api, own.id);
    expect((await verifier.verify(created.key, { product: 'compliance' })).code).toBe('VALID');
    const at = await changed(() => ok(api, 'DELETE', `/v1/entitlements/${own.id}/compliance`));
    await refusedWithin(verifier, created.key, { product: 'compliance' }, 'NOT_ENTITLED', at);
    expect((await verifier.verify(created.key)).code).toBe('VALID');
  });

  it('a narrowed key loses the scope within a second', async () => {
    const { verifier } = await verifierWith();
    const created = await createKey(api, tenant.id, { scopes: ['documents:read', 'documents:write'] });
    expect((await verifier.verify(created.key, { scope: 'documents:write' })).code).toBe('VALID');
    const at = await changed(() => ok(api, 'PATCH', `/v1/api-keys/${created.id}`, { scopes: ['documents:read'] }));
    await refusedWithin(verifier, created.key, { scope: 'documents:write' }, 'INSUFFICIENT_SCOPE', at);
  });

  it('a rotated key without grace expires within a second (the event names the new key; the old one is replaced)', async () => {
    const { verifier } = await verifierWith();
    const created = await createKey(api, tenant.id);
    expect((await verifier.verify(created.key)).code).toBe('VALID');
    let successor = '';
    const at = await changed(async () => {
      const rotated = await api.post<{ key: string }>(`/v1/api-keys/${created.id}/rotate`, { body: {} });
      expect(rotated.status, rotated.text).toBeLessThan(300);
      successor = rotated.body.key;
    });
    await refusedWithin(verifier, created.key, {}, 'EXPIRED', at);
    expect((await verifier.verify(successor)).code).toBe('VALID');
  });
});

describe('a drop of the stream', () => {
  it('resumes after the last event (Last-Event-ID) and misses no invalidation, during the gap or after it', async () => {
    const tenant = await entitledTenant();
    const { verifier, calls } = await verifierWith();
    const [during, after, steady] = await Promise.all([createKey(api, tenant.id), createKey(api, tenant.id), createKey(api, tenant.id)]);
    for (const created of [during, after, steady]) expect((await verifier.verify(created.key)).code).toBe('VALID');
    // The newest event the stream has sent (the keys' creation), to be resumed after.
    const feed = await api.get<{ items: Array<{ seq: number }> }>('/v1/events?limit=500');
    const newest = feed.body.items.at(-1)!.seq;
    await until(() => calls.streamRequests.length === 1, 'the first stream request');
    // Cut only once the stream has brought that event here: the relay may be a moment behind the API.
    await until(() => verifier.stats().lastEventSeq === String(newest), `the stream to deliver event ${newest}`);

    // Every connection of the registry cut at once (a proxy's restart): the stream with them.
    server.app.server.closeAllConnections();
    // The test's own pooled connection went with them: the first try may meet it closed.
    const revoke = (id: string) => ok(api, 'DELETE', `/v1/api-keys/${id}`).catch(() => ok(api, 'DELETE', `/v1/api-keys/${id}`));
    const at = await changed(() => revoke(during.id));
    await refusedWithin(verifier, during.key, {}, 'REVOKED', at);

    await until(() => verifier.stats().live && calls.streamRequests.length >= 2, 'the stream to be live again');
    expect(calls.streamRequests[1]!.get('last-event-id')).toBe(String(newest));
    const later = await changed(() => ok(api, 'DELETE', `/v1/api-keys/${after.id}`));
    await refusedWithin(verifier, after.key, {}, 'REVOKED', later);

    // An answer from before the drop is trusted for half a second after its question at most
    // (verifier.ts STALE_MS); past that it is asked again once, and then held again.
    await sleep(600);
    const before = calls.verifyCalls;
    for (let i = 0; i < 10; i += 1) expect((await verifier.verify(steady.key)).code).toBe('VALID');
    expect(calls.verifyCalls).toBe(before + 1);
  });

  it('a stream on which nothing arrives, not even a heartbeat, is dropped and reconnected', async () => {
    // A connection that died silently cannot be made with a real registry: a stub answers the
    // stream and then says nothing, and forwards verify questions to the real one.
    const requests: number[] = [];
    const silent = http.createServer((request, response) => {
      if (request.url?.startsWith('/v1/events/stream')) {
        requests.push(performance.now());
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        response.flushHeaders();
        return;
      }
      response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as AddressInfo;
      const verifier = createKeyVerifier({ registryUrl: `http://127.0.0.1:${port}`, token, heartbeatMs: 200 });
      verifiers.closeAfter(verifier);
      await until(() => requests.length >= 3, 'three stream connections', 20_000);
      // Each was given up on after twice the heartbeat of silence, not at once.
      expect(requests[1]! - requests[0]!).toBeGreaterThanOrEqual(400);
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});

describe('the registry unreachable', () => {
  it('fail-closed: held answers stop within a second, unknown keys answer REGISTRY_UNAVAILABLE, final verdicts stand', async () => {
    const tenant = await entitledTenant();
    const proxy = await startProxy(new URL(server.url));
    try {
      const { verifier } = await verifierWith({ registryUrl: proxy.url, whenUnreachable: 'fail-closed', requestTimeoutMs: 500 });
      const [held, revoked, revokedMeanwhile] = await Promise.all([createKey(api, tenant.id), createKey(api, tenant.id), createKey(api, tenant.id)]);
      await ok(api, 'DELETE', `/v1/api-keys/${revoked.id}`);
      expect((await verifier.verify(held.key)).code).toBe('VALID');
      expect((await verifier.verify(revokedMeanwhile.key)).code).toBe('VALID');
      expect((await verifier.verify(revoked.key)).code).toBe('REVOKED');

      const at = await changed(async () => proxy.cut());
      await refusedWithin(verifier, held.key, {}, 'REGISTRY_UNAVAILABLE', at);
      expect((await verifier.verify(revoked.key)).code).toBe('REVOKED');
      expect((await verifier.verify((await createKey(api, tenant.id)).key)).code).toBe('REGISTRY_UNAVAILABLE');
      await ok(api, 'DELETE', `/v1/api-keys/${revokedMeanwhile.id}`);

      proxy.mend();
      await verifier.whenLive(20_000);
      expect((await verifier.verify(held.key)).code).toBe('VALID');
      expect((await verifier.verify(revokedMeanwhile.key)).code).toBe('REVOKED');
    } finally {
      await proxy.close();
    }
  });

  it('last-known: held answers keep answering for forMs after the registry was last heard from, then REGISTRY_UNAVAILABLE', async () => {
    const tenant = await entitledTenant();
    const proxy = await startProxy(new URL(server.url));
    const forMs = 2_000;
    try {
      const { verifier } = await verifierWith({
        registryUrl: proxy.url,
        whenUnreachable: { mode: 'last-known', forMs },
        requestTimeoutMs: 500,
      });
      const held = await createKey(api, tenant.id, { scopes: ['a:b'] });
      expect((await verifier.verify(held.key)).code).toBe('VALID');
      proxy.cut();
      const cutAt = performance.now();
      // Well inside the bound (forMs from the last heartbeat, at most HEARTBEAT_MS before the cut).
      while (performance.now() - cutAt < forMs - HEARTBEAT_MS - 500) {
        expect((await verifier.verify(held.key)).code).toBe('VALID');
        expect((await verifier.verify(held.key, { scope: 'c:d' })).code).toBe('INSUFFICIENT_SCOPE');
        await sleep(50);
      }
      expect(verifier.stats().live).toBe(false);
      // A key never seen is not known at all.
      expect((await verifier.verify((await createKey(api, tenant.id)).key)).code).toBe('REGISTRY_UNAVAILABLE');
      await until(async () => (await verifier.verify(held.key)).code === 'REGISTRY_UNAVAILABLE', 'the bound to pass', 10_000);
      expect(performance.now() - cutAt).toBeGreaterThanOrEqual(forMs - HEARTBEAT_MS - 500);
    } finally {
      await proxy.close();
    }
  });
});
