// Verification of API keys as service.ts and the tests start it: the verifier over the key cache of
// caching/setup.ts (which the invalidation feed and this replica's own writes keep honest), and
// the batched last-used writer.
import type { KeyCache } from '../caching/key-cache.js';
import type { Database } from '../store/database.js';
import { createKeyVerifier, type KeyVerifier } from './key-verifier.js';
import { UsageRecorder } from './usage-recorder.js';

// At most one last_used_at write per key per minute.
const USAGE_FLUSH_MS = 60_000;

export interface KeyVerification {
  verifier: KeyVerifier;
  /** The server-side pepper of key hashes; null hashes with plain SHA-256 (dev only). */
  pepper: string | null;
  usage: UsageRecorder;
  /** Stops the usage timer and writes what it still holds. */
  stop(): Promise<void>;
}

/**
 * `db` serves the verifier's misses and the usage writes: neither runs a transaction, and the
 * last_used_at write publishes no invalidation (migration 0004), so no eviction wrapper is needed.
 */
export function startKeyVerification(
  db: Database,
  keyCache: KeyCache,
  options: { pepper: string | null; clock: () => Date; onError: (error: unknown) => void },
): KeyVerification {
  const usage = new UsageRecorder(db, options.onError);
  usage.start(USAGE_FLUSH_MS);
  return {
    verifier: createKeyVerifier({ db, pepper: options.pepper, clock: options.clock, usage, cache: keyCache }),
    pepper: options.pepper,
    usage,
    stop: () => usage.stop(),
  };
}
