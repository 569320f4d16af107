// The API key format, checked against an independent CRC32 and base62 written here, so a bug
// shared by the generator and the checker (both live in src/domain/api-key.ts) still shows; and
// the rule that a key's scopes and products only ever narrow.
import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { KEY_LENGTH, KEY_PREFIX, displayParts, generateApiKey, hashApiKey, isWellFormedApiKey, wideningOf } from '../../src/domain/api-key.js';

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const SHAPE = /^bp_[0-9A-Za-z]{39}$/;
const RANDOM_LENGTH = 33;

/** CRC-32/ISO-HDLC (zlib's), bit by bit: slow and obviously right. */
function crc32(text: string): number {
  let crc = 0xffffffff;
  for (const byte of Buffer.from(text, 'utf8')) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit += 1) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function base62(value: number, width: number): string {
  let text = '';
  for (let rest = BigInt(value); rest > 0n; rest /= 62n) text = BASE62[Number(rest % 62n)] + text;
  return text.padStart(width, '0');
}

/** A key with any prefix and body, with the checksum the format would give it. */
const withChecksum = (body: string) => body + base62(crc32(body), 6);

const replaceAt = (text: string, index: number, char: string) => text.slice(0, index) + char + text.slice(index + 1);

describe('the independent CRC32 of this test', () => {
  it('gives the check value of the CRC-32 catalogue', () => {
    expect(crc32('123456789')).toBe(0xcbf43926);
    expect(crc32('')).toBe(0);
  });
});

describe('generateApiKey', () => {
  it('makes keys of the documented shape and length', () => {
    expect(KEY_PREFIX).toBe('bp_');
    expect(KEY_LENGTH).toBe(42);
    for (let i = 0; i < 200; i += 1) {
      const key = generateApiKey();
      expect(key).toMatch(SHAPE);
      expect(key).toHaveLength(KEY_LENGTH);
    }
  });

  it('ends every key with the base62 CRC32 of the rest, which isWellFormedApiKey accepts', () => {
    for (let i = 0; i < 200; i += 1) {
      const key = generateApiKey();
      expect(key.slice(-6)).toBe(base62(crc32(key.slice(0, -6)), 6));
      expect(isWellFormedApiKey(key)).toBe(true);
    }
  });

  it('carries at least 192 bits of randomness: 33 characters drawn from all 62', () => {
    expect(RANDOM_LENGTH * Math.log2(62)).toBeGreaterThanOrEqual(192);
    const counts = new Map<string, number>();
    const keys = Array.from({ length: 2000 }, () => generateApiKey());
    for (const key of keys) {
      const random = key.slice(3, -6);
      expect(random).toHaveLength(RANDOM_LENGTH);
      for (const char of random) counts.set(char, (counts.get(char) ?? 0) + 1);
    }
    // 66,000 draws: about 1,065 per character with a standard deviation near 32. The bounds
    // are ten deviations wide, so only a skewed or narrowed alphabet trips them.
    expect([...counts.keys()].sort().join('')).toBe([...BASE62].sort().join(''));
    for (const [char, count] of counts) {
      expect(count, `character ${char}`).toBeGreaterThan(740);
      expect(count, `character ${char}`).toBeLessThan(1390);
    }
    // Every position varies on its own (no position is constant or copied from another).
    for (let position = 3; position < 3 + RANDOM_LENGTH; position += 1) {
      expect(new Set(keys.map((key) => key[position])).size, `position ${position}`).toBeGreaterThan(55);
    }
  });

  it('makes a different key every time', () => {
    const keys = new Set(Array.from({ length: 5000 }, () => generateApiKey()));
    expect(keys.size).toBe(5000);
  });
});

