import { describe, expect, it } from 'vitest';
import {
  PLATFORM_CHAIN,
  canonicalJson,
  chainKeyOf,
  CREATED_MAX_AHEAD_MS,
  CREATED_MAX_BEHIND_MS,
  MAX_EVENT_BYTES,
  eventBytes,
  hashRecord,
  isCreatedInWindow,
  isReservedAction,
  toRecord,
  type AuditEventInput,
  type AuditRecord,
} from '../../src/domain/audit.js';

const TENANT = '3f6c2a1e-8b1d-4c7e-9f0a-5d2b7c9e1a44';
/** hashRecord of fullRecord() under canonical version 1, by the code that predates version 2. */
const V1_HASH = '6c9f29540cdc8aaf21a3e70805b8c332bb2111118ac88ecf5d7eff0c1aad2764';
const RECEIVED = new Date('2026-11-27T10:00:00.000Z');

/** A record with every optional field set, so each one can be changed on its own. */
function fullRecord(): AuditRecord {
  return {
    id: '0b8e4a52-6f1d-4d8a-a3c2-7e9f1b2c3d4e',
    chain_key: TENANT,
    chain_seq: 7,
    prev_hash: 'a'.repeat(64),
    tenant_id: TENANT,
    product: 'reports',
    action: 'report.exported',
    crud: 'r',
    group: { id: 'grp-1', name: 'Globex' },
    actor: { id: 'user-1', name: 'Hank Scorpio', href: 'https://idp.example.com/u/1', fields: { role: 'admin' } },
    target: {
      id: 'rep-9',
      name: 'Q3 revenue',
      href: 'https://app.example.com/r/9',
      type: 'report',
      fields: { format: 'csv' },
    },
    source_ip: '203.0.113.7',
    created: '2026-11-27T09:59:58.123Z',
    received: '2026-11-27T10:00:00.000Z',
    description: 'exported a report',
    is_failure: false,
    is_anonymous: false,
    fields: { rows: '1200' },
    metadata: { request_id: 'req-1' },
    component: 'exporter',
    version: '1.2.3',
    external_id: 'ext-1',
    publisher: { sub: 'svc-reports', client: 'reports-backend' },
    canonical_version: 2,
  };
}

/** A different value of the same kind, so the record stays well-formed. */
function changed(value: unknown): unknown {
  if (typeof value === 'string') return `${value}x`;
  if (typeof value === 'number') return value + 1;
  if (typeof value === 'boolean') return !value;
  if (value === null) return 'set';
  return { ...(value as Record<string, unknown>), extra: 'x' };
}

type Mutation = [path: string, mutate: (record: AuditRecord) => void];

const MAPS = new Set(['fields', 'metadata']);
const NOT_NULL = new Set(['id', 'chain_key', 'chain_seq', 'action', 'crud', 'created', 'received', 'is_failure', 'is_anonymous', 'canonical_version', 'sub']);

/** One mutation per field of the record, nested ones included, plus null for each nullable one. */
function mutationsOf(record: AuditRecord): Mutation[] {
  const mutations: Mutation[] = [];
  const walk = (path: string[], value: Record<string, unknown>) => {
    for (const [key, inner] of Object.entries(value)) {
      const at = [...path, key];
      const setTo = (next: unknown) => (target: AuditRecord) => {
        let node = target as unknown as Record<string, unknown>;
        for (const step of at.slice(0, -1)) node = node[step] as Record<string, unknown>;
        node[key] = next;
      };
      // String maps are values, not structure: their keys are data.
      if (inner !== null && typeof inner === 'object' && !MAPS.has(key)) walk(at, inner as Record<string, unknown>);
      else mutations.push([at.join('.'), setTo(changed(inner))]);
      if (inner !== null && !NOT_NULL.has(key)) mutations.push([`${at.join('.')} = null`, setTo(null)]);
    }
  };
  walk([], record as unknown as Record<string, unknown>);
  return mutations;
}

