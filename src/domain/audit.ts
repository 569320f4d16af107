// The audit event and its tamper evidence. An event is hashed over a canonical serialization of
// every field it carries plus the hash of the event before it in the same chain, so changing,
// removing or inserting any event breaks every hash after it. Pure functions only: the store
// decides the chain position, this file decides what the hash covers.
import { createHash } from 'node:crypto';

/** Create, read, update, delete: what an event did (Retraced's crud). */
export const CRUD_LETTERS = ['c', 'r', 'u', 'd'] as const;
export type Crud = (typeof CRUD_LETTERS)[number];

/** Actions are dotted words (tenant.created): a letter or digit, then up to 127 of these. */
export const ACTION_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$';
/** The action filter of queries: an action, or a prefix of one ending in * (tenant.*). */
export const ACTION_FILTER_PATTERN = ACTION_PATTERN.replace(/\$$/, '\\*?$');
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

/**
 * Who published an event through POST /v1/audit: the token's subject and the OAuth client it was
 * issued to. The registry's own events have none: it is their author.
 */
export interface AuditPublisher {
  sub: string;
  client: string | null;
}

/** The canonical forms a stored hash may cover: 1 before publishers were recorded, 2 since. */
export type CanonicalVersion = 1 | 2;

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
  publisher: AuditPublisher | null;
  /** The canonical form its hash covers; new events always get CANONICAL_VERSION. */
  canonical_version: CanonicalVersion;
}

/** The chain of platform events, which belong to no tenant. */
export const PLATFORM_CHAIN = 'platform';

/** A UUID may arrive in either case; one tenant must always land in one chain. */
export const chainKeyOf = (tenantId: string | null | undefined): string => tenantId?.toLowerCase() ?? PLATFORM_CHAIN;

/**
 * Version of the canonical form new events are hashed with; bump it (and keep every older one
 * verifiable) to change what a hash covers. Version 2 added the publisher.
 */
export const CANONICAL_VERSION: CanonicalVersion = 2;

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
 * Version 1 predates the publisher and leaves it out; version 2 includes it (null included).
 */
export function canonicalForm(record: AuditRecord): string {
  return canonicalJson({
    v: record.canonical_version,
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
    ...(record.canonical_version >= 2 ? { publisher: record.publisher ? { sub: record.publisher.sub, client: record.publisher.client } : null } : {}),
  });
}

/** SHA-256 (hex) of the canonical form; prev_hash is inside it, which links the chain. */
export function hashRecord(record: AuditRecord): string {
  return createHash('sha256').update(canonicalForm(record)).digest('hex');
}

/**
 * The largest event stored, in bytes of its canonical form (UTF-8). Real audit events take a
 * kilobyte or two; 32 KiB leaves room for generous metadata while a reader of a thousand events
 * of this size holds megabytes, not the hundreds a 110 KB event allowed.
 */
export const MAX_EVENT_BYTES = 32 * 1024;

/** The size an event is measured by against MAX_EVENT_BYTES. */
export const eventBytes = (record: AuditRecord): number => Buffer.byteLength(canonicalForm(record), 'utf8');

/**
 * Namespaces of the registry's own actions: only the registry writes them, so an event
 * `tenant.activated` in the log is always the registry's record of a real transition. Compared
 * by the action's first word, in any case and with - for _, so `Tenant:activated` is taken too.
 */
export const RESERVED_ACTION_NAMESPACES = ['tenant', 'api_key', 'entitlement', 'catalog', 'keycloak', 'webhook'] as const;

export function isReservedAction(action: string): boolean {
  const namespace = action.split(/[.:/]/, 1)[0]!.toLowerCase().replace(/-/g, '_');
  return (RESERVED_ACTION_NAMESPACES as readonly string[]).includes(namespace);
}

/**
 * How far a publisher's `created` may lie from when the registry received the event. The log is
 * read newest first by `created`: an event dated in the future would stay on top of every page
 * until that date. Five minutes forgives clock skew; thirty days lets a product deliver events it
 * queued through an outage, and is the history an auditor sees arrive late (`received` tells).
 */
export const CREATED_MAX_AHEAD_MS = 5 * 60 * 1000;
export const CREATED_MAX_BEHIND_MS = 30 * 24 * 60 * 60 * 1000;

/** Whether a publisher's `created` is acceptable for an event received at `received`. */
export function isCreatedInWindow(created: string, received: Date): boolean {
  const offset = Date.parse(created) - received.getTime();
  return offset <= CREATED_MAX_AHEAD_MS && offset >= -CREATED_MAX_BEHIND_MS;
}

/** Builds the record for an input at a chain position. Times are millisecond ISO strings. */
export function toRecord(
  input: AuditEventInput,
  position: { id: string; chainSeq: number; prevHash: string | null; received: Date; publisher?: AuditPublisher | null },
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
    publisher: position.publisher ?? null,
    canonical_version: CANONICAL_VERSION,
  };
}
