// The published audit event's schema says in JSON Schema what used to be a custom format and a
// runtime check (source_ip as anyOf ipv4/ipv6, actor unless is_anonymous as if/then); these
// tests hold it to accepting exactly what was accepted before, and to one clear error each.
import { isIP } from 'node:net';
import type { ValidateFunction } from 'ajv';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AuditEventBody } from '../../src/http/schemas/audit.js';
import { fieldErrors, validatorCompiler } from '../../src/http/validation.js';

const validate = validatorCompiler({ schema: AuditEventBody, httpPart: 'body', method: 'POST', url: '/v1/audit' }) as ValidateFunction;
const base = { action: 'doc.viewed', crud: 'r', actor: { id: 'u-1' } };
const errorsOf = (body: unknown) => (validate(body) ? [] : fieldErrors(validate.errors ?? [], 'body'));

describe('source_ip: anyOf ipv4, ipv6', () => {
  // What the single "ip" format accepted: Node's isIP, within 45 characters.
  const acceptedBefore = (text: string) => text.length <= 45 && isIP(text) !== 0;

  it.each([
    '203.0.113.7',
    '2001:db8::1',
    '::ffff:127.0.0.1',
    '::',
    'fe80::1%eth0',
    '01.2.3.4',
    '1.2.3.999',
    '::g',
    ' 1.2.3.4',
    '',
    '1:2:3:4:5:6:7:8:9',
  ])('decides %j as isIP does', (ip) => {
    expect(validate({ ...base, source_ip: ip })).toBe(acceptedBefore(ip));
  });

  it('decides generated addresses and near-addresses as isIP does', () => {
    const candidates = fc.oneof(
      fc.ipV4(),
      fc.ipV4Extended(),
      fc.ipV6(),
      fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:.%xg '), maxLength: 50 }),
    );
    fc.assert(
      fc.property(candidates, (ip) => validate({ ...base, source_ip: ip }) === acceptedBefore(ip)),
      { numRuns: 2000 },
    );
  });

  it('answers one error for an address that is neither', () => {
    expect(errorsOf({ ...base, source_ip: 'not-an-ip' })).toEqual([
      { path: '/source_ip', in: 'body', message: 'must match format "ipv4" or must match format "ipv6"' },
    ]);
  });
});

describe('actor unless is_anonymous: if/then', () => {
  const cases = [
    { actor: undefined, is_anonymous: undefined },
    { actor: undefined, is_anonymous: false },
    { actor: undefined, is_anonymous: true },
    { actor: { id: 'u-1' }, is_anonymous: undefined },
    { actor: { id: 'u-1' }, is_anonymous: false },
    { actor: { id: 'u-1' }, is_anonymous: true },
  ];

  it.each(cases)('accepts $actor, is_anonymous $is_anonymous exactly when the runtime rule does', ({ actor, is_anonymous }) => {
    const body = { action: 'doc.viewed', crud: 'r', ...(actor ? { actor } : {}), ...(is_anonymous === undefined ? {} : { is_anonymous }) };
    // The rule as http/audit.ts checks it.
    const allowed = Boolean(actor) || is_anonymous === true;
    expect(validate(body)).toBe(allowed);
  });

  it('names /actor, once, when it is missing', () => {
    expect(errorsOf({ action: 'doc.viewed', crud: 'r' })).toEqual([{ path: '/actor', in: 'body', message: 'is required' }]);
  });

  it('still refuses a non-boolean is_anonymous by its type, not by the rule', () => {
    expect(errorsOf({ ...base, is_anonymous: 'true' })).toEqual([{ path: '/is_anonymous', in: 'body', message: 'must be boolean' }]);
  });
});
