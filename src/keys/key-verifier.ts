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
  /**
   * The answer when it can be given without I/O (the key is malformed, or its facts are cached),
   * counted and noted as verify() does; undefined when the facts must be loaded, with nothing
   * counted, so the caller can hand the request to verify() instead.
   */
  answerNow(key: string, question: VerifyQuestion): VerifyAnswer | undefined;
}

// The answers that name no key, one object each (answers are never changed once given).
const MALFORMED: VerifyAnswer = Object.freeze({ valid: false, code: 'MALFORMED' });
const NOT_FOUND: VerifyAnswer = Object.freeze({ valid: false, code: 'NOT_FOUND' });

function answer(code: VerifyCode, facts: KeyFacts, question: VerifyQuestion, now: Date): VerifyAnswer {
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

  // Answers already given, by facts and question, with the span of time they hold for: the
  // cache replaces a key's facts with a new object whenever anything about the key changes, and
  // time alone changes nothing before valid_until. So a hot key's answer is built once, and the
  // same object is handed out (callers serialize it, never change it). Bounded per key: a caller
  // inventing scopes cannot make one key hold more than HELD_QUESTIONS_MAX answers.
  type Held = { answer: VerifyAnswer; code: VerifyCode; from: number; until: number };
  const held = new WeakMap<KeyFacts, Map<string, Held>>();
  const HELD_QUESTIONS_MAX = 16;

  const answerFor = (facts: KeyFacts, question: VerifyQuestion, now: Date): { answer: VerifyAnswer; code: VerifyCode } => {
    // Product codes and scopes hold no space (their patterns), so this names the question.
    const asked = `${question.product ?? ''} ${question.scope ?? ''}`;
    const time = now.getTime();
    let answers = held.get(facts);
    const found = answers?.get(asked);
    if (found && found.from <= time && time < found.until) return found;
    const code = verdictFor(facts, question, now);
    const given = Object.freeze(answer(code, facts, question, now));
    if (!answers || answers.size >= HELD_QUESTIONS_MAX) held.set(facts, (answers = new Map<string, Held>()));
    const until = given.valid_until === null || given.valid_until === undefined ? Infinity : Date.parse(given.valid_until);
    answers.set(asked, { answer: given, code, from: time, until });
    return { answer: given, code };
  };

  const decide = (facts: KeyFacts | undefined, key: string, hashed: { hash: Buffer; hex: string }, question: VerifyQuestion): VerifyAnswer => {
    if (!facts) {
      countVerification('NOT_FOUND');
      return NOT_FOUND;
    }
    if (!knownHashes.has(key)) remember(key, hashed);
    const now = options.clock();
    const { answer: given, code } = answerFor(facts, question, now);
    countVerification(code);
    if (code === 'VALID') options.usage?.note(facts.id, now);
    return given;
  };

  /** The key's hash, or null when the key is malformed (no hashing then). */
  const hashOf = (key: string): { hash: Buffer; hex: string } | null => {
    const known = knownHashes.get(key);
    if (known) return known;
    if (!isWellFormedApiKey(key)) return null;
    const hash = hashApiKey(key, options.pepper);
    return { hash, hex: hash.toString('hex') };
  };

  const malformed = (): VerifyAnswer => {
    countVerification('MALFORMED');
    return MALFORMED;
  };

  return {
    cache,
    verify(key, question) {
      const hashed = hashOf(key);
      if (!hashed) return malformed();
      const cached = cache.get(hashed.hex);
      if (cached) return decide(cached.facts, key, hashed, question);
      return factsFor(hashed).then((facts) => decide(facts, key, hashed, question));
    },
    answerNow(key, question) {
      const hashed = hashOf(key);
      if (!hashed) return malformed();
      const cached = cache.get(hashed.hex);
      return cached ? decide(cached.facts, key, hashed, question) : undefined;
    },
  };
}
