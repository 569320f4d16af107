// How both caches fill a miss from the database. Two guards, which every cache in front of data
// that other code changes needs:
// - concurrent misses of one key share one read: a burst of requests for a cold key (a restart,
//   an eviction) costs one query, not one per request;
// - a read that an invalidation overtook is not kept. The read may have seen the row before the
//   change committed; kept, it would serve the old answer until the TTL. So every invalidation
//   starts a new generation: reads begun before it still answer their own callers (they asked
//   before the change), but their results are not kept and nobody who asks later joins them.
// Only misses come here. A hit is answered by the cache itself, synchronously, without a promise.

export class GuardedLoader<K, V> {
  private generation = 0;
  /** Reads in flight of the current generation; replaced, not cleared, by invalidate(). */
  private inFlight = new Map<K, Promise<V>>();

  /** Something the reads depend on may have changed: reads in flight are no longer joined or kept. */
  invalidate(): void {
    this.generation += 1;
    this.inFlight = new Map();
  }

  /**
   * The value for `key`: joins the read of `key` in flight in this generation, or starts `read`.
   * `keep` receives the value once the read succeeds, only if no invalidate() came meanwhile, and
   * once per read however many callers share it. A failed read is kept nowhere: its error
   * reaches every caller that shares it, and the next load() reads again.
   */
  load(key: K, read: () => Promise<V>, keep: (value: V) => void): Promise<V> {
    const joined = this.inFlight.get(key);
    if (joined) return joined;
    const generation = this.generation;
    const inFlight = this.inFlight;
    // Started at once; a read that throws before returning its promise fails like one that rejects.
    const started = new Promise<V>((resolve) => resolve(read()));
    const loading = started.then(
      (value) => {
        inFlight.delete(key);
        if (generation === this.generation) keep(value);
        return value;
      },
      (error: unknown) => {
        inFlight.delete(key);
        throw error;
      },
    );
    inFlight.set(key, loading);
    return loading;
  }
}
