// Tenants as the hot read paths need them (the portal's by-slug lookup on every request, Keycloak's
// claims at every token): their rows and entitlements, by id and by slug. Entries are dropped when
// the invalidation feed names their tenant; misses share one query and a query an invalidation
// overtook is not kept (guarded-loader.ts). Unknown slugs are not remembered: a tenant created a
// moment later must be found at once.
import type { Database } from '../store/database.js';
import { loadTenantFacts, type TenantFacts } from '../store/tenant-facts.js';
import { GuardedLoader } from './guarded-loader.js';
import type { InvalidationScope } from './scope.js';

export interface TenantCacheOptions {
  maxEntries?: number;
  ttlMs?: number;
}

export class TenantCache {
  private readonly byId = new Map<string, { facts: TenantFacts; expiresAt: number }>();
  private readonly idBySlug = new Map<string, string>();
  /** Misses in flight, by 'id:<id>' or 'slug:<slug>'; every invalidation starts a new generation. */
  private readonly loads = new GuardedLoader<string, TenantFacts | undefined>();
  private readonly maxEntries: number;
  private readonly ttlMs: number;

  constructor(
    private readonly db: Database,
    options: TenantCacheOptions = {},
  ) {
    // Every tenant of a large platform fits; beyond that the oldest entries go first.
    this.maxEntries = options.maxEntries ?? 50_000;
    // Invalidation is the real mechanism; the TTL bounds the damage if a notice were ever lost.
    this.ttlMs = options.ttlMs ?? 5 * 60 * 1000;
  }

  async byIdOrSlug(by: { id: string } | { slug: string }): Promise<TenantFacts | undefined> {
    const id = 'id' in by ? by.id.toLowerCase() : this.idBySlug.get(by.slug);
    const entry = id === undefined ? undefined : this.byId.get(id);
    if (entry && entry.expiresAt > Date.now()) return entry.facts;
    const key = 'id' in by ? `id:${by.id.toLowerCase()}` : `slug:${by.slug}`;
    return this.loads.load(
      key,
      () => loadTenantFacts(this.db, by),
      (facts) => {
        if (facts) this.remember(facts);
      },
    );
  }

  private remember(facts: TenantFacts): void {
    if (this.byId.size >= this.maxEntries) {
      const oldest = this.byId.keys().next().value;
      if (oldest !== undefined) this.forget(oldest);
    }
    this.byId.set(facts.tenant.id, { facts, expiresAt: Date.now() + this.ttlMs });
    this.idBySlug.set(facts.tenant.slug, facts.tenant.id);
  }

  private forget(id: string): void {
    const entry = this.byId.get(id);
    this.byId.delete(id);
    if (entry) this.idBySlug.delete(entry.facts.tenant.slug);
  }

  invalidate(scope: InvalidationScope): void {
    switch (scope.kind) {
      case 'key':
        // A key's own row is no part of a tenant's facts.
        return;
      case 'tenant':
        this.loads.invalidate();
        this.forget(scope.tenantId);
        return;
      case 'unrecognized':
        // Some change this build cannot place: it may have been to any tenant.
        this.invalidateAll();
        return;
    }
  }

  invalidateAll(): void {
    this.loads.invalidate();
    this.byId.clear();
    this.idBySlug.clear();
  }
}