describe('isWellFormedApiKey', () => {
  it('accepts the known vector and refuses it with any other checksum', () => {
    // CRC32("bp_0123456789ABCDEFGHIJKLMNOPQRSTUVW") = 2229204158 = base62 "2QrVpm".
    const body = 'bp_0123456789ABCDEFGHIJKLMNOPQRSTUVW';
    expect(crc32(body)).toBe(2229204158);
    expect(isWellFormedApiKey(`${body}2QrVpm`)).toBe(true);
    expect(withChecksum(body)).toBe(`${body}2QrVpm`);
    expect(isWellFormedApiKey(`${body}2QrVpn`)).toBe(false);
    expect(isWellFormedApiKey(`${body}000000`)).toBe(false);
    // Leading zeros of the checksum are kept (a small CRC still takes six characters).
    expect(isWellFormedApiKey(withChecksum(`bp_${'0'.repeat(33)}`))).toBe(true);
    expect(withChecksum(`bp_${'0'.repeat(33)}`)).toBe(`bp_${'0'.repeat(33)}19T4L5`);
  });

  it('refuses every one-character change, at every position, to every other base62 character', () => {
    const key = generateApiKey();
    for (let index = 0; index < key.length; index += 1) {
      const alphabet = index < 3 ? 'bpqBP_x' : BASE62;
      for (const char of alphabet) {
        if (char === key[index]) continue;
        const changed = replaceAt(key, index, char);
        expect(isWellFormedApiKey(changed), changed).toBe(false);
      }
    }
  });

  it('refuses every swap of two neighbouring different characters', () => {
    for (let round = 0; round < 5; round += 1) {
      const key = generateApiKey();
      for (let index = 3; index < key.length - 1; index += 1) {
        if (key[index] === key[index + 1]) continue;
        const swapped = key.slice(0, index) + key[index + 1] + key[index] + key.slice(index + 2);
        expect(isWellFormedApiKey(swapped), swapped).toBe(false);
      }
    }
  });

  it('refuses truncated and extended keys', () => {
    const key = generateApiKey();
    for (let length = 0; length < key.length; length += 1) expect(isWellFormedApiKey(key.slice(0, length))).toBe(false);
    expect(isWellFormedApiKey(`${key}0`)).toBe(false);
    expect(isWellFormedApiKey(` ${key}`)).toBe(false);
    expect(isWellFormedApiKey(`${key}\n`)).toBe(false);
    // A longer body with its own valid checksum is still not our key.
    expect(isWellFormedApiKey(withChecksum(`${key.slice(0, -6)}A`))).toBe(false);
    expect(isWellFormedApiKey(withChecksum(key.slice(0, -7)))).toBe(false);
  });

  it('refuses a wrong prefix even when the checksum matches it', () => {
    const random = generateApiKey().slice(3, -6);
    expect(isWellFormedApiKey(withChecksum(`bp_${random}`))).toBe(true);
    for (const prefix of ['bq_', 'BP_', 'bp-', 'sk_', 'pb_', 'bp.']) {
      expect(isWellFormedApiKey(withChecksum(`${prefix}${random}`)), prefix).toBe(false);
    }
    expect(isWellFormedApiKey(withChecksum(`xbp_${random.slice(1)}`))).toBe(false);
  });

  it('refuses characters outside base62 even when the checksum matches them', () => {
    const random = generateApiKey().slice(3, -6);
    for (const char of ['-', '_', '+', '/', '=', ' ', '.', 'é', 'ß', '٣', '０', '\u0000']) {
      const body = `bp_${replaceAt(random, 10, char)}`;
      expect(isWellFormedApiKey(withChecksum(body)), JSON.stringify(char)).toBe(false);
    }
    const key = generateApiKey();
    expect(isWellFormedApiKey(replaceAt(key, key.length - 1, '-'))).toBe(false);
  });

  it('refuses the empty string and non-key text of the right length', () => {
    expect(isWellFormedApiKey('')).toBe(false);
    expect(isWellFormedApiKey('x'.repeat(KEY_LENGTH))).toBe(false);
    expect(isWellFormedApiKey(`bp_${'a'.repeat(39)}`)).toBe(false);
  });
});

