// The verify cache: key facts by hash, so a hot verify does no database work. Unknown hashes are
// cached too (a client retrying a wrong key must not cost a query per try). A miss is filled
// through load(), which shares one read among concurrent misses and keeps nothing a concurrent
// invalidation overtook (guarded-loader.ts). Entries are dropped when the invalidation feed names
// their key or their tenant, and after a TTL as a last resort. invalidateAll() (the feed may have
// missed changes) keeps the facts aside as last known, for the verifier to answer from while the
// database cannot be reached (see lastKnown()).
import type { KeyFacts } from '../store/api-keys.js';
import { GuardedLoader } from './guarded-loader.js';
import type { InvalidationScope } from './scope.js';

interface Entry {
  facts: KeyFacts;
  expiresAt: number;
}

const NO_KEY = { facts: undefined };

export interface KeyCacheOptions {
  maxEntries?: number;
  maxUnknown?: number;
  ttlMs?: number;
  /** How long after invalidateAll() the facts it dropped may still answer while the database is unreachable. */
  lastKnownMs?: number;
  now?: () => number;
}

export class KeyCache {
  private readonly entries = new Map<string, Entry>();
  /**
   * Hashes known to be no key, kept apart and smaller: well-formed keys are free to invent, and a
   * flood of them must not push the real keys out of `entries`.
   */
  private readonly unknown = new Map<string, number>();
  private readonly maxUnknown: number;
  private readonly byTenant = new Map<string, Set<string>>();
  /**
   * Facts of existing keys as they were when invalidateAll() dropped them, until one deadline for
   * them all. The feed calls invalidateAll() when it stops hearing of changes, and the usual
   * reason is that the database went away: then nothing can change, and without these every
   * verify of every key would answer 503 for as long as the outage lasts. They are served only
   * when a load fails because the database cannot be reached; changes named later drop them, and
   * resumed() forgets them all once the feed has caught up with the log again.
   */
  private readonly lastKnownFacts = new Map<string, KeyFacts>();
  private lastKnownUntil = 0;
  private readonly lastKnownMs: number;
  private readonly maxEntries: number;
  private readonly ttlMs: number;
  private readonly now: () => number;
  /** Misses in flight; every invalidation starts a new generation of them. */
  private readonly loads = new GuardedLoader<string, KeyFacts | undefined>();
  hits = 0;
  misses = 0;

  constructor(options: KeyCacheOptions = {}) {
    // Room for every live key of a large platform; past it the oldest entries go first.
    this.maxEntries = options.maxEntries ?? 100_000;
    this.maxUnknown = options.maxUnknown ?? 10_000;
    // Invalidation is the real mechanism; the TTL bounds the damage if a notice were ever lost.
    this.ttlMs = options.ttlMs ?? 5 * 60 * 1000;
    // Long enough for a PostgreSQL restart or failover. A replica cut off from a database that
    // other replicas still reach could miss a revocation for this long; it is unready meanwhile
    // (/readyz answers 503), so the load balancer takes it out of rotation well before.
    this.lastKnownMs = options.lastKnownMs ?? 60 * 1000;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size + this.unknown.size;
  }

  /** The cached facts (undefined facts: known to be no key); null when not cached. */
  get(hashHex: string): { facts: KeyFacts | undefined } | null {
    const entry = this.entries.get(hashHex);
    if (!entry) {
      const unknownUntil = this.unknown.get(hashHex);
      if (unknownUntil !== undefined && unknownUntil > this.now()) {
        this.hits += 1;
        return NO_KEY;
      }
      if (unknownUntil !== undefined) this.unknown.delete(hashHex);
      this.misses += 1;
      return null;
    }
    if (entry.expiresAt <= this.now()) {
      this.drop(hashHex);
      this.misses += 1;
      return null;
    }
    this.hits += 1;
    return entry;
  }

  /**
   * A miss: the facts `read` finds for the hash (undefined: no such key), one read per hash
   * however many verifies wait for it. They are kept unless an invalidation came in while
   * `read` ran; a verify after an invalidation (this replica's own revoke, say) never joins a
   * read that began before it and may have seen the old row.
   */
  load(hashHex: string, read: () => Promise<KeyFacts | undefined>): Promise<KeyFacts | undefined> {
    return this.loads.load(hashHex, read, (facts) => this.store(hashHex, facts));
  }

  /**
   * The facts of an existing key as they were when the cache lost track of changes, if that was
   * less than lastKnownMs ago, the feed has not caught up since and nothing named the key or its
   * tenant meanwhile. Only for a verify whose load failed because the database is unreachable.
   */
  lastKnown(hashHex: string): KeyFacts | undefined {
    if (!this.lastKnownLive()) return undefined;
    return this.lastKnownFacts.get(hashHex);
  }

  /** The feed hears of every change again: what was kept aside is no longer needed. */
  resumed(): void {
    this.lastKnownFacts.clear();
  }

  /** Whether anything is kept aside; forgets it all once the deadline has passed. */
  private lastKnownLive(): boolean {
    if (this.lastKnownFacts.size === 0) return false;
    if (this.now() < this.lastKnownUntil) return true;
    this.lastKnownFacts.clear();
    return false;
  }

  private store(hashHex: string, facts: KeyFacts | undefined): void {
    this.lastKnownFacts.delete(hashHex);
    if (!facts) {
      if (this.unknown.size >= this.maxUnknown) {
        const oldest = this.unknown.keys().next().value;
        if (oldest !== undefined) this.unknown.delete(oldest);
      }
      this.unknown.set(hashHex, this.now() + this.ttlMs);
      return;
    }
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.drop(oldest);
    }
    this.entries.set(hashHex, { facts, expiresAt: this.now() + this.ttlMs });
    let hashes = this.byTenant.get(facts.tenantId);
    if (!hashes) this.byTenant.set(facts.tenantId, (hashes = new Set()));
    hashes.add(hashHex);
  }

  invalidate(scope: InvalidationScope): void {
    this.loads.invalidate();
    switch (scope.kind) {
      case 'key':
        this.drop(scope.keyHashHex);
        return;
      case 'tenant': {
        const { tenantId } = scope;
        for (const hash of this.byTenant.get(tenantId) ?? []) this.entries.delete(hash);
        this.byTenant.delete(tenantId);
        // A scan, but only between a loss of track and the feed catching up (or the deadline).
        if (this.lastKnownLive()) {
          for (const [hash, facts] of this.lastKnownFacts) if (facts.tenantId === tenantId) this.lastKnownFacts.delete(hash);
        }
        return;
      }
      case 'unrecognized':
        // Some change this build cannot place: nothing can be trusted, the kept facts included.
        this.invalidateAll();
        this.lastKnownFacts.clear();
        return;
    }
  }

  invalidateAll(): void {
    this.loads.invalidate();
    const now = this.now();
    // The deadline starts at the first loss of track and is not extended by the next ones (the
    // feed repeats this while its polls fail); facts loaded in between replace older ones.
    if (!this.lastKnownLive()) this.lastKnownUntil = now + this.lastKnownMs;
    for (const [hash, entry] of this.entries) if (entry.expiresAt > now) this.lastKnownFacts.set(hash, entry.facts);
    this.entries.clear();
    this.unknown.clear();
    this.byTenant.clear();
  }

  private drop(hashHex: string): void {
    this.unknown.delete(hashHex);
    this.lastKnownFacts.delete(hashHex);
    const entry = this.entries.get(hashHex);
    this.entries.delete(hashHex);
    if (entry?.facts) this.byTenant.get(entry.facts.tenantId)?.delete(hashHex);
  }
}
