// The caches of the hot read paths and what keeps them honest, built once per process (service.ts,
// the tests and the OpenAPI writer start it the same way):
// - the key cache (verify) and the tenant cache (by-slug lookups, claims, entitlement lists);
// - the invalidation feed: other replicas' changes, by NOTIFY or, while that is down, by polling;
// - the database every route is handed: it evicts this replica's own writes at commit, so the
//   request after a change never answers from the old entry.
import type { Database } from '../store/database.js';
import { fanOut, startInvalidationFeed, type FeedOptions } from './invalidation-feed.js';
import { KeyCache } from './key-cache.js';
import { invalidatingOwnWrites } from './local-invalidation.js';
import { TenantCache } from './tenant-cache.js';

export interface Caching {
  /** API key facts by key hash, for verify. */
  keyCache: KeyCache;
  /** Tenants with their entitlements, by id and by slug. */
  tenantCache: TenantCache;
  /**
   * The database as routes must use it: each write transaction, once committed, evicts what it
   * changed from both caches of this replica. Queries outside transactions pass through as they are.
   */
  db: Database;
  stop(): Promise<void>;
}

export async function startCaching(db: Database, options: { feed?: FeedOptions } = {}): Promise<Caching> {
  const keyCache = new KeyCache();
  const tenantCache = new TenantCache(db);
  // One target for the feed and for own writes alike: a change is never told to one cache only.
  const both = fanOut([keyCache, tenantCache]);
  const feed = await startInvalidationFeed(db, both, options.feed);
  return {
    keyCache,
    tenantCache,
    db: invalidatingOwnWrites(db, both),
    stop: () => feed.stop(),
  };
}
