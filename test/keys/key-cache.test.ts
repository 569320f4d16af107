// The verify cache on its own (TTL, size bound, invalidation scopes, the generation guard), and
// the verifier's use of it against a scripted database, so every query it makes is counted.
import { describe, expect, it } from 'vitest';
import { KeyCache } from '../../src/caching/key-cache.js';
import type { InvalidationScope } from '../../src/caching/scope.js';
import { generateApiKey, hashApiKey } from '../../src/domain/api-key.js';
import type { VerifyAnswer } from '../../src/domain/key-verdict.js';
import { createKeyVerifier } from '../../src/keys/key-verifier.js';
import type { UsageRecorder } from '../../src/keys/usage-recorder.js';
import type { KeyFacts } from '../../src/store/api-keys.js';
import type { Database } from '../../src/store/database.js';

const TENANT_A = '0a2b0e39-6a57-4a36-9a51-0c4f4a0d7a01';
const TENANT_B = '0a2b0e39-6a57-4a36-9a51-0c4f4a0d7a02';

function facts(id: string, tenantId = TENANT_A, overrides: Partial<KeyFacts> = {}): KeyFacts {
  return {
    id,
    tenantId,
    scopes: [],
    products: [],
    expiresAt: null,
    revokedAt: null,
    tenant: { slug: 'acme', status: 'active', trial_ends_at: null, plan: null },
    entitlements: [],
    ...overrides,
  };
}

/** Fills the cache the one way it is filled: a load whose read answers `found`. */
const put = (cache: KeyCache, hashHex: string, found: KeyFacts | undefined) => cache.load(hashHex, () => Promise.resolve(found));
const keyScope = (keyHashHex: string): InvalidationScope => ({ kind: 'key', keyHashHex });
const tenantScope = (tenantId: string): InvalidationScope => ({ kind: 'tenant', tenantId });
const UNRECOGNIZED: InvalidationScope = { kind: 'unrecognized' };

