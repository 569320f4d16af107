// Change events: what consumers (the feed, webhooks, JetStream) learn of each change the registry
// makes. One per change, written with its audit event; it carries what a consumer acts on (which
// tenant, what changed, by whom) and never a secret: key material stays in the answer that
// created it, and the audit fields it copies are the ones the audit log already holds.
import type { AuditActor, AuditTarget, StringMap } from './audit.js';

export interface ChangeEventData {
  actor: { id: string; name: string | null };
  target: { id: string; type: string | null; name: string | null };
  product: string | null;
  fields: StringMap;
}

export interface ChangeEvent {
  id: string;
  /** The event's place in the global sequence: 1, 2, 3, ... with no gaps. */
  seq: number;
  /** The audit action of the change: tenant.created, entitlement.granted, api_key.revoked, ... */
  type: string;
  tenant_id: string | null;
  /** The seq of the tenant's previous event; null for its first. */
  tenant_prev_seq: number | null;
  occurred_at: string;
  data: ChangeEventData;
}

export function changeEventData(actor: AuditActor, target: AuditTarget, product: string | null, fields: StringMap | null): ChangeEventData {
  return {
    actor: { id: actor.id, name: actor.name ?? null },
    target: { id: target.id, type: target.type ?? null, name: target.name ?? null },
    product,
    fields: fields ?? {},
  };
}

/** Event types are dotted names; a filter of `tenant.*` takes every type of that namespace. */
export function typeMatcher(patterns: readonly string[]): (type: string) => boolean {
  if (patterns.length === 0) return () => true;
  const exact = new Set(patterns.filter((pattern) => !pattern.endsWith('.*')));
  const prefixes = patterns.filter((pattern) => pattern.endsWith('.*')).map((pattern) => pattern.slice(0, -1));
  return (type) => exact.has(type) || prefixes.some((prefix) => type.startsWith(prefix));
}

/** How an event type filter is written: a dotted name, or a namespace followed by `.*`. */
export const TYPE_FILTER_PATTERN = '^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*(\\.\\*)?$';
