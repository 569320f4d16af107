// src/http/request-id.ts: the caller's id when it is sane, else a new version 4 UUID.
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { requestIdFor } from '../../src/http/request-id.js';

const withId = (id?: string | string[]) => ({ headers: id === undefined ? {} : { 'x-request-id': id } }) as unknown as IncomingMessage;
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('requestIdFor', () => {
  it('keeps a sane id as given', () => {
    expect(requestIdFor(withId('portal-42.a:b'))).toBe('portal-42.a:b');
  });

  it('generates version 4 UUIDs, each new, for requests without a sane id', () => {
    const ids = Array.from({ length: 10_000 }, (_, i) => requestIdFor(withId(i % 3 === 0 ? undefined : i % 3 === 1 ? 'has space' : ['a', 'b'])));
    for (const id of ids) expect(id).toMatch(UUID_V4);
    expect(new Set(ids).size).toBe(ids.length);
  });
});