describe('KeyCache', () => {
  it('answers null for what it does not hold, and the facts for what it does', async () => {
    const cache = new KeyCache();
    expect(cache.get('aa')).toBeNull();
    const stored = facts('k1');
    await put(cache, 'aa', stored);
    expect(cache.get('aa')?.facts).toBe(stored);
    expect(cache.size).toBe(1);
    expect({ hits: cache.hits, misses: cache.misses }).toEqual({ hits: 1, misses: 1 });
  });

  it('holds "no such key" too, as an entry with undefined facts rather than a miss', async () => {
    const cache = new KeyCache();
    await put(cache, 'unknown', undefined);
    const entry = cache.get('unknown');
    expect(entry).not.toBeNull();
    expect(entry?.facts).toBeUndefined();
    expect(cache.hits).toBe(1);
  });

  it('keeps what invalidateAll() dropped as last known, until its deadline or until the feed names it', async () => {
    let now = 1_000;
    const cache = new KeyCache({ lastKnownMs: 500, now: () => now });
    const a = facts('k1', TENANT_A);
    const b = facts('k2', TENANT_B);
    await put(cache, 'aa', a);
    await put(cache, 'bb', b);
    expect(cache.lastKnown('aa')).toBeUndefined();

    cache.invalidateAll();
    expect(cache.get('aa')).toBeNull();
    expect(cache.lastKnown('aa')).toBe(a);
    expect(cache.lastKnown('bb')).toBe(b);

    // A second loss of track (the feed repeats it while polls fail) does not extend the deadline.
    now += 300;
    cache.invalidateAll();
    cache.invalidate(tenantScope(TENANT_B));
    expect(cache.lastKnown('bb')).toBeUndefined();
    now += 250;
    expect(cache.lastKnown('aa')).toBeUndefined();
  });

  it('forgets the last known facts when the feed catches up, or names a scope it does not know', async () => {
    const cache = new KeyCache();
    await put(cache, 'aa', facts('k1'));
    cache.invalidateAll();
    cache.resumed();
    expect(cache.lastKnown('aa')).toBeUndefined();
    await put(cache, 'aa', facts('k1'));
    cache.invalidateAll();
    cache.invalidate(UNRECOGNIZED);
    expect(cache.lastKnown('aa')).toBeUndefined();
  });

  it('replaces the last known facts with a fresh load', async () => {
    const cache = new KeyCache();
    await put(cache, 'aa', facts('k1'));
    cache.invalidateAll();
    await put(cache, 'aa', undefined);
    expect(cache.lastKnown('aa')).toBeUndefined();
  });

  it('forgets an entry once its TTL has passed, not before', async () => {
    let now = 1_000;
    const cache = new KeyCache({ ttlMs: 500, now: () => now });
    await put(cache, 'aa', facts('k1'));
    now = 1_499;
    expect(cache.get('aa')).not.toBeNull();
    now = 1_500;
    expect(cache.get('aa')).toBeNull();
    expect(cache.size).toBe(0);
    // Set again, the TTL counts from the new set.
    await put(cache, 'aa', facts('k1'));
    now = 1_999;
    expect(cache.get('aa')).not.toBeNull();
  });

  it('keeps at most maxEntries, dropping the oldest first', async () => {
    const cache = new KeyCache({ maxEntries: 3 });
    for (const hash of ['h1', 'h2', 'h3', 'h4']) await put(cache, hash, facts(hash));
    expect(cache.size).toBe(3);
    expect(cache.get('h1')).toBeNull();
    for (const hash of ['h2', 'h3', 'h4']) expect(cache.get(hash)).not.toBeNull();
  });

  it('keeps unknown hashes apart, so a flood of made-up keys cannot push real keys out', async () => {
    const cache = new KeyCache({ maxEntries: 3, maxUnknown: 2 });
    for (const hash of ['h1', 'h2', 'h3']) await put(cache, hash, facts(hash));
    for (let i = 0; i < 1000; i += 1) await put(cache, `made-up-${i}`, undefined);
    for (const hash of ['h1', 'h2', 'h3']) expect(cache.get(hash)?.facts?.id).toBe(hash);
    expect(cache.size).toBe(5);
    expect(cache.get('made-up-999')).toEqual({ facts: undefined });
    expect(cache.get('made-up-0')).toBeNull();
  });

  it('drops one key for key:<hash>, and leaves the others', async () => {
    const cache = new KeyCache();
    await put(cache, 'h1', facts('k1'));
    await put(cache, 'h2', facts('k2'));
    await put(cache, 'h3', undefined);
    cache.invalidate(keyScope('h1'));
    cache.invalidate(keyScope('h3'));
    expect(cache.get('h1')).toBeNull();
    expect(cache.get('h3')).toBeNull();
    expect(cache.get('h2')).not.toBeNull();
  });

  it("drops every key of a tenant for tenant:<id>, and leaves other tenants' and unknown hashes", async () => {
    const cache = new KeyCache();
    await put(cache, 'a1', facts('k1', TENANT_A));
    await put(cache, 'a2', facts('k2', TENANT_A));
    await put(cache, 'b1', facts('k3', TENANT_B));
    await put(cache, 'none', undefined);
    cache.invalidate(tenantScope(TENANT_A));
    expect(cache.get('a1')).toBeNull();
    expect(cache.get('a2')).toBeNull();
    expect(cache.get('b1')).not.toBeNull();
    expect(cache.get('none')).not.toBeNull();
    expect(cache.size).toBe(2);
    // The tenant's index was emptied with it: a key of the tenant cached later is found again.
    await put(cache, 'a3', facts('k4', TENANT_A));
    cache.invalidate(tenantScope(TENANT_A));
    expect(cache.get('a3')).toBeNull();
  });

  it('drops everything for invalidateAll and for a scope it does not know', async () => {
    const cache = new KeyCache();
    const fill = async () => {
      await put(cache, 'a1', facts('k1', TENANT_A));
      await put(cache, 'b1', facts('k2', TENANT_B));
      await put(cache, 'none', undefined);
      expect(cache.size).toBe(3);
    };
    await fill();
    cache.invalidateAll();
    expect(cache.size).toBe(0);
    await fill();
    cache.invalidate(UNRECOGNIZED);
    expect(cache.size).toBe(0);
  });

  it('does not store facts loaded before an invalidation that came in meanwhile', async () => {
    const cache = new KeyCache();
    /** A load whose read answers `found` only once the returned function is called. */
    const held = (hashHex: string, found: KeyFacts | undefined) => {
      let answer = () => {};
      const loading = cache.load(hashHex, () => new Promise((resolve) => (answer = () => resolve(found))));
      return { loading, answer: () => answer() };
    };

    const first = held('a1', facts('k1'));
    cache.invalidate(tenantScope(TENANT_B));
    first.answer();
    // Its caller asked before the change and gets what was read; nobody after it does.
    expect((await first.loading)?.id).toBe('k1');
    expect(cache.get('a1')).toBeNull();
    await put(cache, 'a1', facts('k1'));
    expect(cache.get('a1')).not.toBeNull();

    const second = held('a2', undefined);
    cache.invalidateAll();
    second.answer();
    await second.loading;
    expect(cache.get('a2')).toBeNull();
    // A load with nothing in between is kept.
    const quiet = held('a3', facts('k3'));
    quiet.answer();
    await quiet.loading;
    expect(cache.get('a3')).not.toBeNull();
  });
});