describe('canonicalJson', () => {
  it('sorts keys at every depth', () => {
    const value = { b: 1, a: { d: { z: true, y: null }, c: 'x' } };
    expect(canonicalJson(value)).toBe('{"a":{"c":"x","d":{"y":null,"z":true}},"b":1}');
  });

  it('keeps arrays in their order, and sorts the objects inside them', () => {
    expect(canonicalJson([3, 1, 2])).toBe('[3,1,2]');
    expect(canonicalJson({ list: [{ b: 2, a: 1 }, 'k', [2, 1]] })).toBe('{"list":[{"a":1,"b":2},"k",[2,1]]}');
  });

  it('drops undefined members at every depth, but keeps null', () => {
    expect(canonicalJson({ a: undefined, b: null, c: { d: undefined, e: 1 } })).toBe('{"b":null,"c":{"e":1}}');
  });

  it('gives one string for objects built in different key orders', () => {
    const one: Record<string, unknown> = {};
    one.zeta = { y: 2, x: 1 };
    one.alpha = 'a';
    one.mid = [1, { q: 1, p: 2 }];
    const other: Record<string, unknown> = {};
    other.mid = [1, { p: 2, q: 1 }];
    other.alpha = 'a';
    other.zeta = { x: 1, y: 2 };
    expect(canonicalJson(one)).toBe(canonicalJson(other));
    expect(JSON.stringify(one)).not.toBe(JSON.stringify(other));
  });

  it('writes scalars and escapes exactly as JSON does', () => {
    for (const value of ['plain', 'quote " and \\ backslash', 'line\nbreak', 'ünïcødé 🚀', 0, -1.5, true, false, null]) {
      expect(canonicalJson(value)).toBe(JSON.stringify(value));
      expect(JSON.parse(canonicalJson({ k: value }))).toEqual({ k: value });
    }
  });

  it('orders keys by code unit, independent of locale', () => {
    expect(canonicalJson({ b: 1, B: 2, a: 3, _: 4, é: 5 })).toBe('{"B":2,"_":4,"a":3,"b":1,"é":5}');
  });
});

describe('hashRecord', () => {
  it('is a SHA-256 hex digest, stable for the same record', () => {
    const hash = hashRecord(fullRecord());
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(hashRecord(fullRecord())).toBe(hash);
  });

  const base = hashRecord(fullRecord());
  const mutations = mutationsOf(fullRecord()).filter(([path]) => path !== 'tenant_id' && path !== 'tenant_id = null');

  it('covers every field of the record, nested ones included', () => {
    const paths = mutations.map(([path]) => path);
    for (const field of Object.keys(fullRecord()).filter((key) => key !== 'tenant_id')) {
      expect(paths.some((path) => path === field || path.startsWith(`${field}.`))).toBe(true);
    }
    expect(paths).toEqual(
      expect.arrayContaining([
        ...['group.id', 'group.name', 'actor.id', 'actor.name', 'actor.href', 'actor.fields'],
        ...['target.id', 'target.name', 'target.href', 'target.type', 'target.fields'],
        ...['prev_hash', 'chain_seq', 'chain_key', 'prev_hash = null', 'metadata = null', 'actor = null'],
      ]),
    );
  });

  it.each(mutations)('changes when %s changes', (_path, mutate) => {
    const record = fullRecord();
    mutate(record);
    expect(hashRecord(record)).not.toBe(base);
  });

  it('changes when a value or a key inside a map changes', () => {
    for (const mutate of [
      (r: AuditRecord) => (r.metadata = { request_id: 'req-2' }),
      (r: AuditRecord) => (r.metadata = { request_ID: 'req-1' }),
      (r: AuditRecord) => (r.actor!.fields = { role: 'admin', team: 'ops' }),
      (r: AuditRecord) => (r.target!.fields = {}),
    ]) {
      const record = fullRecord();
      mutate(record);
      expect(hashRecord(record)).not.toBe(base);
    }
  });

  it('tells an empty map from an absent one', () => {
    const empty = { ...fullRecord(), metadata: {} };
    const absent = { ...fullRecord(), metadata: null };
    expect(hashRecord(empty)).not.toBe(hashRecord(absent));
  });

  it('does not change with tenant_id, which turns NULL when the tenant is deleted', () => {
    expect(hashRecord({ ...fullRecord(), tenant_id: null })).toBe(base);
    expect(hashRecord({ ...fullRecord(), tenant_id: '9a1b2c3d-0000-4000-8000-000000000000' })).toBe(base);
  });

  it('does not change with the key order of maps (jsonb stores them reordered)', () => {
    const one = { ...fullRecord(), fields: { a: '1', b: '2', c: '3' } };
    const other = { ...fullRecord(), fields: { c: '3', a: '1', b: '2' } };
    expect(hashRecord(one)).toBe(hashRecord(other));
  });

  it('hashes a nested object missing its optional members like one with them null', () => {
    // The database gives every column back; a record built from input may omit them.
    const sparse = { ...fullRecord(), actor: { id: 'user-1' } as AuditRecord['actor'], group: { id: 'g' } as AuditRecord['group'] };
    const explicit = {
      ...fullRecord(),
      actor: { id: 'user-1', name: null, href: null, fields: null },
      group: { id: 'g', name: null },
    };
    expect(hashRecord(sparse)).toBe(hashRecord(explicit));
  });
});

