// The loader both caches fill their misses with: concurrent misses share one read, a read an
// invalidation overtook is not kept (nor joined by later callers), and a failed read is kept
// nowhere while its error reaches everyone who waited on it. Reads here are promises the test
// settles by hand, so every interleaving is chosen, not raced.
import { describe, expect, it } from 'vitest';
import { GuardedLoader } from '../../src/caching/guarded-loader.js';

/** A read the test answers or fails when it chooses; counts how often it was started. */
function scriptedReads<V>() {
  const started: Array<{ resolve: (value: V) => void; reject: (error: unknown) => void }> = [];
  return {
    read: () => new Promise<V>((resolve, reject) => started.push({ resolve, reject })),
    get count() {
      return started.length;
    },
    answer: (index: number, value: V) => started[index]!.resolve(value),
    fail: (index: number, error: unknown) => started[index]!.reject(error),
  };
}

/** A loader whose kept values land in a map, as a cache's would. */
function cacheLike() {
  const kept = new Map<string, string>();
  const loader = new GuardedLoader<string, string>();
  const load = (key: string, read: () => Promise<string>) => loader.load(key, read, (value) => kept.set(key, value));
  return { kept, loader, load };
}

describe('GuardedLoader', () => {
  it('starts one read for any number of concurrent misses of one key, and keeps its value once', async () => {
    const { load, kept, loader } = cacheLike();
    const reads = scriptedReads<string>();
    let keeps = 0;
    const waiting = Array.from({ length: 50 }, () =>
      loader.load('k', reads.read, (value) => {
        keeps += 1;
        kept.set('k', value);
      }),
    );
    expect(reads.count).toBe(1);
    // Every caller holds the same promise: one settlement for all of them.
    expect(new Set(waiting).size).toBe(1);
    reads.answer(0, 'v1');
    expect(await Promise.all(waiting)).toEqual(Array(50).fill('v1'));
    expect(keeps).toBe(1);
    expect(kept.get('k')).toBe('v1');
    // The read is over: the next miss reads again (the cache, not the loader, answers hits).
    void load('k', reads.read);
    expect(reads.count).toBe(2);
  });

  it('reads different keys separately', async () => {
    const { load, kept } = cacheLike();
    const reads = scriptedReads<string>();
    const a = load('a', reads.read);
    const b = load('b', reads.read);
    expect(reads.count).toBe(2);
    reads.answer(1, 'for b');
    reads.answer(0, 'for a');
    expect([await a, await b]).toEqual(['for a', 'for b']);
    expect(Object.fromEntries(kept)).toEqual({ a: 'for a', b: 'for b' });
  });

  it('does not keep a value whose read an invalidation overtook, but still answers the callers that asked before it', async () => {
    const { load, kept, loader } = cacheLike();
    const reads = scriptedReads<string>();
    const before = load('k', reads.read);
    loader.invalidate();
    reads.answer(0, 'read before the change');
    expect(await before).toBe('read before the change');
    expect(kept.has('k')).toBe(false);
  });

  it('starts a new read for a miss after an invalidation, rather than joining the one in flight', async () => {
    const { load, kept, loader } = cacheLike();
    const reads = scriptedReads<string>();
    const before = load('k', reads.read);
    loader.invalidate();
    const after = load('k', reads.read);
    expect(reads.count).toBe(2);
    expect(after).not.toBe(before);
    // The old read answers last; the value kept must still be the new one.
    reads.answer(1, 'new');
    expect(await after).toBe('new');
    reads.answer(0, 'old');
    expect(await before).toBe('old');
    expect(kept.get('k')).toBe('new');
    // Misses after the new read joined it while it ran, not the old one.
    const again = load('k', reads.read);
    expect(reads.count).toBe(3);
    reads.answer(2, 'newer');
    expect(await again).toBe('newer');
  });

  it('lets concurrent misses after an invalidation share their own read', async () => {
    const { load, loader } = cacheLike();
    const reads = scriptedReads<string>();
    void load('k', reads.read);
    loader.invalidate();
    const later = [load('k', reads.read), load('k', reads.read), load('k', reads.read)];
    expect(reads.count).toBe(2);
    reads.answer(1, 'v');
    reads.answer(0, 'old');
    expect(await Promise.all(later)).toEqual(['v', 'v', 'v']);
  });

  it('keeps a value when the only invalidation came after the read had finished', async () => {
    const { load, kept, loader } = cacheLike();
    const reads = scriptedReads<string>();
    const loading = load('k', reads.read);
    reads.answer(0, 'v');
    await loading;
    loader.invalidate();
    // Forgetting what is kept is the cache's business on invalidation; the loader kept it once.
    expect(kept.get('k')).toBe('v');
  });

  it('keeps nothing from a failed read, hands its error to every waiter, and reads again on the next miss', async () => {
    const { load, kept } = cacheLike();
    const reads = scriptedReads<string>();
    const waiting = Array.from({ length: 5 }, () => load('k', reads.read));
    expect(reads.count).toBe(1);
    const failure = new Error('connect ECONNREFUSED');
    reads.fail(0, failure);
    const outcomes = await Promise.allSettled(waiting);
    for (const outcome of outcomes) expect(outcome).toEqual({ status: 'rejected', reason: failure });
    expect(kept.has('k')).toBe(false);

    const retry = load('k', reads.read);
    expect(reads.count).toBe(2);
    reads.answer(1, 'v');
    expect(await retry).toBe('v');
    expect(kept.get('k')).toBe('v');
  });

  it('treats a read that throws before returning its promise as a failed read', async () => {
    const { load, kept } = cacheLike();
    const failure = new Error('thrown at once');
    const loading = load('k', () => {
      throw failure;
    });
    expect(loading).toBeInstanceOf(Promise);
    await expect(loading).rejects.toBe(failure);
    expect(kept.has('k')).toBe(false);
    // Nothing was left in flight: the next miss reads.
    expect(await load('k', () => Promise.resolve('v'))).toBe('v');
  });
});
