// Requests made from openapi.yaml, for the hostile-input test (fuzz.test.ts): every operation of
// the contract, with valid parameters and bodies generated from its schemas (ids taken from real
// resources part of the time), and the same requests broken in the ways clients and attackers
// break them. Everything here is fast-check arbitraries and a raw HTTP sender, so a failure
// shrinks to a small request and replays from its seed.
import http from 'node:http';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { parse } from 'yaml';

/** The part of JSON Schema the route schemas use. */
export interface Schema {
  $ref?: string;
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  anyOf?: Schema[];
  oneOf?: Schema[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  propertyNames?: Schema;
  maxProperties?: number;
  items?: Schema;
  maxItems?: number;
  uniqueItems?: boolean;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
}

export interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required: boolean;
  schema: Schema;
}

/** Who an operation is called as: the README's access table, as each operation's description states it. */
export type Caller = 'platform_admin' | 'service';

export interface Operation {
  id: string;
  method: string;
  /** The path template, e.g. /v1/tenants/{id}. */
  path: string;
  caller: Caller;
  parameters: Parameter[];
  body: Schema | null;
}

interface OpenApiDocument {
  components?: { schemas?: Record<string, Schema> };
  paths: Record<string, Record<string, { operationId: string; description?: string; parameters?: Parameter[]; requestBody?: { content: Record<string, { schema: Schema }> } }>>;
}

/** Every operation of the document, with $refs resolved. */
export function loadOperations(file: URL): Operation[] {
  const document = parse(readFileSync(file, 'utf8')) as OpenApiDocument;
  const components = document.components?.schemas ?? {};
  const resolve = (schema: Schema): Schema => {
    if (schema.$ref) return resolve(components[schema.$ref.replace('#/components/schemas/', '')] ?? {});
    const resolved: Schema = { ...schema };
    if (schema.properties) resolved.properties = Object.fromEntries(Object.entries(schema.properties).map(([k, v]) => [k, resolve(v)]));
    if (schema.items) resolved.items = resolve(schema.items);
    if (schema.anyOf) resolved.anyOf = schema.anyOf.map(resolve);
    if (schema.oneOf) resolved.oneOf = schema.oneOf.map(resolve);
    if (typeof schema.additionalProperties === 'object') resolved.additionalProperties = resolve(schema.additionalProperties);
    return resolved;
  };
  const operations: Operation[] = [];
  for (const [path, methods] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      // "Who may call: service." names the internal routes; everything else takes an operator.
      const who = /Who may call: ([^.]*)/.exec(operation.description ?? '')?.[1] ?? 'public';
      operations.push({
        id: operation.operationId,
        method: method.toUpperCase(),
        path,
        caller: who.includes('platform_admin') || who === 'public' ? 'platform_admin' : 'service',
        parameters: (operation.parameters ?? []).map((p) => ({ ...p, required: p.required === true, schema: resolve(p.schema) })),
        body: operation.requestBody ? resolve(operation.requestBody.content['application/json']?.schema ?? {}) : null,
      });
    }
  }
  return operations;
}

/** Real resources to point at: ids, slugs, keys and cursors the seeding made. */
export interface Pools {
  tenantIds: string[];
  slugs: string[];
  keyIds: string[];
  apiKeys: string[];
  products: string[];
  cursors: string[];
  externalIds: string[];
  emails: string[];
}

// ---------------------------------------------------------------------------------------------
// Valid values from a schema

const LOOKAHEAD = /\(\?=[^)]*\)/g;

