// Tenants as the hot read paths need them (the portal's by-slug lookup on every request, Keycloak's
// claims at every token): their rows and entitlements, by id and by slug. Entries are dropped when
// the invalidation feed names their tenant; misses for one tenant share one query. Unknown slugs
// are not remembered: a tenant created a moment later must be found at once.
import type { Database } from '../store/database.js';
import { loadTenantFacts, type TenantFacts } from '../store/tenant-facts.js';

export interface TenantCacheOptions {
  maxEntries?: number;
  ttlMs?: number;
}

export class TenantCache {
  private readonly byId = new Map<string, { facts: TenantFacts; expiresAt: number }>();
  private readonly idBySlug = new Map<string, string>();
  private readonly loading = new Map<string, Promise<TenantFacts | undefined>>();
  private generation = 0;
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
    // Shared within one generation only: a read after an invalidation (this replica's own
    // write) must not join a load that began before the write committed.
    const key = `${this.generation}:${'id' in by ? `id:${by.id.toLowerCase()}` : `slug:${by.slug}`}`;
    let pending = this.loading.get(key);
    if (!pending) {
      const snapshot = this.generation;
      pending = loadTenantFacts(this.db, by).finally(() => this.loading.delete(key));
      this.loading.set(key, pending);
      const facts = await pending;
      if (facts && snapshot === this.generation) this.remember(facts);
      return facts;
    }
    return pending;
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

  invalidate(scope: string): void {
    if (!scope.startsWith('tenant:')) return;
    this.generation += 1;
    this.forget(scope.slice('tenant:'.length));
  }

  invalidateAll(): void {
    this.generation += 1;
    this.byId.clear();
    this.idBySlug.clear();
  }
}
