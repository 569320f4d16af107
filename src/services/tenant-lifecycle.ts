// Moving a tenant through its lifecycle, with its audit event, inside the caller's transaction:
// the operators' actions (activate, cancel, archive) and the end of a trial, which no one asks
// for. The rules of which move is allowed are domain/lifecycle.ts.
import {
  isTenantTrialOver,
  nextStatus,
  TRIAL_ENDS_IN,
  trialEndsAfter,
  type LifecycleAction,
  type TenantStatus,
} from '../domain/lifecycle.js';
import { AppError, notFound } from '../problems.js';
import type { Queryable } from '../store/database.js';
import { listApiKeys, lockLiveKeysOfTenant } from '../store/api-keys.js';
import { listEntitlements } from '../store/entitlements.js';
import { lockTenantForUpdate, updateTenantStatus, type TenantRow } from '../store/tenants.js';
import { revokeKey } from './api-keys.js';
import { recordChange, SYSTEM_ORIGIN, type Origin } from './audit-trail.js';
import { revokeProduct } from './entitlements.js';

const PAST_TENSE: Record<LifecycleAction, string> = {
  activate: 'tenant.activated',
  cancel: 'tenant.cancelled',
  archive: 'tenant.archived',
};

/** Locks the tenant, writes down a trial that has ended, and checks that `action` applies. */
async function lockForAction(tx: Queryable, id: string, action: LifecycleAction, now: Date): Promise<{ tenant: TenantRow; next: TenantStatus }> {
  let tenant = await lockTenantForUpdate(tx, id);
  if (!tenant) throw notFound('tenant');
  if (isTenantTrialOver(tenant, now)) tenant = await endTrial(tx, tenant, now);
  const next = nextStatus(action, tenant.status);
  if (!next) {
    throw new AppError('invalid_transition', {
      detail: `cannot ${action} a tenant in status ${tenant.status}`,
      extensions: { current_status: tenant.status },
    });
  }
  return { tenant, next };
}

/**
 * Writes down the end of the tenant's trial: frozen, with one tenant.trial_ended event by the
 * system. The caller holds the row lock (lockTenantForUpdate, lockEndedTrials) and has checked
 * that the trial is over; the trial-end job and every transition come here, so the event is
 * written once, by whichever comes first.
 */
export async function endTrial(tx: Queryable, tenant: TenantRow, now: Date): Promise<TenantRow> {
  const updated = await updateTenantStatus(tx, tenant.id, TRIAL_ENDS_IN, null);
  await recordChange(
    tx,
    SYSTEM_ORIGIN,
    {
      action: 'tenant.trial_ended',
      crud: 'u',
      tenant: updated,
      fields: { from_status: tenant.status, to_status: TRIAL_ENDS_IN, trial_ends_at: tenant.trial_ends_at!.toISOString() },
    },
    now,
  );
  return updated;
}

/**
 * Applies `action` to the tenant and records it. The tenant's row lock makes two concurrent
 * transitions serialize: the second sees the status the first left, and either applies on top of
 * it or is refused (409 invalid_transition, with the current status). A trial that has ended is
 * written down first, so the action applies to the frozen tenant every reader already sees.
 */
export async function transitionTenant(
  tx: Queryable,
  id: string,
  action: Exclude<LifecycleAction, 'archive'>,
  origin: Origin,
  now: Date,
): Promise<TenantRow> {
  const { tenant, next } = await lockForAction(tx, id, action, now);
  const updated = await updateTenantStatus(tx, id, next, trialEndsAfter(next, tenant.trial_ends_at));
  await recordChange(
    tx,
    origin,
    { action: PAST_TENSE[action], crud: 'u', tenant: updated, fields: { from_status: tenant.status, to_status: next } },
    now,
  );
  return updated;
}

/**
 * Ends a frozen tenant for good: every key that is not revoked is revoked, every product revoked
 * (its open sales requests closed), each with its own event, then the tenant is archived with
 * one tenant.archived event carrying the reason. Its Keycloak organization is disabled by the
 * synchronisation this queues (services/organization-sync.ts), retried until Keycloak has it;
 * the row stays, so the slug stays taken and the audit history keeps its tenant.
 */
export async function archiveTenant(tx: Queryable, id: string, reason: string, origin: Origin, now: Date): Promise<TenantRow> {
  // The keys before the tenant: a key's revoke and rotation lock the key and then its tenant, so
  // taking them in the same order cannot deadlock with one of those.
  await lockLiveKeysOfTenant(tx, id);
  const { tenant, next } = await lockForAction(tx, id, 'archive', now);
  // With the tenant locked no key can be added (an insert needs its KEY SHARE lock): this is all.
  const keys = await listApiKeys(tx, id, false);
  for (const key of keys) await revokeKey(tx, key.id, origin, now);
  const products = (await listEntitlements(tx, id)).filter((entitlement) => entitlement.status !== 'revoked').map((e) => e.product);
  for (const product of products) await revokeProduct(tx, { tenantId: id, product }, origin, now);
  const updated = await updateTenantStatus(tx, id, next, null);
  await recordChange(
    tx,
    origin,
    {
      action: PAST_TENSE.archive,
      crud: 'u',
      tenant: updated,
      fields: {
        from_status: tenant.status,
        to_status: next,
        reason,
        keys_revoked: String(keys.length),
        products_revoked: products.join(','),
      },
    },
    now,
  );
  return updated;
}