function stringFor(schema: Schema): fc.Arbitrary<string> {
  const min = schema.minLength ?? 0;
  const max = schema.maxLength ?? 1000;
  const pattern = schema.pattern ? new RegExp(schema.pattern, 'u') : null;
  const fits = (text: string) => text.length >= min && text.length <= max && (!pattern || pattern.test(text));
  switch (schema.format) {
    case 'uuid':
      return fc.uuid();
    case 'date-time':
      // Mostly this century; also the edges of four-digit years, offsets and precisions.
      return fc
        .tuple(
          fc.oneof(
            { arbitrary: fc.date({ min: new Date('1990-01-01T00:00:00Z'), max: new Date('2090-01-01T00:00:00Z'), noInvalidDate: true }), weight: 4 },
            { arbitrary: fc.date({ min: new Date('0001-01-02T00:00:00Z'), max: new Date('9999-12-30T23:59:59.999Z'), noInvalidDate: true }), weight: 1 },
          ),
          fc.constantFrom('Z', '+02:00', '-12:00', '+14:00', 'z'),
          fc.constantFrom('ms', 's', 'us'),
        )
        .map(([date, zone, precision]) => {
          const iso = date.toISOString();
          const time = precision === 's' ? iso.replace(/\.\d{3}Z$/, 'Z') : precision === 'us' ? iso.replace(/Z$/, '417Z') : iso;
          return time.replace(/Z$/, zone);
        });
    case 'email':
      return fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,15}@[a-z0-9]{1,12}\.(?:test|example|com)$/);
    case 'ip':
      return fc.oneof(fc.ipV4(), fc.ipV6());
    case 'uri':
      return fc.webUrl().filter((url) => url.length <= max);
  }
  if (schema.pattern) {
    // fast-check generates from a regular expression without lookaheads; the lookahead of
    // free-text fields ("some visible character") is checked afterwards.
    return fc.stringMatching(new RegExp(schema.pattern.replace(LOOKAHEAD, ''))).filter(fits);
  }
  return fc.string({ minLength: min, maxLength: Math.min(max, 40) });
}

/** A value the schema accepts, mostly; `pool` values (real ids) take part of the draws. */
export function validValue(schema: Schema, pool: readonly string[] = [], depth = 0, poolWeight = 3): fc.Arbitrary<unknown> {
  if (schema.anyOf ?? schema.oneOf) return fc.oneof(...(schema.anyOf ?? schema.oneOf ?? []).map((s) => validValue(s, pool, depth, poolWeight)));
  if (schema.enum) return fc.constantFrom(...schema.enum);
  if (schema.const !== undefined) return fc.constant(schema.const);
  const types = Array.isArray(schema.type) ? schema.type.filter((t) => t !== 'null') : schema.type ? [schema.type] : [];
  const type = types[0];
  if (type === 'string') {
    const generated = stringFor(schema);
    return pool.length > 0 ? fc.oneof({ arbitrary: fc.constantFrom(...pool), weight: poolWeight }, { arbitrary: generated, weight: 1 }) : generated;
  }
  if (type === 'integer') return fc.integer({ min: schema.minimum ?? -1_000_000, max: schema.maximum ?? 1_000_000 });
  if (type === 'number') return fc.double({ noNaN: true, noDefaultInfinity: true });
  if (type === 'boolean') return fc.boolean();
  if (type === 'array' && schema.items) {
    const item = validValue(schema.items, pool, depth + 1, poolWeight);
    const maxLength = Math.min(schema.maxItems ?? 4, 4);
    return schema.uniqueItems ? fc.uniqueArray(item, { maxLength }) : fc.array(item, { maxLength });
  }
  if (type === 'object' || schema.properties || schema.additionalProperties !== undefined) {
    const fixed = fc.record(
      Object.fromEntries(Object.entries(schema.properties ?? {}).map(([name, s]) => [name, validValue(s, [], depth + 1)])),
      { requiredKeys: schema.required ?? [] },
    );
    const extra = schema.additionalProperties;
    if (typeof extra !== 'object' || depth > 2) return fixed;
    const keys = schema.propertyNames ? stringFor(schema.propertyNames) : fc.string({ minLength: 1, maxLength: 12 });
    const values = Object.keys(extra).length === 0 ? fc.jsonValue({ maxDepth: 2 }) : validValue(extra, [], depth + 1);
    const dictionary = fc.dictionary(keys, values, { maxKeys: Math.min(schema.maxProperties ?? 4, 4) });
    return fc.tuple(fixed, dictionary).map(([a, b]) => ({ ...b, ...a }));
  }
  return fc.jsonValue({ maxDepth: 2 });
}

/** Which pool a parameter or body field draws real values from. */
export function poolFor(pools: Pools, operation: Operation, name: string): string[] {
  if (name === 'tenant_id') return pools.tenantIds;
  if (name === 'id') return operation.path.startsWith('/v1/api-keys') ? pools.keyIds : pools.tenantIds;
  if (name === 'slug' || name === 'tenant_slug' || name === 'organization') return pools.slugs;
  if (name === 'product' || name === 'products') return pools.products;
  if (name === 'cursor') return pools.cursors;
  if (name === 'key') return pools.apiKeys;
  if (name === 'external_id') return pools.externalIds;
  if (name === 'admin_email') return pools.emails;
  return [];
}

