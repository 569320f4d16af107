// Moving a tenant through its lifecycle (activate, cancel), with its audit event, inside the
// caller's transaction. Routes call it for operators; the jobs to come (trials that end, archives)
// call it as the system. The rules of which move is allowed are domain/lifecycle.ts.
import { nextStatus, trialEndsAfter, type LifecycleAction } from '../domain/lifecycle.js';
import { AppError, notFound } from '../problems.js';
import type { Queryable } from '../store/database.js';
import { lockTenantForUpdate, updateTenantStatus, type TenantRow } from '../store/tenants.js';
import { recordChange, type Origin } from './audit-trail.js';

const PAST_TENSE: Record<LifecycleAction, string> = { activate: 'tenant.activated', cancel: 'tenant.cancelled' };

/**
 * Applies `action` to the tenant and records it. The tenant's row lock makes two concurrent
 * transitions serialize: the second sees the status the first left, and either applies on top of
 * it or is refused (409 invalid_transition, with the current status).
 */
export async function transitionTenant(tx: Queryable, id: string, action: LifecycleAction, origin: Origin, now: Date): Promise<TenantRow> {
  const tenant = await lockTenantForUpdate(tx, id);
  if (!tenant) throw notFound('tenant');
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
