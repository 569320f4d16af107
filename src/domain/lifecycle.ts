// The tenant lifecycle as one table: which action moves a tenant from which status to which.
// Anything not in the table is refused with `invalid_transition`.
//
//   demo      -- no action applies: demo tenants are shared, reset nightly and never billed.
//   trial     -- activate -> active   (the customer signed)
//             -- cancel   -> frozen   (the evaluation was abandoned; data kept for export)
//   active    -- cancel   -> frozen   (cancellation or non-payment)
//   frozen    -- activate -> active   (payment arrived or the customer came back)
//             -- archive  -> archived (ended for good: keys and products revoked, the
//                                      organization disabled; the slug stays taken)
//   archived  -- terminal: the export window closed; only the audit log remains.
//
// And one move no one asks for: a trial whose trial_ends_at has passed is frozen. It reads so
// the instant it ends (tenantAt); the trial-end job then writes it down with its event.
import { DAY_MS } from './time.js';

export const TENANT_STATUSES = ['demo', 'trial', 'active', 'frozen', 'archived'] as const;
export type TenantStatus = (typeof TENANT_STATUSES)[number];

export const TENANT_KINDS = ['customer', 'demo'] as const;
export type TenantKind = (typeof TENANT_KINDS)[number];

export type LifecycleAction = 'activate' | 'cancel' | 'archive';

export const TRANSITIONS: Readonly<Record<LifecycleAction, { from: readonly TenantStatus[]; to: TenantStatus }>> = {
  activate: { from: ['trial', 'frozen'], to: 'active' },
  cancel: { from: ['trial', 'active'], to: 'frozen' },
  archive: { from: ['frozen'], to: 'archived' },
};

/** A new customer evaluates the platform for this long before it must activate. */
export const TRIAL_DAYS = 14;

/** The status an action leads to from `current`, or null when the table has no such move. */
export function nextStatus(action: LifecycleAction, current: TenantStatus): TenantStatus | null {
  const transition = TRANSITIONS[action];
  return transition.from.includes(current) ? transition.to : null;
}

/** Where a new tenant starts: customers in a trial that ends TRIAL_DAYS from now, demos in demo. */
export function initialState(kind: TenantKind, now: Date): { status: TenantStatus; trialEndsAt: Date | null } {
  if (kind === 'demo') return { status: 'demo', trialEndsAt: null };
  return { status: 'trial', trialEndsAt: new Date(now.getTime() + TRIAL_DAYS * DAY_MS) };
}

/** What is stored about where a tenant is in its lifecycle. */
export interface LifecycleFacts {
  status: TenantStatus;
  trial_ends_at: Date | null;
}

/**
 * A tenant's trial is over the instant its end passes. store/tenants.ts says the same in SQL
 * (trialOverSql); keep them in step.
 */
export function isTenantTrialOver(tenant: LifecycleFacts, now: Date): boolean {
  return tenant.status === 'trial' && tenant.trial_ends_at !== null && tenant.trial_ends_at <= now;
}

/** The status the tenant has at `now`: a trial that has ended is frozen, job or no job. */
export function statusAt(tenant: LifecycleFacts, now: Date): TenantStatus {
  return isTenantTrialOver(tenant, now) ? TRIAL_ENDS_IN : tenant.status;
}

/** The tenant as every reader sees it at `now`: as the trial-end job will leave it, if its trial is over. */
export function tenantAt<T extends LifecycleFacts>(tenant: T, now: Date): T {
  return isTenantTrialOver(tenant, now) ? { ...tenant, status: TRIAL_ENDS_IN, trial_ends_at: null } : tenant;
}

/** Where a trial that ran out leaves the tenant: frozen, its data kept, until it activates. */
export const TRIAL_ENDS_IN: TenantStatus = 'frozen';

/** A trial's end date means nothing outside the trial, so leaving the trial clears it. */
export function trialEndsAfter(next: TenantStatus, current: Date | null): Date | null {
  return next === 'trial' ? current : null;
}
