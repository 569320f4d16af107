// Moving a tenant through its lifecycle, with its audit event, inside the caller's transaction:
// the operators' actions (activate, cancel) and the end of a trial, which no one asks for. The
// rules of which move is allowed are domain/lifecycle.ts.
import {
  isTenantTrialOver,
  nextStatus,
  TRIAL_ENDS_IN,
  trialEndsAfter,
  type LifecycleAction,
} from '../domain/lifecycle.js';
import { AppError, notFound } from '../problems.js';
import type { Queryable } from '../store/database.js';
import { lockTenantForUpdate, updateTenantStatus, type TenantRow } from '../store/tenants.js';
import { recordChange, SYSTEM_ORIGIN, type Origin } from './audit-trail.js';

const PAST_TENSE: Record<LifecycleAction, string> = { activate: 'tenant.activated', cancel: 'tenant.cancelled' };

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
export async function transitionTenant(tx: Queryable, id: string, action: LifecycleAction, origin: Origin, now: Date): Promise<TenantRow> {
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
  const updated = await updateTenantStatus(tx, id, next, trialEndsAfter(next, tenant.trial_ends_at));
  await recordChange(
    tx,
    origin,
    { action: PAST_TENSE[action], crud: 'u', tenant: updated, fields: { from_status: tenant.status, to_status: next } },
    now,
  );
  return updated;
}