/** A database that answers loadKeyFacts from a map of hash hex -> facts, one query at a time. */
function scriptedDatabase(known: Map<string, KeyFacts>) {
  const calls: string[] = [];
  let gate: Promise<void> | null = null;
  let failing: Error | null = null;
  const query = async <Row>(_text: string, params: readonly unknown[] = []): Promise<Row[]> => {
    const hex = (params[0] as Buffer).toString('hex');
    calls.push(hex);
    // The row is read when the query runs; the answer may arrive later (see hold()).
    const found = known.get(hex);
    if (gate) await gate;
    if (failing) throw failing;
    if (!found) return [];
    return [
      {
        id: found.id,
        tenant_id: found.tenantId,
        scopes: found.scopes,
        products: found.products,
        expires_at: found.expiresAt,
        revoked_at: found.revokedAt,
        slug: found.tenant.slug,
        status: found.tenant.status,
        plan: found.tenant.plan,
        entitlements: found.entitlements.map((e) => ({ ...e, trial_ends_at: e.trial_ends_at?.toISOString() ?? null })),
      } as Row,
    ];
  };
  const db = { query } as unknown as Database;
  return {
    db,
    calls,
    /** Holds every query until the returned function is called. */
    hold(): () => void {
      let release = () => {};
      gate = new Promise<void>((resolve) => (release = resolve));
      return () => {
        gate = null;
        release();
      };
    },
    /** Every query fails: `true` as an unreachable server does, or with the given error. */
    fail(on: boolean | Error) {
      failing = on === true ? Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) : on || null;
    },
  };
}