describe('canonical versions', () => {
  it('hashes a version 1 record exactly as before publishers existed, whatever its publisher', () => {
    // Computed with the canonical form of release 0.1.0, before version 2 existed: rows stored
    // then must keep verifying.
    const v1 = { ...fullRecord(), canonical_version: 1 as const };
    expect(hashRecord(v1)).toBe(V1_HASH);
    expect(hashRecord({ ...v1, publisher: null })).toBe(V1_HASH);
    expect(hashRecord({ ...v1, publisher: { sub: 'someone-else', client: null } })).toBe(V1_HASH);
  });

  it('covers the publisher from version 2 on: changing or removing it changes the hash', () => {
    const v2 = fullRecord();
    const base = hashRecord(v2);
    expect(base).not.toBe(V1_HASH);
    expect(hashRecord({ ...v2, publisher: null })).not.toBe(base);
    expect(hashRecord({ ...v2, publisher: { sub: 'svc-reports', client: null } })).not.toBe(base);
    expect(hashRecord({ ...v2, publisher: { sub: 'svc-other', client: 'reports-backend' } })).not.toBe(base);
  });

  it('records new events in the current version', () => {
    const record = toRecord({ action: 'x', crud: 'c' }, { id: 'i', chainSeq: 1, prevHash: null, received: new Date(0), publisher: { sub: 's', client: 'c' } });
    expect(record).toMatchObject({ canonical_version: 2, publisher: { sub: 's', client: 'c' } });
  });
});

describe('rules for published events', () => {
  it.each([
    ['tenant.activated', true],
    ['tenant', true],
    ['Tenant:activated', true],
    ['api_key.created', true],
    ['api-key.created', true],
    ['API_KEY/revoked', true],
    ['entitlement.granted', true],
    ['catalog.product_requested', true],
    ['keycloak.invite_sent', true],
    ['tenants.listed', false],
    ['document.tenant.moved', false],
    ['report.exported', false],
    ['apikey.created', false],
  ])('%s is reserved: %s', (action, reserved) => {
    expect(isReservedAction(action)).toBe(reserved);
  });

  it('accepts created from thirty days before to five minutes after receipt, inclusive', () => {
    const received = new Date('2026-11-27T10:00:00.000Z');
    const at = (offset: number) => new Date(received.getTime() + offset).toISOString();
    expect(isCreatedInWindow(at(0), received)).toBe(true);
    expect(isCreatedInWindow(at(CREATED_MAX_AHEAD_MS), received)).toBe(true);
    expect(isCreatedInWindow(at(CREATED_MAX_AHEAD_MS + 1), received)).toBe(false);
    expect(isCreatedInWindow(at(-CREATED_MAX_BEHIND_MS), received)).toBe(true);
    expect(isCreatedInWindow(at(-CREATED_MAX_BEHIND_MS - 1), received)).toBe(false);
    expect(isCreatedInWindow('9999-12-31T23:59:59.999Z', received)).toBe(false);
    expect(isCreatedInWindow('1970-01-01T00:00:00.000Z', received)).toBe(false);
  });

  it('measures an event in UTF-8 bytes of its canonical form', () => {
    const record = fullRecord();
    const ascii = eventBytes(record);
    // Each of these characters takes four bytes in UTF-8 (two UTF-16 code units).
    expect(eventBytes({ ...record, description: `${record.description!}🚀` })).toBe(ascii + 4);
    expect(MAX_EVENT_BYTES).toBe(32 * 1024);
  });
});

