// Verification of API keys, the hottest path of the platform: the format and checksum are
// checked first (no hashing, no lookup for a malformed key), then the facts come from the cache
// or, on a miss, from one query; the answer is computed from them at the moment of the request.
import { hashApiKey, isWellFormedApiKey } from '../domain/api-key.js';
import type { KeyCache } from '../caching/key-cache.js';
import { verdictChangesAt, verdictFor, type VerifyAnswer, type VerifyCode, type VerifyQuestion } from '../domain/key-verdict.js';
import { statusAt } from '../domain/lifecycle.js';
import { countVerification } from '../observability/metrics.js';
import { loadKeyFacts, type KeyFacts } from '../store/api-keys.js';
import type { Database } from '../store/database.js';
import { isUnreachable } from '../store/errors.js';
import type { UsageRecorder } from './usage-recorder.js';

export interface KeyVerifier {
  readonly cache: KeyCache;
  /**
   * The answer itself when the key's facts are cached (or the key is malformed), a promise only
   * when they must be loaded: a hot verify creates no promise and waits for no microtask.
   */
  verify(key: string, question: VerifyQuestion): VerifyAnswer | Promise<VerifyAnswer>;
}

function answer(code: VerifyCode, facts: KeyFacts | undefined, question: VerifyQuestion, now: Date): VerifyAnswer {
  if (!facts) return { valid: false, code };
  return {
    valid: code === 'VALID',
    code,
    key_id: facts.id,
    tenant_id: facts.tenantId,
    slug: facts.tenant.slug,
    tenant_status: statusAt(facts.tenant, now),
    plan: facts.tenant.plan,
    scopes: facts.scopes,
    products: facts.products,
    expires_at: facts.expiresAt?.toISOString() ?? null,
    valid_until: verdictChangesAt(facts, question, now)?.toISOString() ?? null,
  };
}

export function createKeyVerifier(options: {
  db: Database;
  pepper: string | null;
  clock: () => Date;
  usage: UsageRecorder | null;
  /** The cache the invalidation feed keeps honest (caching/setup.ts); a private one would never be. */
  cache: KeyCache;
}): KeyVerifier {
  const { cache } = options;

  // The hash of each key seen to exist, so a hot key skips the checksum and the HMAC. Bounded,
  // and only keys that exist get in: a flood of invented keys cannot fill it.
  const knownHashes = new Map<string, { hash: Buffer; hex: string }>();
  const KNOWN_HASHES_MAX = 100_000;
  const remember = (key: string, hashed: { hash: Buffer; hex: string }) => {
    if (knownHashes.size >= KNOWN_HASHES_MAX) knownHashes.delete(knownHashes.keys().next().value!);
    knownHashes.set(key, hashed);
  };

  /** A cache miss: one query per hash however many verifies wait for it (KeyCache.load). */
  const factsFor = ({ hash, hex }: { hash: Buffer; hex: string }): Promise<KeyFacts | undefined> =>
    cache.load(hex, () => loadKeyFacts(options.db, hash)).catch((error: unknown) => {
      // The database is away (a restart, a failover): keys that were verified just before keep
      // their last known facts for a while rather than every product's every call failing. The
      // invalidation feed emptied the cache because it could no longer hear of changes, which
      // an unreachable database cannot make anyway. Not when it is merely busy (pool wait,
      // too many connections): it is there, and its answer is the one to wait for. Unknown
      // keys still answer 503. Applied per waiter, outside the shared read, so last known facts
      // answer but are never kept as if freshly read.
      const lastKnown = isUnreachable(error) ? cache.lastKnown(hex) : undefined;
      if (lastKnown) return lastKnown;
      throw error;
    });

  const decide = (facts: KeyFacts | undefined, key: string, hashed: { hash: Buffer; hex: string }, question: VerifyQuestion): VerifyAnswer => {
    if (facts && !knownHashes.has(key)) remember(key, hashed);
    const now = options.clock();
    const code = verdictFor(facts, question, now);
    countVerification(code);
    if (facts && code === 'VALID') options.usage?.note(facts.id, now);
    return answer(code, facts, question, now);
  };

  return {
    cache,
    verify(key, question) {
      let hashed = knownHashes.get(key);
      if (!hashed) {
        if (!isWellFormedApiKey(key)) {
          countVerification('MALFORMED');
          return { valid: false, code: 'MALFORMED' };
        }
        const hash = hashApiKey(key, options.pepper);
        hashed = { hash, hex: hash.toString('hex') };
      }
      const cached = cache.get(hashed.hex);
      if (cached) return decide(cached.facts, key, hashed, question);
      const known = hashed;
      return factsFor(known).then((facts) => decide(facts, key, known, question));
    },
  };
}