function bodyFor(schema: Schema, pools: Pools, operation: Operation): fc.Arbitrary<unknown> {
  const arbitraries: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [name, property] of Object.entries(schema.properties ?? {})) {
    // A new tenant's slug is mostly new (an existing one, a third of the time, is the 409 path).
    const creates = operation.method === 'POST' && operation.path === '/v1/tenants' && name === 'slug';
    arbitraries[name] = creates
      ? fc.oneof({ arbitrary: fc.constantFrom(...pools.slugs), weight: 1 }, { arbitrary: validValue(property), weight: 2 })
      : validValue(property, poolFor(pools, operation, name));
  }
  const fixed = fc.record(arbitraries, { requiredKeys: schema.required ?? [] });
  const extra = schema.additionalProperties;
  if (typeof extra !== 'object') return fixed;
  return fc.tuple(fixed, validValue({ ...schema, properties: {}, required: [] })).map(([a, b]) => ({ ...(b as object), ...a }));
}

// ---------------------------------------------------------------------------------------------
// Requests

/** What one generated request is made of, before it is broken (or not). */
export interface RequestParts {
  path: Record<string, string>;
  query: Array<[string, string]>;
  headers: Record<string, string>;
  /** undefined: no body. */
  body: unknown;
}

/** One request as it goes on the wire. */
export interface HostileRequest {
  operation: string;
  /** How it was made: "valid" or the mutation's name. */
  mutation: string;
  method: string;
  /** Path and query string, percent-encoded (or deliberately not). */
  target: string;
  headers: Record<string, string>;
  body: string | null;
}

/** Percent-encoding that does not throw on a lone surrogate (it goes as U+FFFD, as a browser sends it). */
const encodeSegment = (text: string) => encodeURIComponent(text.toWellFormed());

const queryText = (value: unknown): string[] =>
  Array.isArray(value) ? value.map((item) => String(item)) : [typeof value === 'string' ? value : JSON.stringify(value)];

export function validParts(operation: Operation, pools: Pools): fc.Arbitrary<RequestParts> {
  const pathParams = operation.parameters.filter((p) => p.in === 'path');
  const queryParams = operation.parameters.filter((p) => p.in === 'query');
  const path = fc.record(
    Object.fromEntries(pathParams.map((p) => [p.name, validValue(p.schema, poolFor(pools, operation, p.name)).map(String)])),
  ) as fc.Arbitrary<Record<string, string>>;
  const query = fc
    .record(
      Object.fromEntries(queryParams.map((p) => [p.name, validValue(p.schema, poolFor(pools, operation, p.name))])),
      { requiredKeys: queryParams.filter((p) => p.required).map((p) => p.name) },
    )
    .map((values) => Object.entries(values).flatMap(([name, value]) => queryText(value).map((text): [string, string] => [name, text])));
  const idempotent = operation.parameters.some((p) => p.in === 'header' && p.name === 'idempotency-key');
  // A few fixed keys, so that retries (same request) and reuses (another request) both happen.
  const headers = idempotent
    ? fc
        .option(
          fc.oneof({ arbitrary: fc.constantFrom('fuzz-key-1', 'fuzz-key-2'), weight: 1 }, { arbitrary: fc.stringMatching(/^[\x21-\x7e]{1,40}$/), weight: 4 }),
          { nil: undefined },
        )
      .map((key): Record<string, string> => (key === undefined ? {} : { 'idempotency-key': key }))
    : fc.constant<Record<string, string>>({});
  const body = operation.body ? bodyFor(operation.body, pools, operation) : fc.constant(undefined);
  return fc.record({ path, query, headers, body });
}

export function render(operation: Operation, parts: RequestParts, mutation: string, overrides: Partial<HostileRequest> = {}): HostileRequest {
  const path = operation.path.replace(/\{([^}]+)\}/g, (_, name: string) => encodeSegment(parts.path[name] ?? ''));
  const query = new URLSearchParams(parts.query).toString();
  const hasBody = parts.body !== undefined;
  return {
    operation: operation.id,
    mutation,
    method: operation.method,
    target: query ? `${path}?${query}` : path,
    headers: { ...(hasBody ? { 'content-type': 'application/json' } : {}), ...parts.headers },
    body: hasBody ? JSON.stringify(parts.body) : null,
    ...overrides,
  };
}

