// The events the service writes about its own changes. Each is appended inside the transaction
// of the change it describes, so the change and its event commit together or not at all. Every
// service in this folder takes an Origin (who caused the change): a request's principal (http/origin.ts)
// or the service's own scheduled work (SYSTEM_ORIGIN).
import type { AuditActor, AuditEventInput, AuditTarget, Crud, StringMap } from '../domain/audit.js';
import { changeEventData } from '../domain/change-event.js';
import { appendEvent } from '../store/audit.js';
import { insertChangeEvent } from '../store/events.js';
import { requestSync } from '../store/keycloak-sync.js';
import type { Queryable } from '../store/database.js';
import { SERVICE_VERSION } from '../version.js';

/** Who acts when no request does: the service's own scheduled work. */
export const SYSTEM_ACTOR: AuditActor = { id: 'system', name: 'tenant-registry', fields: { kind: 'system' } };

/** Who caused a change and from where. */
export interface Origin {
  actor: AuditActor;
  sourceIp: string | null;
}

export const SYSTEM_ORIGIN: Origin = { actor: SYSTEM_ACTOR, sourceIp: null };

/** How a row names who made or closed it (created_by, closed_by): the actor's name, else its id. */
export const actorName = (origin: Origin): string => origin.actor.name ?? origin.actor.id;

export interface Change {
  action: string;
  crud: Crud;
  tenant: { id: string; name: string; slug: string };
  /** What was changed; the tenant itself when absent. */
  target?: AuditTarget;
  product?: string;
  fields?: StringMap;
}

/** What a change was made to: its target, else the tenant itself. */
const targetOf = (change: Change): AuditTarget => change.target ?? { id: change.tenant.id, name: change.tenant.slug, type: 'tenant' };

export function changeEvent(origin: Origin, change: Change): AuditEventInput {
  const { tenant } = change;
  return {
    action: change.action,
    crud: change.crud,
    tenant_id: tenant.id,
    product: change.product ?? null,
    group: { id: tenant.id, name: tenant.name },
    actor: origin.actor,
    target: targetOf(change),
    source_ip: origin.sourceIp,
    component: 'tenant-registry',
    version: SERVICE_VERSION,
    fields: change.fields ?? null,
  };
}

/**
 * Appends the audit event of a change in the transaction that made it, and the change event that
 * consumers of the feed, webhooks and JetStream receive (under the same id). A change of what the
 * tenant's Keycloak organization carries also queues its synchronisation there, in the same
 * transaction: every change passes here, so none can be forgotten (services/organization-sync.ts).
 */
export async function recordChange(tx: Queryable, origin: Origin, change: Change, now: Date): Promise<void> {
  const { id } = await appendEvent(tx, changeEvent(origin, change), now);
  await insertChangeEvent(tx, {
    id,
    type: change.action,
    tenantId: change.tenant.id,
    occurredAt: now,
    data: changeEventData(origin.actor, targetOf(change), change.product ?? null, change.fields ?? null),
  });
  if (ORGANIZATION_ACTIONS.has(change.action)) await requestSync(tx, change.tenant.id, now);
}

/** The changes that alter a tenant's organization in Keycloak: its enabled flag, name or attributes. */
export const ORGANIZATION_ACTIONS: ReadonlySet<string> = new Set([
  'tenant.activated',
  'tenant.cancelled',
  'tenant.trial_ended',
  'tenant.archived',
  // Its name and plan are the organization's; the other fields cost one idempotent sync.
  'tenant.updated',
  'entitlement.granted',
  'entitlement.revoked',
  'entitlement.trial_started',
  'entitlement.trial_expired',
  // The organization exists from here on: it gets the tenant's state at once.
  'keycloak.invite_sent',
]);
