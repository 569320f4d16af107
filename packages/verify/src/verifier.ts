// createKeyVerifier: API key verification inside a product's own process. The first sight of a
// key (for a product) asks the registry; later calls are answered from what it said, read at the
// moment of each call (expires_at passes without asking; valid_until, the registry's "ask again
// from", sends the next call to the registry). The registry's change feed drops what changed.
//
// When a held answer may answer, in one rule: always for REVOKED, and for EXPIRED once
// expires_at has passed (neither ever turns back); otherwise only before valid_until, and only
//   - while the change stream is live and the question was sent after it became live (every
//     change since then reaches the cache, and evicts the answer before it could mislead), or
//   - within STALE_MS of sending the question, whatever the stream's state.
// So a drop of the stream (or a first connection still under way) makes every key ask the
// registry again at most every STALE_MS, rather than answer from facts nobody is watching; a
// reconnection does not restore trust in answers from before it, so nothing depends on the
// stream's replay of the gap (it is still resumed with Last-Event-ID, which drops anything of
// the gap that is held for the short bound). A revocation is refused within STALE_MS of its
// commit even while the stream is down, within the stream's delivery time (milliseconds) while
// it is live, and only a connection that dies silently delays it: by up to 2.5x the heartbeat,
// until the silence is noticed.
//
// An answer is not kept if something that concerns it (its key, its tenant, everything) was
// evicted while its question was out, and is asked again SETTLE_MS after such an eviction that
// came shortly before its question: the registry may have answered from a replica that had not
// heard of the change yet.
import './tick-shape.js';
import { instantOf, parseRegistryAnswer, type Answer, type Question } from './answer.js';
import { VerdictCache, type Held } from './cache.js';
import { StreamFollower, type ChangeEvent } from './follower.js';
import { sha256Hex } from './hash.js';

export type WhenUnreachable = { mode: 'last-known'; forMs: number } | 'fail-closed';

export interface KeyVerifierOptions {
  /** The registry's base URL, e.g. https://registry.internal. */
  registryUrl: string | URL;
  /** A service account's bearer token, or a function that returns a current one (called per request). */
  token: string | (() => string | Promise<string>);
  /** The product every verify asks about unless it says otherwise (a catalog code). */
  product?: string;
  /** The scope every verify requires unless it says otherwise. */
  scope?: string;
  /** Keys held at most; the least recently used go first. Default 10,000. */
  maxEntries?: number;
  /** How long NOT_FOUND and MALFORMED answers are kept. Default 5 s. */
  unknownKeyTtlMs?: number;
  /** Unknown keys held at most. Default 10,000. */
  maxUnknownEntries?: number;
  /**
   * While the registry cannot be reached: answer from the last facts known to be current for at
   * most `forMs` after they were last known current, or refuse every key not otherwise decided
   * with REGISTRY_UNAVAILABLE ('fail-closed', the default).
   */
  whenUnreachable?: WhenUnreachable;
  /** The registry's event stream heartbeat (EVENT_STREAM heartbeat, 15 s by default there). */
  heartbeatMs?: number;
  /** How long one verify question may take before the registry counts as unreachable. Default 2 s. */
  requestTimeoutMs?: number;
  /** Answers older than this ask again whatever happened: a last resort, never the mechanism. Default 10 min. */
  maxAgeMs?: number;
  /** Follow the change stream (default true). Without it every answer is trusted for STALE_MS only. */
  followChanges?: boolean;
  /** A fetch to use instead of the global one (a proxy agent, tests counting calls). */
  fetch?: typeof fetch;
  /** Failures worth a log line: the registry or the stream unreachable, an unreadable answer. No key in them. */
  onError?: (error: unknown) => void;
}

export interface VerifierStats {
  /** Whether the change stream is live now. */
  live: boolean;
  keys: number;
  unknown: number;
  /** Verify questions sent to the registry so far. */
  registryCalls: number;
  /** Calls answered without the registry. */
  hits: number;
  /** The seq of the last change event that arrived: how far this process has followed the stream (null: none yet). */
  lastEventSeq: string | null;
}