describe('toRecord', () => {
  const position = { id: 'f1e2d3c4-b5a6-4978-8a6b-5c4d3e2f1a0b', chainSeq: 3, prevHash: 'b'.repeat(64), received: RECEIVED };

  it('defaults created to received, and both are millisecond ISO strings', () => {
    const record = toRecord({ action: 'x.happened', crud: 'c' }, position);
    expect(record.received).toBe('2026-11-27T10:00:00.000Z');
    expect(record.created).toBe(record.received);
  });

  it('keeps a publisher created time, normalized to UTC milliseconds', () => {
    expect(toRecord({ action: 'x', crud: 'c', created: '2026-11-27T11:30:00+01:00' }, position).created).toBe('2026-11-27T10:30:00.000Z');
    expect(toRecord({ action: 'x', crud: 'c', created: '2026-01-02T03:04:05.678Z' }, position).created).toBe('2026-01-02T03:04:05.678Z');
  });

  it('normalizes every absent optional field to null, and the flags to false', () => {
    const record = toRecord({ action: 'platform.started', crud: 'c' }, position);
    expect(record).toEqual({
      id: position.id,
      chain_key: PLATFORM_CHAIN,
      chain_seq: 3,
      prev_hash: 'b'.repeat(64),
      tenant_id: null,
      product: null,
      action: 'platform.started',
      crud: 'c',
      group: null,
      actor: null,
      target: null,
      source_ip: null,
      created: '2026-11-27T10:00:00.000Z',
      received: '2026-11-27T10:00:00.000Z',
      description: null,
      is_failure: false,
      is_anonymous: false,
      fields: null,
      metadata: null,
      component: null,
      version: null,
      external_id: null,
      publisher: null,
      canonical_version: 2,
    });
  });

  it('normalizes the optional members of group, actor and target to null', () => {
    const input: AuditEventInput = {
      action: 'x',
      crud: 'u',
      tenant_id: TENANT,
      group: { id: 'g' },
      actor: { id: 'a' },
      target: { id: 't' },
    };
    const record = toRecord(input, position);
    expect(record.group).toEqual({ id: 'g', name: null });
    expect(record.actor).toEqual({ id: 'a', name: null, href: null, fields: null });
    expect(record.target).toEqual({ id: 't', name: null, href: null, type: null, fields: null });
    expect(record.chain_key).toBe(TENANT);
    expect(record.tenant_id).toBe(TENANT);
  });

  it('treats explicit nulls like absent fields', () => {
    const withNulls = toRecord(
      { action: 'x', crud: 'c', tenant_id: null, product: null, actor: null, description: null, metadata: null, created: null },
      position,
    );
    expect(withNulls).toEqual(toRecord({ action: 'x', crud: 'c' }, position));
  });

  it('puts an event without a tenant on the platform chain', () => {
    expect(chainKeyOf(undefined)).toBe(PLATFORM_CHAIN);
    expect(chainKeyOf(null)).toBe(PLATFORM_CHAIN);
    expect(chainKeyOf(TENANT)).toBe(TENANT);
  });
});
