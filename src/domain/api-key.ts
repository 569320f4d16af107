// The API key format: "bp_" + 33 base62 characters of randomness (62^33 > 2^196, so at least
// 192 bits) + a 6-character base62 CRC32 of everything before it. The "bp_" prefix lets secret
// scanners recognize our keys; the checksum lets the verifier refuse a mistyped or made-up key
// without touching the database; "_" keeps a double-click selecting the whole key.
// And the rule of changing a key once issued: its reach may only shrink (wideningOf).
import { createHash, createHmac, randomInt } from 'node:crypto';
import { crc32 } from 'node:zlib';

export const KEY_PREFIX = 'bp_';
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const RANDOM_LENGTH = 33;
const CHECKSUM_LENGTH = 6;
export const KEY_LENGTH = KEY_PREFIX.length + RANDOM_LENGTH + CHECKSUM_LENGTH;
const KEY_SHAPE = new RegExp(`^${KEY_PREFIX}[0-9A-Za-z]{${RANDOM_LENGTH + CHECKSUM_LENGTH}}$`);

function base62(value: number, width: number): string {
  let text = '';
  for (let rest = value; rest > 0; rest = Math.floor(rest / 62)) text = BASE62[rest % 62] + text;
  return text.padStart(width, '0');
}

const checksumOf = (body: string) => base62(crc32(body), CHECKSUM_LENGTH);

export function generateApiKey(): string {
  // randomInt draws each character uniformly (rejection sampling inside), unlike bytes % 62.
  let random = '';
  for (let i = 0; i < RANDOM_LENGTH; i += 1) random += BASE62[randomInt(62)];
  const body = KEY_PREFIX + random;
  return body + checksumOf(body);
}

/** True when the text has our key's shape and its checksum matches. */
export function isWellFormedApiKey(text: string): boolean {
  if (text.length !== KEY_LENGTH || !KEY_SHAPE.test(text)) return false;
  const body = text.slice(0, -CHECKSUM_LENGTH);
  return checksumOf(body) === text.slice(-CHECKSUM_LENGTH);
}

/**
 * What is stored instead of the key: SHA-256, or HMAC-SHA-256 under a server-side pepper so a
 * copy of the database alone cannot confirm a guessed key. No salt: the hash is the lookup key,
 * and a key with 192 random bits needs no stretching (that is for low-entropy passwords).
 */
export function hashApiKey(key: string, pepper: string | null): Buffer {
  return pepper === null ? createHash('sha256').update(key).digest() : createHmac('sha256', pepper).update(key).digest();
}

/** The parts shown to owners so they can tell keys apart: "bp_" + 4 characters, and the last 4. */
export function displayParts(key: string): { prefix: string; last4: string } {
  return { prefix: key.slice(0, KEY_PREFIX.length + 4), last4: key.slice(-4) };
}

/** What a key reaches: its scopes, and the products it is limited to (none: all the tenant may use). */
export interface KeyReach {
  scopes: readonly string[];
  products: readonly string[];
}

/** How a change would widen a key: the field, and what it would add (nothing: it would lift the product limit). */
export interface Widening {
  field: 'scopes' | 'products';
  added: string[];
}

/**
 * What a change of a key's scopes and products would let it reach that it cannot now; null when
 * it only narrows or keeps them. Widening a key in place would give more to whoever holds it, a
 * secret that may have spread further than anyone knows; more takes a new key. Scopes can only be
 * dropped. A key limited to products can only drop some of them, never all (an empty list is no
 * limit). A key without a limit reaches every product the tenant may use, so it can be limited
 * to any of those (`usable`), and only to those.
 */
export function wideningOf(current: KeyReach, next: Partial<KeyReach>, usable: readonly string[]): Widening | null {
  const addedScopes = (next.scopes ?? []).filter((scope) => !current.scopes.includes(scope));
  if (addedScopes.length > 0) return { field: 'scopes', added: addedScopes };
  if (next.products === undefined) return null;
  if (current.products.length === 0) {
    const beyond = next.products.filter((product) => !usable.includes(product));
    return beyond.length > 0 ? { field: 'products', added: beyond } : null;
  }
  if (next.products.length === 0) return { field: 'products', added: [] };
  const added = next.products.filter((product) => !current.products.includes(product));
  return added.length > 0 ? { field: 'products', added } : null;
}