export interface KeyVerifier {
  /** The verdict for `key` now; never rejects for the key's sake (a bad product code rejects with TypeError). */
  verify(key: string, question?: Question): Promise<Answer>;
  /**
   * The verdict when it can be given from memory at once (a held answer, a recent unknown key, a
   * malformed key); undefined when verify() would have to ask the registry. The adapters call it
   * first, so a held answer costs no promise. Throws TypeError for a bad product code.
   */
  verifyNow(key: string, question?: Question): Answer | undefined;
  stats(): VerifierStats;
  /** The SHA-256 hashes held (the only name a key has here). */
  cachedHashes(): string[];
  /** Resolves once the change stream is live (tests, readiness), or rejects after timeoutMs. */
  whenLive(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

// How long an answer may stand unwatched: the bound on a revocation's delay while the change
// stream is down. Short, because it is that delay; long enough that a hot key asks a few times
// a second at most during an outage of the stream.
const STALE_MS = 500;
// How long after an eviction an answer concerning it is asked again: the time a registry replica
// may take to hear of a change another one made (NOTIFY, within milliseconds), and the bound on
// a revocation's delay should the answer have come from a replica that had not heard yet.
const SETTLE_MS = 1_000;
// Evictions remembered for the rule above, at most; past it nothing is kept until it settles.
const MAX_EVICTION_LOG = 10_000;
// The registry refuses keys longer than this with 400; they are MALFORMED without asking.
const MAX_KEY_LENGTH = 200;
const PRODUCT_CODE = /^[a-z0-9][a-z0-9_-]{0,63}$/;

const freeze = (answer: Answer): Answer => Object.freeze(answer);
const MALFORMED: Answer = freeze({ valid: false, code: 'MALFORMED' });
const UNAVAILABLE: Answer = freeze({ valid: false, code: 'REGISTRY_UNAVAILABLE' });

/** How a question to the registry ended: a key's answer, an unknown key, or no answer at all. */
type Outcome = { held: Held } | { answer: Answer } | { unreachable: true };
const UNREACHABLE: Outcome = { unreachable: true };

interface Eviction {
  at: number;
  keyIds: string[] | null;
  tenantId: string | null;
  /** Everything: an event this build cannot place. */
  all: boolean;
}

export function createKeyVerifier(options: KeyVerifierOptions): KeyVerifier {
  const base = new URL(options.registryUrl);
  const verifyUrl = new URL('v1/internal/api-keys/verify', withSlash(base));
  const streamUrl = new URL('v1/events/stream', withSlash(base));
  const doFetch = options.fetch ?? globalThis.fetch;
  const unknownTtlMs = options.unknownKeyTtlMs ?? 5_000;
  const whenUnreachable = options.whenUnreachable ?? 'fail-closed';
  const requestTimeoutMs = options.requestTimeoutMs ?? 2_000;
  const maxAgeMs = options.maxAgeMs ?? 10 * 60_000;
  const onError = options.onError ?? (() => {});
  // The last product code found good (a product's code asks about one, on every request).
  let checkedProduct = checkProduct(options.product);
  const cache = new VerdictCache(options.maxEntries ?? 10_000, options.maxUnknownEntries ?? 10_000);
  const inflight = new Map<string, Promise<Outcome>>();

  // The stream's state. Every change of it starts a new epoch; answers to questions sent in the
  // current epoch while it is live are the only ones trusted beyond STALE_MS.
  let epoch = 0;
  let live = false;
  // The last live epoch that ended, and when it was last heard from: its answers were known
  // current until then (the last-known fallback counts from there).
  let endedEpoch = -1;
  let endedHeardAt = 0;
  const liveWaiters = new Set<() => void>();

  const evictions: Eviction[] = [];
  let evictionOverflowUntil = 0;
  let registryCalls = 0;
  let hits = 0;

  const token = async (): Promise<string> => (typeof options.token === 'string' ? options.token : await options.token());
  const authorization = async () => ({ authorization: `Bearer ${await token()}` });

  const noteEviction = (eviction: Eviction) => {
    const horizon = eviction.at - SETTLE_MS - requestTimeoutMs;
    while (evictions.length > 0 && evictions[0]!.at < horizon) evictions.shift();
    if (evictions.length >= MAX_EVICTION_LOG) {
      evictions.length = 0;
      evictionOverflowUntil = eviction.at + SETTLE_MS + requestTimeoutMs;
      return;
    }
    evictions.push(eviction);
  };

  /**
   * Until when an answer to a question sent at `sentAt` may be kept: not at all (null) when
   * something that concerns it (its key, its tenant, everything) was evicted while the question
   * was out, since the answer may predate the change; until SETTLE_MS after such an eviction
   * that came shortly before the question, since the replica that answered may not have heard
   * of it yet; else for as long as the rules of read() allow (Infinity).
   */
  const keepUntil = (answer: Answer, sentAt: number): number | null => {
    if (sentAt < evictionOverflowUntil) return null;
    const since = sentAt - SETTLE_MS;
    for (let i = evictions.length - 1; i >= 0; i -= 1) {
      const eviction = evictions[i]!;
      if (eviction.at < since) break;
      const concerns =
        eviction.all ||
        eviction.tenantId === answer.tenant_id ||
        (eviction.keyIds !== null && answer.key_id !== undefined && eviction.keyIds.includes(answer.key_id));
      // The newest concerning eviction decides: it is the first one met from the end.
      if (concerns) return eviction.at >= sentAt ? null : eviction.at + SETTLE_MS;
    }
    return Infinity;
  };

  const onEvent = (event: ChangeEvent | null) => {
    const at = Date.now();
    const type = event?.type ?? '';
    // Keycloak's own bookkeeping (invites, organization sync) changes no verdict.
    if (event !== null && type.startsWith('keycloak.')) return;
    // A new key was unknown before: nothing held can be about it (unknown answers are not
    // evicted, and no one sends a key before it exists).
    if (event !== null && type === 'api_key.created') return;
    if (event !== null && type.startsWith('api_key.')) {
      // The key the event is about, and for a rotation the key it replaces (whose expiry moved).
      const ids = [event.data?.target?.id, event.data?.fields?.replaces].filter((id): id is string => typeof id === 'string');
      if (ids.length > 0) {
        for (const id of ids) cache.evictKey(id);
        noteEviction({ at, keyIds: ids, tenantId: null, all: false });
        return;
      }
    }
    const tenantId = event?.tenant_id;
    if (typeof tenantId === 'string') {
      // Tenants, entitlements, sales requests and anything newer: every key of the tenant.
      cache.evictTenant(tenantId);
      noteEviction({ at, keyIds: null, tenantId, all: false });
      return;
    }
    // No tenant named, or no event at all: nothing held can be vouched for.
    cache.clear();
    noteEviction({ at, keyIds: null, tenantId: null, all: true });
  };

  const follower =
    options.followChanges === false
      ? null
      : new StreamFollower({
          url: streamUrl,
          headers: authorization,
          fetch: doFetch,
          heartbeatMs: options.heartbeatMs ?? 15_000,
          onLive() {
            epoch += 1;
            live = true;
            for (const wake of liveWaiters) wake();
          },
          onDown(lastHeardAt) {
            endedEpoch = epoch;
            endedHeardAt = lastHeardAt;
            epoch += 1;
            live = false;
          },
          onEvent,
          onError,
        });

  /**
   * The answer `held` gives at `now` for `scope`, or null when it must not answer now. `fresh`:
   * the registry just gave it to the callers waiting for it; `cached`: a later call; `fallback`:
   * the registry could not be reached and whenUnreachable decides.
   */
  const read = (held: Held, scope: string | undefined, now: number, use: 'fresh' | 'cached' | 'fallback'): Answer | null => {
    const { answer } = held;
    if (answer.code === 'REVOKED') return answer;
    if (held.expiresAtMs !== null && held.expiresAtMs <= now) {
      return (held.expired ??= freeze({ ...answer, valid: false, code: 'EXPIRED' }));
    }
    if (use !== 'fresh') {
      if (held.validUntilMs !== null && held.validUntilMs <= now) return null;
      const watched = live && held.epoch === epoch;
      if (use === 'cached') {
        if (now >= held.recheckAt) return null;
        if (!watched && now - held.fetchedAt >= STALE_MS) return null;
        if (now - held.fetchedAt >= maxAgeMs) return null;
      } else {
        if (whenUnreachable === 'fail-closed') return null;
        // Known current while watched, and until the stream that watched it was last heard from.
        const knownAt = watched ? now : held.epoch === endedEpoch ? Math.max(held.fetchedAt, endedHeardAt) : held.fetchedAt;
        if (now - knownAt >= whenUnreachable.forMs) return null;
      }
    }
    if (scope === undefined || answer.code !== 'VALID' || held.scopes.includes(scope)) return answer;
    held.scopeRefusals ??= new Map();
    let refused = held.scopeRefusals.get(scope);
    if (refused === undefined) {
      refused = freeze({ ...answer, valid: false, code: 'INSUFFICIENT_SCOPE' });
      // Scopes come from the product's code, so they are few; the bound is for a product that
      // passes something of the request's as the scope.
      if (held.scopeRefusals.size < 64) held.scopeRefusals.set(scope, refused);
    }
    return refused;
  };

  /** The answer held for the hash and product (or the hash known to be no key), if it may still answer. */
  const fromMemory = (hash: string, product: string, scope: string | undefined, now: number): Answer | undefined => {
    const held = cache.held(hash, product, now);
    const answer = held !== undefined ? read(held, scope, now, 'cached') : cache.unknownAnswer(hash, now);
    if (answer === null || answer === undefined) return undefined;
    hits += 1;
    return answer;
  };

  /** Asks the registry about one key and product; the answer is kept when it may be. */
  const ask = async (key: string, hash: string, product: string): Promise<Outcome> => {
    const sentAt = Date.now();
    const sentEpoch = epoch;
    registryCalls += 1;
    let answer: Answer | null;
    try {
      const body: Record<string, string> = { key };
      if (product !== '') body.product = product;
      const response = await doFetch(verifyUrl, {
        method: 'POST',
        headers: { ...(await authorization()), 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(requestTimeoutMs),
      });
      if (response.status !== 200) {
        await response.body?.cancel();
        throw new Error(`the registry answered ${response.status} to a verify question`);
      }
      answer = parseRegistryAnswer(await response.json());
      if (answer === null) throw new Error('the registry answered a verify question with an unreadable body');
    } catch (error) {
      onError(error);
      return UNREACHABLE;
    }
    if (answer.code === 'NOT_FOUND' || answer.code === 'MALFORMED') {
      const unknown = freeze({ valid: false, code: answer.code });
      cache.rememberUnknown(hash, unknown, Date.now() + unknownTtlMs);
      return { answer: unknown };
    }
    const held: Held = {
      answer: freeze({ ...answer, scopes: Object.freeze([...(answer.scopes ?? [])]) }),
      scopes: answer.scopes ?? [],
      expiresAtMs: instantOf(answer.expires_at),
      // An older registry says nothing of time: maxAgeMs alone bounds the answer then.
      validUntilMs: instantOf(answer.valid_until),
      fetchedAt: sentAt,
      epoch: sentEpoch,
      recheckAt: Infinity,
    };
    const until = keepUntil(held.answer, sentAt);
    if (until !== null) cache.store(hash, product, { ...held, recheckAt: until });
    return { held };
  };

  /** What one waiter of a question gets: the fresh answer for its scope, or the fallback. */
  const answerFor = (outcome: Outcome, scope: string | undefined, hash: string, product: string): Answer => {
    const now = Date.now();
    if ('held' in outcome) return read(outcome.held, scope, now, 'fresh')!;
    if ('answer' in outcome) return outcome.answer;
    // The registry is unreachable: what we knew, if the configuration allows it and it is recent enough.
    const unknown = cache.unknownAnswer(hash, now);
    if (unknown !== undefined) return unknown;
    const held = cache.peek(hash, product);
    return (held !== undefined ? read(held, scope, now, 'fallback') : null) ?? UNAVAILABLE;
  };

  return {
    verifyNow(key, question) {
      const product = question?.product ?? options.product;
      if (product !== undefined && product !== checkedProduct) checkedProduct = checkProduct(product);
      if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH) return MALFORMED;
      return fromMemory(sha256Hex(key), product ?? '', question?.scope ?? options.scope, Date.now());
    },
    verify(key, question) {
      const product = question?.product ?? options.product;
      const scope = question?.scope ?? options.scope;
      if (product !== undefined && product !== checkedProduct) {
        try {
          checkedProduct = checkProduct(product);
        } catch (error) {
          return Promise.reject(error instanceof Error ? error : new TypeError(String(error)));
        }
      }
      if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_LENGTH) return Promise.resolve(MALFORMED);
      const hash = sha256Hex(key);
      const productKey = product ?? '';
      const known = fromMemory(hash, productKey, scope, Date.now());
      if (known !== undefined) return Promise.resolve(known);
      // Concurrent first sights of a key share one question; the key travels in it and nowhere else.
      const flightKey = `${hash}\n${productKey}`;
      let flight = inflight.get(flightKey);
      if (flight === undefined) {
        flight = ask(key, hash, productKey).finally(() => inflight.delete(flightKey));
        inflight.set(flightKey, flight);
      }
      return flight.then((result) => answerFor(result, scope, hash, productKey));
    },
    stats: () => ({ live, ...cache.size, registryCalls, hits, lastEventSeq: follower?.lastSeq ?? null }),
    cachedHashes: () => cache.hashes(),
    whenLive(timeoutMs = 10_000) {
      if (live) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          liveWaiters.delete(done);
          reject(new Error(`the registry's change stream was not live within ${timeoutMs} ms`));
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          liveWaiters.delete(done);
          resolve();
        };
        liveWaiters.add(done);
      });
    },
    async close() {
      await follower?.close();
    },
  };
}

function withSlash(url: URL): URL {
  return url.pathname.endsWith('/') ? url : new URL(`${url.pathname}/`, url);
}

/** The product code itself, when it is one (or absent); a TypeError otherwise. */
export function checkProduct<P extends string | undefined>(product: P): P {
  if (product !== undefined && !PRODUCT_CODE.test(product)) throw new TypeError('product must be a catalog product code');
  return product;
}
