// The verdicts this process has seen, by the SHA-256 of the key (hash.ts) and then by the product
// asked about. What the registry answers for a product question holds for any scope: the scope
// check comes last in the registry's order and needs only the key's scopes, which the answer
// carries, so scopes are checked here and never multiply the entries. Products do multiply them
// (the answer does not carry the tenant's entitlements), bounded per key.
//
// Least recently used keys go first once maxEntries keys are held; unknown keys (NOT_FOUND,
// MALFORMED) are kept apart, briefly and in a smaller map, so a flood of invented keys neither
// pushes real keys out nor turns into a flood of registry calls. Whether a held verdict may still
// answer (the stream's state, valid_until) is the verifier's decision, not the cache's.
import type { Answer } from './answer.js';

/** One registry answer to one product question, with what reading it needs at each call. */
export interface Held {
  /** The registry's answer, frozen: handed out as it is while nothing about it changed. */
  readonly answer: Answer;
  readonly scopes: readonly string[];
  readonly expiresAtMs: number | null;
  readonly validUntilMs: number | null;
  /** When the question that brought it was sent (never later than the registry read it). */
  readonly fetchedAt: number;
  /** The stream epoch the question was sent in (verifier.ts). */
  readonly epoch: number;
  /** When to ask again whatever else holds (a change just before the question; verifier.ts keepUntil). */
  readonly recheckAt: number;
  /** Variants made at read time, once each: past expires_at, and refused for a scope. */
  expired?: Answer;
  scopeRefusals?: Map<string, Answer>;
}

interface KeyEntry {
  readonly keyId: string;
  readonly tenantId: string;
  readonly byProduct: Map<string, Held>;
  /** When the key last moved to the recent end of the order (ms). */
  touchedAt: number;
}

// A key used again within this long keeps its place in the order: moving it (a delete and an
// insert) on every hit cost more than the rest of a hit together, and a key used in the last
// second is near the recent end anyway. The order is least recently used to within this.
const TOUCH_EVERY_MS = 1_000;

// Products are the catalog's few, but a product's code may ask about any; past this many
// questions per key the oldest answer goes.
const MAX_QUESTIONS_PER_KEY = 32;

export class VerdictCache {
  private readonly entries = new Map<string, KeyEntry>();
  private readonly unknown = new Map<string, { answer: Answer; until: number }>();
  private readonly byKeyId = new Map<string, string>();
  private readonly byTenant = new Map<string, Set<string>>();

  constructor(
    private readonly maxEntries: number,
    private readonly maxUnknown: number,
  ) {}

  get size(): { keys: number; unknown: number } {
    return { keys: this.entries.size, unknown: this.unknown.size };
  }

  /** The hashes held, for diagnostics and the tests that prove no key is kept in plaintext. */
  hashes(): string[] {
    return [...this.entries.keys(), ...this.unknown.keys()];
  }

  /** The held answer for a key's product question; marks the key as used at `now` (ms). */
  held(hash: string, product: string, now: number): Held | undefined {
    const entry = this.entries.get(hash);
    if (entry === undefined) return undefined;
    const held = entry.byProduct.get(product);
    if (held === undefined) return undefined;
    if (now - entry.touchedAt >= TOUCH_EVERY_MS) {
      // Map order is insertion order: moving the key to the end keeps the least recently used first.
      entry.touchedAt = now;
      this.entries.delete(hash);
      this.entries.set(hash, entry);
    }
    return held;
  }

  /** A held answer without touching the recency order (fallbacks, tests). */
  peek(hash: string, product: string): Held | undefined {
    return this.entries.get(hash)?.byProduct.get(product);
  }

  /** A NOT_FOUND or MALFORMED answer for this hash, if one is still fresh at `now`. */
  unknownAnswer(hash: string, now: number): Answer | undefined {
    const known = this.unknown.get(hash);
    if (known === undefined) return undefined;
    if (known.until > now) return known.answer;
    this.unknown.delete(hash);
    return undefined;
  }

  rememberUnknown(hash: string, answer: Answer, until: number): void {
    this.unknown.delete(hash);
    if (this.unknown.size >= this.maxUnknown) this.unknown.delete(this.unknown.keys().next().value!);
    this.unknown.set(hash, { answer, until });
  }

  store(hash: string, product: string, held: Held): void {
    const { key_id: keyId, tenant_id: tenantId } = held.answer;
    if (keyId === undefined || tenantId === undefined) return;
    let entry = this.entries.get(hash);
    if (entry !== undefined && (entry.keyId !== keyId || entry.tenantId !== tenantId)) {
      // Cannot happen for one registry; a different one behind the same URL would do it.
      this.dropHash(hash);
      entry = undefined;
    }
    if (entry === undefined) {
      if (this.entries.size >= this.maxEntries) this.dropHash(this.entries.keys().next().value!);
      entry = { keyId, tenantId, byProduct: new Map(), touchedAt: held.fetchedAt };
      this.entries.set(hash, entry);
      this.byKeyId.set(keyId, hash);
      let hashes = this.byTenant.get(tenantId);
      if (hashes === undefined) this.byTenant.set(tenantId, (hashes = new Set()));
      hashes.add(hash);
    }
    entry.byProduct.delete(product);
    if (entry.byProduct.size >= MAX_QUESTIONS_PER_KEY) entry.byProduct.delete(entry.byProduct.keys().next().value!);
    entry.byProduct.set(product, held);
  }

  /** Drops one product answer (one that turned out stale at read time). */
  forget(hash: string, product: string): void {
    const entry = this.entries.get(hash);
    if (entry === undefined) return;
    entry.byProduct.delete(product);
    if (entry.byProduct.size === 0) this.dropHash(hash);
  }

  evictKey(keyId: string): void {
    const hash = this.byKeyId.get(keyId);
    if (hash !== undefined) this.dropHash(hash);
  }

  evictTenant(tenantId: string): void {
    const hashes = this.byTenant.get(tenantId);
    if (hashes === undefined) return;
    for (const hash of [...hashes]) this.dropHash(hash);
  }

  /** Every known key's answers; unknown keys stay, since no change makes an unknown key known. */
  clear(): void {
    this.entries.clear();
    this.byKeyId.clear();
    this.byTenant.clear();
  }

  private dropHash(hash: string): void {
    const entry = this.entries.get(hash);
    if (entry === undefined) return;
    this.entries.delete(hash);
    if (this.byKeyId.get(entry.keyId) === hash) this.byKeyId.delete(entry.keyId);
    const hashes = this.byTenant.get(entry.tenantId);
    hashes?.delete(hash);
    if (hashes?.size === 0) this.byTenant.delete(entry.tenantId);
  }
}
