// The audit event and its tamper evidence. An event is hashed over a canonical serialization of
// every field it carries plus the hash of the event before it in the same chain, so changing,
// removing or inserting any event breaks every hash after it. Pure functions only: the store
// decides the chain position, this file decides what the hash covers.
import { createHash } from 'node:crypto';

export type Crud = 'c' | 'r' | 'u' | 'd';
export type StringMap = Record<string, string>;

export interface AuditGroup {
  id: string;
  name?: string | null;
}
export interface AuditActor {
  id: string;
  name?: string | null;
  href?: string | null;
  fields?: StringMap | null;
}
export interface AuditTarget {
  id: string;
  name?: string | null;
  href?: string | null;
  type?: string | null;
  fields?: StringMap | null;
}

/** What a publisher (or the service itself) says happened. */
export interface AuditEventInput {
  action: string;
  crud: Crud;
  tenant_id?: string | null;
  product?: string | null;
  group?: AuditGroup | null;
  actor?: AuditActor | null;
  target?: AuditTarget | null;
  source_ip?: string | null;
  created?: string | null;
  description?: string | null;
  is_failure?: boolean;
  is_anonymous?: boolean;
  fields?: StringMap | null;
  metadata?: StringMap | null;
  component?: string | null;
  version?: string | null;
  external_id?: string | null;
}

/** Optional members made explicit: absent is null, so every stored event has the same keys. */
type Normalized<T> = { [K in keyof T]-?: Exclude<T[K], undefined> };

/** An event as stored: the input, normalized, with its identity and chain position. */
export interface AuditRecord {
  id: string;
  chain_key: string;
  chain_seq: number;
  prev_hash: string | null;
  tenant_id: string | null;
  product: string | null;
  action: string;
  crud: Crud;
  group: Normalized<AuditGroup> | null;
  actor: Normalized<AuditActor> | null;
  target: Normalized<AuditTarget> | null;
  source_ip: string | null;
  /** When it happened (the publisher's `created`, else `received`); the order of queries. */
  created: string;
  received: string;
  description: string | null;
  is_failure: boolean;
  is_anonymous: boolean;
  fields: StringMap | null;
  metadata: StringMap | null;
  component: string | null;
  version: string | null;
  external_id: string | null;
}

/** The chain of platform events, which belong to no tenant. */
export const PLATFORM_CHAIN = 'platform';

/** A UUID may arrive in either case; one tenant must always land in one chain. */
export const chainKeyOf = (tenantId: string | null | undefined): string => tenantId?.toLowerCase() ?? PLATFORM_CHAIN;

/** Version of the canonical form; bump it (and keep the old one verifiable) to change it. */
const CANONICAL_VERSION = 1;

/** JSON with object keys sorted at every depth: one byte sequence per value. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((item: unknown) => canonicalJson(item ?? null)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

const nullable = <T>(value: T | null | undefined): T | null => value ?? null;

const normalizeGroup = (group: AuditGroup | null): Normalized<AuditGroup> | null =>
  group ? { id: group.id, name: nullable(group.name) } : null;
const normalizeActor = (actor: AuditActor | null): Normalized<AuditActor> | null =>
  actor ? { id: actor.id, name: nullable(actor.name), href: nullable(actor.href), fields: nullable(actor.fields) } : null;
const normalizeTarget = (target: AuditTarget | null): Normalized<AuditTarget> | null =>
  target
    ? {
        id: target.id,
        name: nullable(target.name),
        href: nullable(target.href),
        type: nullable(target.type),
        fields: nullable(target.fields),
      }
    : null;

/**
 * What the hash covers: every field of the record except tenant_id, which the database sets to
 * NULL when the tenant is deleted. The chain key carries the tenant instead and never changes.
 */
export function canonicalForm(record: AuditRecord): string {
  return canonicalJson({
    v: CANONICAL_VERSION,
    id: record.id,
    chain: record.chain_key,
    seq: record.chain_seq,
    prev: record.prev_hash,
    product: record.product,
    action: record.action,
    crud: record.crud,
    group: normalizeGroup(record.group),
    actor: normalizeActor(record.actor),
    target: normalizeTarget(record.target),
    source_ip: record.source_ip,
    created: record.created,
    received: record.received,
    description: record.description,
    is_failure: record.is_failure,
    is_anonymous: record.is_anonymous,
    fields: record.fields,
    metadata: record.metadata,
    component: record.component,
    version: record.version,
    external_id: record.external_id,
  });
}

/** SHA-256 (hex) of the canonical form; prev_hash is inside it, which links the chain. */
export function hashRecord(record: AuditRecord): string {
  return createHash('sha256').update(canonicalForm(record)).digest('hex');
}

/** Builds the record for an input at a chain position. Times are millisecond ISO strings. */
export function toRecord(
  input: AuditEventInput,
  position: { id: string; chainSeq: number; prevHash: string | null; received: Date },
): AuditRecord {
  const received = position.received.toISOString();
  return {
    id: position.id,
    chain_key: chainKeyOf(input.tenant_id),
    chain_seq: position.chainSeq,
    prev_hash: position.prevHash,
    tenant_id: input.tenant_id?.toLowerCase() ?? null,
    product: nullable(input.product),
    action: input.action,
    crud: input.crud,
    group: normalizeGroup(nullable(input.group)),
    actor: normalizeActor(nullable(input.actor)),
    target: normalizeTarget(nullable(input.target)),
    source_ip: nullable(input.source_ip),
    created: input.created ? new Date(input.created).toISOString() : received,
    received,
    description: nullable(input.description),
    is_failure: input.is_failure ?? false,
    is_anonymous: input.is_anonymous ?? false,
    fields: nullable(input.fields),
    metadata: nullable(input.metadata),
    component: nullable(input.component),
    version: nullable(input.version),
    external_id: nullable(input.external_id),
  };
}
