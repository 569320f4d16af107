// Shapes of audit events (Retraced-compatible) as published, stored, listed and exported.
import Type, { type Static } from 'typebox';
import { Nullable, RefTo, Text, Timestamp, Uuid } from './parts.js';
import { ACTION_FILTER_PATTERN, ACTION_PATTERN, CRUD_LETTERS } from '../../domain/audit.js';
import { CHAIN_BREAKS } from '../../domain/audit-chain.js';
import { PRODUCT_CODE_PATTERN } from '../../domain/products.js';

// WorkOS's limits for the same maps: enough for real context, too small to smuggle documents.
const MAP_MAX_KEYS = 50;
const MAP_KEY_MAX = 40;
const MAP_VALUE_MAX = 500;

/** A flat string-to-string map with bounded keys and values (fields, metadata). */
export const StringMap = (description: string) =>
  Type.Unsafe<Record<string, string>>({
    type: 'object',
    description,
    maxProperties: MAP_MAX_KEYS,
    propertyNames: { minLength: 1, maxLength: MAP_KEY_MAX, pattern: '^[A-Za-z0-9_.:-]+$' },
    additionalProperties: { type: 'string', maxLength: MAP_VALUE_MAX },
  });

const Action = Type.String({ pattern: ACTION_PATTERN, description: 'what happened, e.g. document.shared' });
const Crud = Type.Enum(CRUD_LETTERS, { description: 'create, read, update or delete' });
const Product = Type.String({ pattern: PRODUCT_CODE_PATTERN, description: 'the product code' });
const Href = Type.String({ format: 'uri', maxLength: 2000 });
// The standard spelling of "an IPv4 or IPv6 address": every validator knows both formats.
// (http/validation.ts gives them Node's own isIP, which decided this field before.)
const Ip = Type.Unsafe<string>({
  type: 'string',
  maxLength: 45,
  anyOf: [{ format: 'ipv4' }, { format: 'ipv6' }],
  description: 'an IPv4 or IPv6 address',
});

const Group = Type.Object(
  { id: Text(200), name: Type.Optional(Text(200)) },
  { additionalProperties: false, description: 'the tenant as the publisher names it' },
);
const Actor = Type.Object(
  {
    id: Text(200),
    name: Type.Optional(Text(200)),
    href: Type.Optional(Href),
    fields: Type.Optional(StringMap('facts about the actor')),
  },
  { additionalProperties: false, description: 'who did it; required unless is_anonymous' },
);
const Target = Type.Object(
  {
    id: Text(200),
    name: Type.Optional(Text(200)),
    href: Type.Optional(Href),
    type: Type.Optional(Text(100)),
    fields: Type.Optional(StringMap('facts about the target')),
  },
  { additionalProperties: false, description: 'what it was done to' },
);

export const AuditEventBody = Type.Object(
  {
    action: Action,
    crud: Crud,
    tenant_id: Type.Optional(Uuid({ description: 'the tenant whose chain the event joins; none for platform events' })),
    product: Type.Optional(Product),
    group: Type.Optional(Group),
    actor: Type.Optional(Actor),
    target: Type.Optional(Target),
    source_ip: Type.Optional(Ip),
    created: Type.Optional(Timestamp({ description: 'when it happened; defaults to when it was received' })),
    description: Type.Optional(Type.String({ minLength: 1, maxLength: 2000 })),
    is_failure: Type.Optional(Type.Boolean()),
    is_anonymous: Type.Optional(Type.Boolean()),
    fields: Type.Optional(StringMap('indexed facts about the event')),
    metadata: Type.Optional(StringMap('further facts, not indexed')),
    component: Type.Optional(Text(100)),
    version: Type.Optional(Text(100)),
    external_id: Type.Optional(Text(200, { description: 'the publisher\'s id; a retry with it appends nothing' })),
  },
  {
    additionalProperties: false,
    // Who did it is required unless the event says no one known did: is_anonymous absent or
    // false (a property that is absent satisfies its schema) needs an actor.
    if: { properties: { is_anonymous: { const: false } } },
    then: { properties: { actor: {} }, required: ['actor'] },
  },
);
export type AuditEventBodyInput = Static<typeof AuditEventBody>;

export const AppendedEventSchema = Type.Object(
  { id: Uuid(), hash: Type.String({ description: 'SHA-256 (hex) of the event and the one before it' }) },
  { $id: 'AppendedAuditEvent', title: 'AppendedAuditEvent', additionalProperties: false, description: 'Where the event went' },
);

const StoredMap = Nullable(Type.Record(Type.String(), Type.String()));