describe('hashApiKey', () => {
  const PEPPER = 'a-pepper-of-at-least-thirty-two-characters';

  it('is SHA-256 of the key without a pepper', () => {
    const key = generateApiKey();
    expect(hashApiKey(key, null).equals(createHash('sha256').update(key).digest())).toBe(true);
  });

  it('is HMAC-SHA-256 under the pepper with one', () => {
    const key = generateApiKey();
    expect(hashApiKey(key, PEPPER).equals(createHmac('sha256', PEPPER).update(key).digest())).toBe(true);
  });

  it('is deterministic, 32 bytes, and differs with the pepper, between peppers and between keys', () => {
    const key = generateApiKey();
    const plain = hashApiKey(key, null);
    const peppered = hashApiKey(key, PEPPER);
    expect(plain).toHaveLength(32);
    expect(peppered).toHaveLength(32);
    expect(hashApiKey(key, null).equals(plain)).toBe(true);
    expect(hashApiKey(key, PEPPER).equals(peppered)).toBe(true);
    expect(plain.equals(peppered)).toBe(false);
    expect(hashApiKey(key, `${PEPPER}!`).equals(peppered)).toBe(false);
    expect(hashApiKey(generateApiKey(), PEPPER).equals(peppered)).toBe(false);
  });
});

describe('displayParts', () => {
  it('shows the prefix with 4 characters and the last 4, never the middle', () => {
    const key = withChecksum('bp_0123456789ABCDEFGHIJKLMNOPQRSTUVW');
    expect(displayParts(key)).toEqual({ prefix: 'bp_0123', last4: 'rVpm' });
    const random = generateApiKey();
    const parts = displayParts(random);
    expect(parts.prefix).toBe(random.slice(0, 7));
    expect(parts.last4).toBe(random.slice(-4));
    expect(parts.prefix.length + parts.last4.length).toBeLessThan(KEY_LENGTH / 2);
  });
});

describe('wideningOf', () => {
  const limited = { scopes: ['docs:read', 'docs:write'], products: ['risk', 'compliance'] };
  const unlimited = { scopes: ['docs:read'], products: [] };
  const usable = ['risk', 'training'];

  it('lets scopes and products shrink, or stay as they are, in any order', () => {
    for (const next of [
      {},
      { scopes: ['docs:write'] },
      { scopes: [] },
      { scopes: ['docs:write', 'docs:read'] },
      { products: ['compliance'] },
      { products: ['compliance', 'risk'] },
      { scopes: ['docs:read'], products: ['risk'] },
    ]) {
      expect(wideningOf(limited, next, []), JSON.stringify(next)).toBeNull();
    }
  });

  it('refuses a scope the key does not have, naming it', () => {
    expect(wideningOf(limited, { scopes: ['docs:read', 'admin', 'docs:delete'] }, usable)).toEqual({ field: 'scopes', added: ['admin', 'docs:delete'] });
    expect(wideningOf({ scopes: [], products: [] }, { scopes: ['docs:read'] }, usable)).toEqual({ field: 'scopes', added: ['docs:read'] });
  });

  it('refuses a product beyond the limit, and an empty list that would lift it', () => {
    expect(wideningOf(limited, { products: ['risk', 'training'] }, usable)).toEqual({ field: 'products', added: ['training'] });
    expect(wideningOf(limited, { products: [] }, usable)).toEqual({ field: 'products', added: [] });
  });

  it('limits a key without a limit to products the tenant may use, and to no others', () => {
    expect(wideningOf(unlimited, { products: ['training'] }, usable)).toBeNull();
    expect(wideningOf(unlimited, { products: ['risk', 'training'] }, usable)).toBeNull();
    expect(wideningOf(unlimited, { products: [] }, usable)).toBeNull();
    expect(wideningOf(unlimited, { products: ['risk', 'api'] }, usable)).toEqual({ field: 'products', added: ['api'] });
    expect(wideningOf(unlimited, { products: ['risk'] }, [])).toEqual({ field: 'products', added: ['risk'] });
  });

  it('names the scopes first when both would widen', () => {
    expect(wideningOf(limited, { scopes: ['admin'], products: ['api'] }, usable)).toEqual({ field: 'scopes', added: ['admin'] });
  });
});