// ---------------------------------------------------------------------------------------------
// Mutations

/** Text that has broken services before: injections, traversals, encodings, format strings. */
export const HOSTILE_FRAGMENTS = [
  "'; DROP TABLE tenants;--",
  "' OR '1'='1",
  '1; SELECT pg_sleep(10)--',
  '../',
  '../../../../etc/passwd',
  '..%2f..%2f',
  '%00',
  '%',
  '%zz',
  '%C0%AE%C0%AE/',
  '\u0000',
  '\ud800',
  '\udfff\ud800',
  '\u202e\u0000\u0007\u001b[31m',
  '\r\nX-Injected: yes',
  '${jndi:ldap://x/a}',
  '{{7*7}}',
  '<script>alert(1)</script>',
  '__proto__',
  'constructor',
  '=cmd|/c calc!A1',
  '\\',
  '"',
  'null',
  '-1',
  '1e309',
  '0x1F',
  ' ',
  '',
  '🧨👩‍👩‍👧‍👦',
  'Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇',
  '\ufeff\uffff\ufffe',
  'bp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA000000',
];

const CONTENT_TYPES = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=fuzz',
  'application/xml',
  'application/json-patch+json',
  'application/vnd.api+json',
  'application/jsonx',
  'application/json; charset=utf-16',
  'application/json; charset=latin1',
  'APPLICATION/JSON',
  'application/json, text/plain',
  'application/json;;;',
  '*/*',
  '',
  ';',
];