export const AuditEventSchema = Type.Object(
  {
    id: Uuid(),
    tenant_id: Nullable(Uuid({ description: 'NULL once the tenant is deleted' })),
    product: Nullable(Type.String()),
    action: Type.String(),
    crud: Crud,
    group: Nullable(Type.Object({ id: Type.String(), name: Nullable(Type.String()) })),
    actor: Nullable(
      Type.Object({
        id: Type.String(),
        name: Nullable(Type.String()),
        href: Nullable(Type.String()),
        fields: StoredMap,
      }),
    ),
    target: Nullable(
      Type.Object({
        id: Type.String(),
        name: Nullable(Type.String()),
        href: Nullable(Type.String()),
        type: Nullable(Type.String()),
        fields: StoredMap,
      }),
    ),
    source_ip: Nullable(Type.String()),
    created: Timestamp(),
    received: Timestamp(),
    description: Nullable(Type.String()),
    is_failure: Type.Boolean(),
    is_anonymous: Type.Boolean(),
    fields: StoredMap,
    metadata: StoredMap,
    component: Nullable(Type.String()),
    version: Nullable(Type.String()),
    external_id: Nullable(Type.String()),
    publisher: Nullable(
      Type.Object(
        {
          sub: Type.String({ description: 'subject of the token that published it' }),
          client: Nullable(Type.String({ description: 'the OAuth client that token was issued to' })),
        },
        {
          additionalProperties: false,
          description: 'who published it through POST /v1/audit; null for the events the registry writes itself',
        },
      ),
    ),
    hash: Nullable(Type.String()),
    chain: Type.Object(
      {
        key: Type.String({ description: "the chain: the tenant's id (kept after the tenant is deleted) or platform" }),
        seq: Type.Integer({ minimum: 1, description: 'position in the chain, from 1 without gaps' }),
        prev_hash: Nullable(Type.String({ description: 'hash of the event before it in the chain; null for the first' })),
        canonical_version: Type.Integer({ minimum: 1, description: 'which canonical form the hash covers (README, Audit log)' }),
      },
      { additionalProperties: false, description: 'where the event sits in its hash chain: enough to verify an export offline' },
    ),
  },
  { $id: 'AuditEvent', title: 'AuditEvent', additionalProperties: false },
);
export type AuditEvent = Static<typeof AuditEventSchema>;

/** The filters shared by the list and the export. */
export const AuditFilterQuery = {
  tenant_id: Type.Optional(Uuid()),
  product: Type.Optional(Product),
  actor_id: Type.Optional(Text(200)),
  action: Type.Optional(
    Type.String({
      pattern: ACTION_FILTER_PATTERN,
      description: 'exact, or a prefix when it ends with * (tenant.*)',
    }),
  ),
  target_id: Type.Optional(Text(200)),
  target_type: Type.Optional(Text(100)),
  crud: Type.Optional(Crud),
  is_failure: Type.Optional(Type.Boolean()),
  since: Type.Optional(Timestamp({ description: 'events created at or after' })),
  until: Type.Optional(Timestamp({ description: 'events created before' })),
};

export const AuditListQuery = Type.Object(
  {
    ...AuditFilterQuery,
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
    cursor: Type.Optional(Type.String({ maxLength: 200, description: 'next_cursor of the previous page' })),
  },
  { additionalProperties: false },
);

export const AuditPageSchema = Type.Object(
  {
    items: Type.Array(RefTo(AuditEventSchema)),
    next_cursor: Nullable(Type.String({ description: 'pass as cursor for the next page; null on the last' })),
  },
  { $id: 'AuditEventPage', title: 'AuditEventPage', additionalProperties: false, description: 'One page of events' },
);

export const AuditExportQuery = Type.Object(
  { ...AuditFilterQuery, format: Type.Optional(Type.Enum(['ndjson', 'csv'], { default: 'ndjson' })) },
  { additionalProperties: false },
);

export const AuditVerifyQuery = Type.Object(
  { tenant_id: Type.Optional(Uuid({ description: 'the tenant chain; the platform chain when absent' })) },
  { additionalProperties: false },
);

export const ChainReportSchema = Type.Object(
  {
    ok: Type.Boolean(),
    checked: Type.Integer({ description: 'events whose hash was recomputed and matched' }),
    first_broken_id: Type.Optional(Uuid()),
    reason: Type.Optional(Type.Enum(CHAIN_BREAKS)),
  },
  { $id: 'AuditChainReport', title: 'AuditChainReport', additionalProperties: false, description: 'The result of re-walking the chain' },
);