describe('the verifier with its cache', () => {
  const NOW = new Date('2026-11-27T10:00:00.000Z');
  const PEPPER = 'pepper-for-the-key-cache-test-0123456789';
  const setup = () => {
    const key = generateApiKey();
    const hex = hashApiKey(key, PEPPER).toString('hex');
    const known = new Map([[hex, facts('key-1', TENANT_A, { scopes: ['documents:read'] })]]);
    const scripted = scriptedDatabase(known);
    const noted: Array<[string, Date]> = [];
    const usage = { note: (id: string, at: Date) => noted.push([id, at]) } as unknown as UsageRecorder;
    const cache = new KeyCache();
    const verifier = createKeyVerifier({ db: scripted.db, pepper: PEPPER, clock: () => NOW, usage, cache });
    return { key, hex, known, scripted, noted, cache, verifier };
  };

  it('answers MALFORMED without a query or a cache entry', async () => {
    const { verifier, scripted, cache } = setup();
    const key = generateApiKey();
    for (const text of ['', 'bp_', `${key.slice(0, -1)}${key.endsWith('0') ? '1' : '0'}`, key.toUpperCase()]) {
      expect(await verifier.verify(text, {})).toEqual({ valid: false, code: 'MALFORMED' });
    }
    expect(scripted.calls).toEqual([]);
    expect(cache.size).toBe(0);
  });

  it('queries once for a key, then answers from the cache', async () => {
    const { verifier, scripted, key, hex } = setup();
    for (let i = 0; i < 5; i += 1) expect((await verifier.verify(key, {})).code).toBe('VALID');
    expect(scripted.calls).toEqual([hex]);
  });

  it('queries once for an unknown key too', async () => {
    const { verifier, scripted } = setup();
    const unknown = generateApiKey();
    for (let i = 0; i < 5; i += 1) expect(await verifier.verify(unknown, {})).toEqual({ valid: false, code: 'NOT_FOUND' });
    expect(scripted.calls).toHaveLength(1);
  });

  it('shares one query among concurrent misses of one key', async () => {
    const { verifier, scripted, key } = setup();
    const release = scripted.hold();
    const answers = Array.from({ length: 10 }, () => verifier.verify(key, {}));
    // Misses: each caller waits for the load.
    expect(answers.every((answer) => answer instanceof Promise)).toBe(true);
    release();
    for (const answer of await Promise.all(answers as Array<Promise<VerifyAnswer>>)) expect(answer.code).toBe('VALID');
    expect(scripted.calls).toHaveLength(1);
    // Hits: the answer itself, without a promise.
    const cached = verifier.verify(key, {});
    expect(cached).not.toBeInstanceOf(Promise);
    expect((cached as VerifyAnswer).code).toBe('VALID');
  });

  it('does not cache facts whose load raced an invalidation: the next verify loads again', async () => {
    const { verifier, scripted, key, hex, known, cache } = setup();
    const release = scripted.hold();
    const first = verifier.verify(key, {});
    // The key is revoked while its facts are on their way from the database.
    cache.invalidate(keyScope(hex));
    known.set(hex, facts('key-1', TENANT_A, { revokedAt: NOW }));
    release();
    expect((await first).code).toBe('VALID');
    expect((await verifier.verify(key, {})).code).toBe('REVOKED');
    expect(scripted.calls).toHaveLength(2);
  });

  it('caches nothing from a failed query, so the next verify asks again', async () => {
    const { verifier, scripted, key } = setup();
    scripted.fail(true);
    await expect(verifier.verify(key, {})).rejects.toThrow(/ECONNREFUSED/);
    scripted.fail(false);
    expect((await verifier.verify(key, {})).code).toBe('VALID');
    expect(scripted.calls).toHaveLength(2);
  });

  it('answers from last known facts only while the database is unreachable and the feed has not caught up', async () => {
    const { verifier, scripted, key, cache } = setup();
    expect((await verifier.verify(key, {})).code).toBe('VALID');
    // The feed lost track (the listening connection dropped with the database).
    cache.invalidateAll();
    scripted.fail(true);
    expect((await verifier.verify(key, {})).code).toBe('VALID');
    // Up but busy (every pooled connection taken): its answer is the one to wait for.
    scripted.fail(new Error('timeout exceeded when trying to connect'));
    await expect(verifier.verify(key, {})).rejects.toThrow(/timeout exceeded/);
    scripted.fail(Object.assign(new Error('sorry, too many clients already'), { code: '53300' }));
    await expect(verifier.verify(key, {})).rejects.toThrow(/too many clients/);
    // The feed read the log again: nothing kept aside is served any more.
    cache.resumed();
    scripted.fail(true);
    await expect(verifier.verify(key, {})).rejects.toThrow(/ECONNREFUSED/);
  });

  it('does not answer a revoked key from last known facts once the feed names it', async () => {
    const { verifier, scripted, key, hex, cache } = setup();
    expect((await verifier.verify(key, {})).code).toBe('VALID');
    cache.invalidateAll();
    cache.invalidate(keyScope(hex));
    scripted.fail(true);
    await expect(verifier.verify(key, {})).rejects.toThrow(/ECONNREFUSED/);
  });

  it('notes the use of VALID answers only', async () => {
    const { verifier, key, noted } = setup();
    expect((await verifier.verify(key, { scope: 'documents:write' })).code).toBe('INSUFFICIENT_SCOPE');
    expect((await verifier.verify(key, { product: 'risk' })).code).toBe('NOT_ENTITLED');
    expect((await verifier.verify(generateApiKey(), {})).code).toBe('NOT_FOUND');
    expect(noted).toEqual([]);
    expect((await verifier.verify(key, { scope: 'documents:read' })).code).toBe('VALID');
    expect(noted).toEqual([['key-1', NOW]]);
  });
});