const MALFORMED_JSON: Array<(json: string) => string> = [
  (json) => json.slice(0, Math.max(1, json.length - 1)),
  (json) => json.slice(0, Math.ceil(json.length / 2)),
  (json) => json.replace(/}$/, ',}'),
  (json) => json.replace(/"/g, "'"),
  (json) => json.replace(/"([a-z_]+)":/g, '$1:'),
  (json) => `\ufeff${json}`,
  (json) => `${json}${json}`,
  (json) => `/* comment */${json}`,
  (json) => json.replace(/:("[^"]*"|\d+|true|false)/, ':NaN'),
  (json) => json.replace(/:("[^"]*"|\d+|true|false)/, ':1e99999'),
  (json) => json.replace(/:("[^"]*"|\d+|true|false)/, ':"\\x41"'),
  (json) => json.replace(/:("[^"]*"|\d+|true|false)/, ':"\\ud800"'),
  (json) => json.replace(/:("[^"]*"|\d+|true|false)/, ':"\\u0000"'),
  (json) => json.replace(/^\{/, '{"__proto__":{"polluted":true},'),
  (json) => json.replace(/^\{/, '{"constructor":{"prototype":{"polluted":true}},'),
  () => '{',
  () => '}',
  () => '{"a":}',
  () => 'undefined',
  () => '\u0000',
  () => '[',
  () => '-',
];

/** A path into a JSON value: where a mutation lands. */
type Slot = Array<string | number>;

function slotsOf(value: unknown, at: Slot = []): Slot[] {
  if (value === null || typeof value !== 'object') return [];
  const entries: Array<[string | number, unknown]> = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  return entries.flatMap(([key, item]) => [[...at, key], ...slotsOf(item, [...at, key])]);
}

function objectSlotsOf(value: unknown, at: Slot = []): Slot[] {
  if (value === null || typeof value !== 'object') return [];
  const own = Array.isArray(value) ? [] : [at];
  const entries: Array<[string | number, unknown]> = Array.isArray(value) ? value.map((v, i) => [i, v]) : Object.entries(value);
  return [...own, ...entries.flatMap(([key, item]) => objectSlotsOf(item, [...at, key]))];
}

/** A copy of `root` with `value` at `slot` (an own property even for "__proto__"); undefined deletes. */
function withValueAt(root: unknown, slot: Slot, value: unknown): unknown {
  if (slot.length === 0) return value;
  const copy: unknown = JSON.parse(JSON.stringify(root));
  let parent = copy as Record<string | number, unknown>;
  for (const key of slot.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
  const last = slot[slot.length - 1]!;
  if (value === undefined) {
    if (Array.isArray(parent)) parent.splice(Number(last), 1);
    else delete parent[last];
  } else {
    Object.defineProperty(parent, last, { value, enumerable: true, writable: true, configurable: true });
  }
  return copy;
}

const SENTINEL = '\u0001fuzz-sentinel\u0001';

/** `root` serialized with `raw` JSON text at `slot` (for values JSON.stringify cannot make, like 20,000 levels). */
function jsonWithRawAt(root: unknown, slot: Slot, raw: string): string {
  if (slot.length === 0) return raw;
  return JSON.stringify(withValueAt(root, slot, SENTINEL)).replace(JSON.stringify(SENTINEL), raw);
}

const anyOtherValue = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.string({ maxLength: 10 }),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 2 }),
);

const unicodeText = fc.oneof(
  fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }),
  fc.constantFrom('Ünïcødé ñame', '日本語のテナント', 'مستأجر', '\u202eevil\u202c', 'e\u0301\u0301\u0301', '\u{1F600}\u{1F4A9}', 'ﬁ', 'İı', '\u00a0\u2028\u2029'),
);

const controlText = fc
  .array(fc.oneof(fc.integer({ min: 0, max: 0x1f }), fc.constant(0x7f), fc.integer({ min: 0x20, max: 0x7e })), { minLength: 1, maxLength: 30 })
  .map((codes) => String.fromCharCode(...codes));

const hostileText = fc.oneof(fc.constantFrom(...HOSTILE_FRAGMENTS), fc.tuple(fc.constantFrom(...HOSTILE_FRAGMENTS), fc.string({ maxLength: 8 })).map(([a, b]) => b + a));

/** JSON nested `depth` levels deep, as text. */
const deepJson = fc
  .tuple(
    // Just past the limit, a few hundred, and the thousands where recursion overflows the stack.
    fc.oneof(
      { arbitrary: fc.integer({ min: 30, max: 40 }), weight: 1 },
      { arbitrary: fc.integer({ min: 41, max: 1_000 }), weight: 1 },
      { arbitrary: fc.constantFrom(5_000, 8_000, 10_000, 12_000, 30_000), weight: 3 },
    ),
    fc.constantFrom('array', 'object'),
  )
  .map(([depth, kind]) => (kind === 'array' ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"":'.repeat(depth)}{}${'}'.repeat(depth)}`));

/** Path characters Node's client refuses to send raw; they go percent-encoded even in "raw" mode. */
const rawPathSafe = (text: string) => text.replace(/[^\x21-\x7e]/gu, (c) => encodeSegment(c)).replace(/[?#]/g, encodeURIComponent);

export interface MutationContext {
  operation: Operation;
  parts: RequestParts;
  bodyLimit: number;
}

type Mutation = (context: MutationContext) => fc.Arbitrary<HostileRequest> | null;

/** Mutations of the body: applied to every operation, also those that take none (a body where none belongs). */
const bodyMutations: Record<string, Mutation> = {
  'body:wrong-type': ({ operation, parts }) => {
    const slots = slotsOf(parts.body);
    if (slots.length === 0) return null;
    return fc.tuple(fc.constantFrom(...slots), anyOtherValue).map(([slot, value]) =>
      render(operation, { ...parts, body: withValueAt(parts.body, slot, value) }, 'body:wrong-type'),
    );
  },
  'body:missing-field': ({ operation, parts }) => {
    const slots = slotsOf(parts.body);
    if (slots.length === 0) return null;
    return fc.constantFrom(...slots).map((slot) => render(operation, { ...parts, body: withValueAt(parts.body, slot, undefined) }, 'body:missing-field'));
  },
  'body:extra-field': ({ operation, parts }) => {
    const objects = objectSlotsOf(parts.body ?? {});
    const base = parts.body ?? {};
    const name = fc.oneof(fc.string({ minLength: 1, maxLength: 20 }), fc.constantFrom('__proto__', 'constructor', 'prototype', 'id', 'status', 'hash', 'tenant_id', 'bp_secretsecretsecret123'));
    return fc.tuple(fc.constantFrom(...objects), name, anyOtherValue).map(([slot, key, value]) =>
      render(operation, { ...parts, body: withValueAt(base, [...slot, key], value) }, 'body:extra-field'),
    );
  },
  'body:huge-string': ({ operation, parts, bodyLimit }) => {
    const slots = slotsOf(parts.body);
    const size = JSON.stringify(parts.body ?? {}).length;
    const room = Math.max(1_000, bodyLimit - size - 200);
    const target = slots.length > 0 ? fc.constantFrom(...slots) : fc.constant<Slot>(['huge']);
    return fc.tuple(target, fc.integer({ min: 201, max: room }), fc.constantFrom('a', 'é', '\u{1F600}', ' ')).map(([slot, length, char]) =>
      render(operation, { ...parts, body: withValueAt(parts.body ?? {}, slot, char.repeat(Math.max(1, Math.floor(length / Buffer.byteLength(char))))) }, 'body:huge-string'),
    );
  },
  'body:unicode': ({ operation, parts }) => {
    const slots = slotsOf(parts.body);
    if (slots.length === 0) return null;
    return fc.tuple(fc.constantFrom(...slots), unicodeText).map(([slot, text]) => render(operation, { ...parts, body: withValueAt(parts.body, slot, text) }, 'body:unicode'));
  },
  'body:control-chars': ({ operation, parts }) => {
    const slots = slotsOf(parts.body);
    if (slots.length === 0) return null;
    return fc.tuple(fc.constantFrom(...slots), controlText).map(([slot, text]) => render(operation, { ...parts, body: withValueAt(parts.body, slot, text) }, 'body:control-chars'));
  },
  'body:injection': ({ operation, parts }) => {
    const slots = slotsOf(parts.body);
    if (slots.length === 0) return null;
    return fc.tuple(fc.constantFrom(...slots), hostileText).map(([slot, text]) => render(operation, { ...parts, body: withValueAt(parts.body, slot, text) }, 'body:injection'));
  },
  'body:deep-nesting': ({ operation, parts }) => {
    // In place of a value, under a new key of an object (where free-form JSON is allowed, that
    // passes validation and reaches the code behind it), or as the whole body.
    const values = slotsOf(parts.body);
    const newKeys = objectSlotsOf(parts.body ?? {}).map((slot) => [...slot, 'nested']);
    const target = fc.oneof(
      { arbitrary: values.length > 0 ? fc.constantFrom(...values) : fc.constant<Slot>([]), weight: 2 },
      { arbitrary: fc.constantFrom(...newKeys), weight: 2 },
      { arbitrary: fc.constant<Slot>([]), weight: 1 },
    );
    return fc.tuple(target, deepJson).map(([slot, raw]) =>
      render(operation, parts, 'body:deep-nesting', {
        body: jsonWithRawAt(parts.body ?? {}, slot, raw),
        headers: { ...parts.headers, 'content-type': 'application/json' },
      }),
    );
  },
  'body:not-an-object': ({ operation, parts }) =>
    fc.constantFrom('[]', '[{}]', '"text"', '0', '-1.5e3', 'null', 'true', '""', '[null]').map((raw) =>
      render(operation, parts, 'body:not-an-object', { body: raw, headers: { ...parts.headers, 'content-type': 'application/json' } }),
    ),
  'body:malformed-json': ({ operation, parts }) =>
    fc.constantFrom(...MALFORMED_JSON).map((breakIt) =>
      render(operation, parts, 'body:malformed-json', {
        body: breakIt(JSON.stringify(parts.body ?? { a: 1 })),
        headers: { ...parts.headers, 'content-type': 'application/json' },
      }),
    ),
  'body:content-type': ({ operation, parts }) =>
    fc.option(fc.constantFrom(...CONTENT_TYPES), { nil: undefined }).map((type) => {
      const headers: Record<string, string> = { ...parts.headers };
      if (type !== undefined) headers['content-type'] = type;
      return render(operation, parts, 'body:content-type', { body: JSON.stringify(parts.body ?? {}), headers });
    }),
  'body:oversized': ({ operation, parts, bodyLimit }) =>
    fc.tuple(fc.integer({ min: bodyLimit + 1, max: bodyLimit * 4 }), fc.constantFrom('application/json', 'text/plain')).map(([size, type]) => {
      const json = JSON.stringify(withValueAt(parts.body ?? {}, ['padding'], ''));
      const body = json.replace('"padding":""', `"padding":"${'x'.repeat(Math.max(0, size - json.length))}"`);
      return render(operation, parts, 'body:oversized', { body, headers: { ...parts.headers, 'content-type': type } });
    }),
  'body:empty': ({ operation, parts }) =>
    fc.constantFrom('application/json', undefined, 'text/plain').map((type) =>
      render(operation, parts, 'body:empty', { body: '', headers: { ...parts.headers, ...(type ? { 'content-type': type } : {}) } }),
    ),
};

const otherMutations: Record<string, Mutation> = {
  'path:hostile': ({ operation, parts }) => {
    const names = Object.keys(parts.path);
    if (names.length === 0) return null;
    const value = fc.oneof(
      hostileText.map((text) => ({ text, raw: false })),
      fc.constantFrom('../', '..', '.', '%2e%2e', '%00', '%', '%zz', '%C0%AE', '..%2F..%2Fhealthz', '%252e', '//', '\\..\\').map((text) => ({ text, raw: true })),
      unicodeText.map((text) => ({ text, raw: false })),
      controlText.map((text) => ({ text, raw: false })),
      // Long segments: the longest end in 431 (the request line counts toward the header limit).
      fc.integer({ min: 100, max: 24_000 }).map((length) => ({ text: 'a'.repeat(length), raw: false })),
      fc.constantFrom('00000000-0000-0000-0000-000000000000', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF', 'urn:uuid:00000000-0000-0000-0000-000000000001', '{00000000-0000-0000-0000-000000000001}', '00000000000000000000000000000001').map((text) => ({ text, raw: false })),
    );
    return fc.tuple(fc.constantFrom(...names), value).map(([name, { text, raw }]) => {
      const path = operation.path.replace(/\{([^}]+)\}/g, (_, param: string) =>
        param === name ? (raw ? rawPathSafe(text) : encodeSegment(text)) : encodeSegment(parts.path[param] ?? ''),
      );
      const query = new URLSearchParams(parts.query).toString();
      return render(operation, parts, 'path:hostile', { target: query ? `${path}?${query}` : path });
    });
  },
  'query:hostile': ({ operation, parts }) => {
    const known = operation.parameters.filter((p) => p.in === 'query').map((p) => p.name);
    const name = fc.oneof(fc.constantFrom(...known, 'tenant_id', 'limit', '__proto__', 'constructor', 'toString'), fc.string({ minLength: 1, maxLength: 10 }));
    const value = fc.oneof(
      hostileText,
      unicodeText,
      controlText,
      anyOtherValue.map((v) => JSON.stringify(v)),
      fc.constantFrom('-1', '0', '201', '1e999', '1.5', 'NaN', 'true', 'maybe', '', '[]', '{}', 'null', '9'.repeat(400), '2024-13-45T25:61:61Z', '0000-01-01T00:00:00Z', '9999-12-31T23:59:60Z', '1970-01-01T00:00:00+25:00'),
      fc.integer({ min: 201, max: 12_000 }).map((length) => 'q'.repeat(length)),
    );
    const raw = fc.constantFrom('%', '%zz', '%00', '%C0%AE', '%FF%FE', '&&&', '==', 'a=b=c', '[]=1', 'limit[]=1', 'tenant_id[0]=x', 'cursor=%ZZ');
    return fc.oneof(
      // Replace or repeat a parameter with a hostile value.
      fc.tuple(name, value, fc.boolean()).map(([key, text, repeat]) => {
        const query = repeat ? [...parts.query, [key, text] as [string, string]] : [...parts.query.filter(([k]) => k !== key), [key, text] as [string, string]];
        return render(operation, { ...parts, query }, 'query:hostile');
      }),
      // Raw, undecodable query text.
      raw.map((text) => {
        const valid = render(operation, parts, 'query:hostile');
        return { ...valid, target: `${valid.target}${valid.target.includes('?') ? '&' : '?'}${text}` };
      }),
    );
  },
  'header:hostile': ({ operation, parts }) =>
    fc
      .record({
        name: fc.constantFrom('idempotency-key', 'x-request-id', 'accept', 'accept-encoding', 'content-encoding', 'x-forwarded-for', 'transfer-encoding'),
        value: fc.oneof(
          fc.constantFrom('', ' ', 'a b', '*', 'application/xml', 'gzip', 'br, deflate', 'chunked, gzip', '127.0.0.1, 10.0.0.1, ::1', "'; DROP TABLE tenants;--", '../'),
          fc.integer({ min: 200, max: 8_000 }).map((length) => 'k'.repeat(length)),
          fc.stringMatching(/^[\x20-\x7e]{1,60}$/),
        ),
      })
      .map(({ name, value }) => render(operation, { ...parts, headers: { ...parts.headers, [name]: value } }, 'header:hostile')),
  'method:other': ({ operation, parts }) =>
    fc.constantFrom('PATCH', 'OPTIONS', 'PUT', 'DELETE', 'POST', 'GET', 'HEAD')
      .filter((method) => method !== operation.method)
      .map((method) => render(operation, parts, 'method:other', { method, ...(method === 'GET' || method === 'HEAD' ? { body: null } : {}) })),
};

export const MUTATIONS = ['valid', ...Object.keys(bodyMutations), ...Object.keys(otherMutations)];

/** Valid requests (a third) and every applicable mutation of them (the rest). */
export function requestArbitrary(operation: Operation, pools: Pools, bodyLimit: number): fc.Arbitrary<HostileRequest> {
  return validParts(operation, pools).chain((parts) => {
    const context = { operation, parts, bodyLimit };
    const mutated = [...Object.values(bodyMutations), ...Object.values(otherMutations)]
      .map((mutation) => mutation(context))
      .filter((arbitrary): arbitrary is fc.Arbitrary<HostileRequest> => arbitrary !== null);
    const valid = fc.constant(render(operation, parts, 'valid'));
    return fc.oneof({ arbitrary: valid, weight: Math.ceil(mutated.length / 2) }, ...mutated.map((arbitrary) => ({ arbitrary, weight: 1 })));
  }).map((request) => Object.assign(request, { [fc.toStringMethod]: () => describeRequest(request) }));
}

/** A request as a failure report shows it: long bodies and targets cut short. */
export function describeRequest(request: HostileRequest): string {
  const cut = (text: string) => (text.length > 300 ? `${text.slice(0, 300)}… (${text.length} chars)` : text);
  return JSON.stringify({ ...request, target: cut(request.target), body: request.body === null ? null : cut(request.body) });
}

// ---------------------------------------------------------------------------------------------
// Sending

export interface RawAnswer {
  status: number;
  contentType: string;
  text: string;
}

/**
 * Sends the request as given (no URL normalization, so "../" reaches the server) on a fresh
 * connection: the server closes connections after some errors, and a reused socket would make
 * that look like a failure of the next request. The connection says keep-alive all the same, and
 * the client closes it once the answer is in: with "Connection: close", a server that answers
 * before reading a large body (GET /metrics with 200 KB attached) closes with unread data, the
 * kernel resets the connection, and the answer is lost in transit; that is TCP, not the service.
 */
export function send(baseUrl: string, token: string, request: HostileRequest): Promise<RawAnswer> {
  const { hostname, port } = new URL(baseUrl);
  const body = request.body === null ? null : Buffer.from(request.body, 'utf8');
  return new Promise((resolve, reject) => {
    let answered = false;
    const outgoing = http.request(
      {
        host: hostname,
        port: Number(port),
        method: request.method,
        path: request.target,
        agent: false,
        headers: {
          authorization: `Bearer ${token}`,
          connection: 'keep-alive',
          ...request.headers,
          ...(body ? { 'content-length': String(body.length) } : {}),
        },
        timeout: 20_000,
      },
      (response) => {
        answered = true;
        const chunks: Buffer[] = [];
        const contentType = String(response.headers['content-type'] ?? '');
        // An event stream never ends: its first chunk is the answer.
        if (contentType.startsWith('text/event-stream')) {
          response.once('data', (chunk: Buffer) => {
            resolve({ status: response.statusCode ?? 0, contentType, text: chunk.toString('utf8') });
            outgoing.destroy();
          });
          return;
        }
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          resolve({ status: response.statusCode ?? 0, contentType: String(response.headers['content-type'] ?? ''), text: Buffer.concat(chunks).toString('utf8') });
          outgoing.destroy();
        });
        response.on('error', reject);
      },
    );
    outgoing.on('timeout', () => outgoing.destroy(new Error('no answer within 20 s')));
    // The server may answer (413) and close before the whole body is written: the answer counts.
    outgoing.on('error', (error) => {
      if (!answered) reject(error);
    });
    outgoing.end(body ?? undefined);
  });
}
