// The one reader of invalidation scopes and NOTIFY payloads: what the triggers write is read
// exactly, and anything else (a newer build's scope, a damaged or hostile payload) comes out as
// 'unrecognized', which every cache answers by forgetting everything. Nothing is dropped.
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseNotification, parseScope, type InvalidationScope } from '../../src/caching/scope.js';

const HASH = createHash('sha256').update('a key').digest('hex');
const TENANT = '6c0c1d3e-9a59-4c47-8f7e-4d1c0b2a3e55';
const UNRECOGNIZED: InvalidationScope = { kind: 'unrecognized' };

describe('parseScope', () => {
  it('reads the two scopes the triggers write', () => {
    expect(parseScope(`key:${HASH}`)).toEqual({ kind: 'key', keyHashHex: HASH });
    expect(parseScope(`tenant:${TENANT}`)).toEqual({ kind: 'tenant', tenantId: TENANT });
  });

  it('guesses at no near miss: upper case and look-alikes are unrecognized, not read as a hash or id', () => {
    const nearMisses = [
      `key:${HASH.toUpperCase()}`,
      `KEY:${HASH}`,
      `tenant:${TENANT.toUpperCase()}`,
      `Tenant:${TENANT}`,
      // The Kelvin sign lowercases to "k": a case-folding reader would take this for a key scope.
      `\u212aey:${HASH}`,
    ];
    for (const text of nearMisses) expect(parseScope(text), JSON.stringify(text)).toEqual(UNRECOGNIZED);
  });

  it('answers unrecognized for kinds this build does not know', () => {
    for (const text of ['product:api', 'all', '*', 'keys:' + HASH, 'tenants:' + TENANT, 'user:42', 'key', 'tenant']) {
      expect(parseScope(text), text).toEqual(UNRECOGNIZED);
    }
  });

  it('answers unrecognized for a known kind whose value is not what the database writes', () => {
    const malformed = [
      '',
      'key:',
      'tenant:',
      `key:${HASH.slice(1)}`, // 63 digits
      `key:${HASH}0`, // 65 digits
      `key:${HASH.slice(0, -1)}g`, // not hex
      `key: ${HASH}`,
      `key:${HASH} `,
      ` key:${HASH}`,
      `key:${HASH}\n`,
      'tenant:x',
      `tenant:${TENANT.replaceAll('-', '')}`,
      `tenant:{${TENANT}}`,
      `tenant:${TENANT}\u0000`,
      `tenant:${TENANT}:extra`,
      `key:${HASH.slice(0, 32)}\u0000${HASH.slice(33)}`,
      `key:${'\u0660'.repeat(64)}`, // Arabic-Indic digits: digits, but not hex digits
    ];
    for (const text of malformed) expect(parseScope(text), JSON.stringify(text)).toEqual(UNRECOGNIZED);
  });

  it('answers unrecognized for huge input', () => {
    const huge = [`key:${HASH}${'0'.repeat(10_000_000)}`, `tenant:${'a'.repeat(10_000_000)}`, 'x'.repeat(10_000_000), `${'key:'.repeat(2_500_000)}`];
    const started = performance.now();
    for (const text of huge) expect(parseScope(text)).toEqual(UNRECOGNIZED);
    // Refused on length alone. Generous, so a loaded machine cannot fail it; a reader that
    // scanned or backtracked through 40 MB would.
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('never throws, and recognizes only what a trigger could have written', () => {
    const written = /^(key:[0-9a-f]{64}|tenant:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;
    fc.assert(
      fc.property(
        // Arbitrary text, and text that starts like a scope, so the value checks are reached too.
        fc.oneof(fc.string({ maxLength: 200, unit: 'binary' }), fc.constantFrom('key:', 'tenant:').chain((prefix) =>
          fc.string({ maxLength: 80, unit: fc.constantFrom(...'0123456789abcdefABCDEF-: \n\u0000'.split('')) }).map((rest) => prefix + rest),
        )),
        (text) => {
          const scope = parseScope(text);
          if (scope.kind === 'unrecognized') expect(written.test(text)).toBe(false);
          else expect(text).toBe(scope.kind === 'key' ? `key:${scope.keyHashHex}` : `tenant:${scope.tenantId}`);
        },
      ),
      { numRuns: 3_000 },
    );
  });

  it('reads back every well-formed scope it could be given', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uuid(), (bytes, uuid) => {
        const hex = Buffer.from(bytes).toString('hex');
        expect(parseScope(`key:${hex}`)).toEqual({ kind: 'key', keyHashHex: hex });
        expect(parseScope(`tenant:${uuid}`)).toEqual({ kind: 'tenant', tenantId: uuid });
      }),
      { numRuns: 500 },
    );
  });
});

describe('parseNotification', () => {
  it("reads the scope after the log's sequence number", () => {
    expect(parseNotification(`1 key:${HASH}`)).toEqual({ kind: 'key', keyHashHex: HASH });
    expect(parseNotification(`9223372036854775807 tenant:${TENANT}`)).toEqual({ kind: 'tenant', tenantId: TENANT });
  });

  it('answers unrecognized for a payload that is not "<seq> <scope>"', () => {
    const malformed = [
      '',
      ' ',
      'garbage',
      `key:${HASH}`, // no sequence number
      ` key:${HASH}`, // an empty one
      `x key:${HASH}`,
      `-1 key:${HASH}`,
      `1.5 key:${HASH}`,
      `1  key:${HASH}`, // two spaces
      `1\tkey:${HASH}`,
      `12345678901234567890 key:${HASH}`, // 20 digits: more than a bigint holds
      '41 product:api',
      '42 tenant:x',
      `42 tenant:${TENANT} trailing`,
    ];
    for (const payload of malformed) expect(parseNotification(payload), JSON.stringify(payload)).toEqual(UNRECOGNIZED);
  });

  it('answers unrecognized for a huge payload', () => {
    const huge = [`1 key:${HASH}${' '.repeat(10_000_000)}`, '9'.repeat(10_000_000), `${'9'.repeat(10_000_000)} key:${HASH}`];
    const started = performance.now();
    for (const payload of huge) expect(parseNotification(payload)).toEqual(UNRECOGNIZED);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('agrees with parseScope on whatever follows a well-formed sequence number', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }), fc.string({ maxLength: 100 }), (seq, scope) => {
        expect(parseNotification(`${seq} ${scope}`)).toEqual(parseScope(scope));
      }),
      { numRuns: 1_000 },
    );
  });
});
