// Changes to webhook endpoints, each with its audit event in the same transaction. These events
// go to the platform chain (an endpoint belongs to the registry, not to a tenant, even when it
// filters on one) and are not change events: an endpoint's own changes are not delivered to
// endpoints. No event carries a secret, nor the query of an endpoint URL (receivers put tokens
// there).
import { randomUUID } from 'node:crypto';
import type { AuditEventInput, Crud, StringMap } from '../domain/audit.js';
import { MAX_WEBHOOKS, newWebhookSecret, SECRET_GRACE_MS } from '../domain/webhook.js';
import { AppError, invalidBody } from '../problems.js';
import { appendEvent } from '../store/audit.js';
import type { Queryable } from '../store/database.js';
import { feedHeads } from '../store/events.js';
import {
  countWebhooksLocked,
  deleteWebhook,
  insertWebhook,
  resetWebhookCursor,
  rotateWebhookSecret,
  updateWebhook,
  type WebhookChanges,
  type WebhookRow,
} from '../store/webhooks.js';
import { SERVICE_VERSION } from '../version.js';
import { actorName, type Origin } from './audit-trail.js';

/** What an audit event says of an endpoint URL: where it points, without its query. */
function urlForAudit(url: string): string {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname}`;
}

function fieldsOf(row: WebhookRow): StringMap {
  return {
    url: urlForAudit(row.url),
    types: row.types.join(','),
    tenant_id: row.tenant_id ?? '',
    enabled: String(row.enabled),
  };
}

async function audit(tx: Queryable, origin: Origin, action: string, crud: Crud, row: WebhookRow, fields: StringMap, now: Date): Promise<void> {
  const event: AuditEventInput = {
    action,
    crud,
    tenant_id: null,
    actor: origin.actor,
    target: { id: row.id, type: 'webhook', name: row.description },
    source_ip: origin.sourceIp,
    component: 'tenant-registry',
    version: SERVICE_VERSION,
    fields,
  };
  await appendEvent(tx, event, now);
}

/**
 * Checks that a delivery may start after `lastSeq`: not before the events retention deleted
 * (410 cursor_expired), not past the newest event (400).
 */
async function checkStart(tx: Queryable, lastSeq: number, path: string): Promise<void> {
  const heads = await feedHeads(tx);
  if (lastSeq < heads.pruned) {
    throw new AppError('cursor_expired', {
      detail: `events up to ${heads.pruned} are past retention; the oldest that can be delivered is ${heads.pruned + 1}`,
      extensions: { oldest_seq: heads.pruned + 1 },
    });
  }
  if (lastSeq > heads.head) throw invalidBody(path, `is past the newest event (${heads.head}); at most ${heads.head + 1}`);
}

export interface WebhookSpec {
  url: string;
  description: string | null;
  types: string[];
  tenantId: string | null;
  enabled: boolean;
  /** The first event to deliver; the next one to commit when null. */
  fromSeq: number | null;
}

/** Creates an endpoint and its secret; the answer is the only place the secret is shown. */
export async function createWebhook(tx: Queryable, spec: WebhookSpec, origin: Origin, now: Date): Promise<WebhookRow> {
  if ((await countWebhooksLocked(tx)) >= MAX_WEBHOOKS) {
    throw new AppError('webhook_limit', { detail: `the registry keeps at most ${MAX_WEBHOOKS} webhooks; delete one first` });
  }
  let lastSeq: number;
  if (spec.fromSeq === null) lastSeq = (await feedHeads(tx)).head;
  else {
    lastSeq = spec.fromSeq - 1;
    await checkStart(tx, lastSeq, '/from_seq');
  }
  const row = await insertWebhook(tx, {
    id: randomUUID(),
    url: spec.url,
    description: spec.description,
    secret: newWebhookSecret(),
    types: spec.types,
    tenantId: spec.tenantId,
    enabled: spec.enabled,
    lastSeq,
    createdBy: actorName(origin),
    now,
  });
  await audit(tx, origin, 'webhook.created', 'c', row, { ...fieldsOf(row), from_seq: String(lastSeq + 1) }, now);
  return row;
}

/** Applies the changes to a locked endpoint; the event names each changed field, old and new. */
export async function editWebhook(tx: Queryable, current: WebhookRow, changes: WebhookChanges, origin: Origin, now: Date): Promise<WebhookRow> {
  const row = await updateWebhook(tx, current.id, changes, now);
  const before = fieldsOf(current);
  const after = fieldsOf(row);
  const fields: StringMap = {};
  for (const name of Object.keys(after)) {
    if (before[name] !== after[name]) {
      fields[`${name}_old`] = before[name]!;
      fields[`${name}_new`] = after[name]!;
    }
  }
  if (changes.description !== undefined && current.description !== row.description) fields.description_changed = 'true';
  await audit(tx, origin, 'webhook.updated', 'u', row, fields, now);
  return row;
}

export async function removeWebhook(tx: Queryable, current: WebhookRow, origin: Origin, now: Date): Promise<void> {
  await deleteWebhook(tx, current.id);
  await audit(tx, origin, 'webhook.deleted', 'd', current, fieldsOf(current), now);
}

/** A new secret; the one it replaces keeps signing beside it for SECRET_GRACE_MS. */
export async function rotateSecret(tx: Queryable, current: WebhookRow, origin: Origin, now: Date): Promise<WebhookRow> {
  const until = new Date(now.getTime() + SECRET_GRACE_MS);
  const row = await rotateWebhookSecret(tx, current.id, newWebhookSecret(), until, now);
  await audit(tx, origin, 'webhook.secret_rotated', 'u', row, { previous_valid_until: until.toISOString() }, now);
  return row;
}

/** Delivers every matching event from `fromSeq` on again, starting now. */
export async function replayWebhook(tx: Queryable, current: WebhookRow, fromSeq: number, origin: Origin, now: Date): Promise<WebhookRow> {
  await checkStart(tx, fromSeq - 1, '/from_seq');
  const row = await resetWebhookCursor(tx, current.id, fromSeq - 1, now);
  await audit(tx, origin, 'webhook.replayed', 'u', row, { from_seq: String(fromSeq), previous_last_seq: String(current.last_seq) }, now);
  return row;
}
