// Wires the hot read paths together: the key cache and the tenant cache, the one invalidation feed
// that keeps both honest across replicas, and the batched last-used writer. main.ts and the
// tests start it the same way.
import { fanOut, startInvalidationFeed, type FeedOptions } from '../caching/invalidation-feed.js';
import { invalidatingOwnWrites } from '../caching/local-invalidation.js';
import { TenantCache } from '../caching/tenant-cache.js';
import type { Database } from '../store/database.js';
import { KeyCache } from './key-cache.js';
import { createKeyVerifier, type KeyVerifier } from './key-verifier.js';
import { UsageRecorder } from './usage-recorder.js';

// At most one last_used_at write per key per minute.
const USAGE_FLUSH_MS = 60_000;

export interface KeyVerification {
  verifier: KeyVerifier;
  /** The server-side pepper of key hashes; null hashes with plain SHA-256 (dev only). */
  pepper: string | null;
  usage: UsageRecorder;
  /** Tenants with their entitlements, for by-slug lookups and Keycloak claims. */
  tenants: TenantCache;
  /** The database for writers: each committed write evicts what it changed from this replica's caches at once. */
  writer: Database;
  stop(): Promise<void>;
}

export async function startKeyVerification(
  db: Database,
  options: { pepper: string | null; clock: () => Date; onError: (error: unknown) => void; feed?: FeedOptions },
): Promise<KeyVerification> {
  const cache = new KeyCache();
  const tenants = new TenantCache(db);
  const usage = new UsageRecorder(db, options.onError);
  const caches = fanOut([cache, tenants]);
  const feed = await startInvalidationFeed(db, caches, options.feed);
  usage.start(USAGE_FLUSH_MS);
  return {
    verifier: createKeyVerifier({ db, pepper: options.pepper, clock: options.clock, usage, cache }),
    pepper: options.pepper,
    usage,
    tenants,
    writer: invalidatingOwnWrites(db, caches),
    async stop() {
      await feed.stop();
      await usage.stop();
    },
  };
}
