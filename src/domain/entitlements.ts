// What a tenant may use, and how each entitlement reads at a given moment. Everything here is
// computed from stored facts and the current time, so a trial reads as expired the instant it
// ends, without a background job, and the claims bundle and key verification ask one function
// (usableProducts) what a tenant may use now.
import { DAY_MS } from './time.js';
import type { TenantStatus } from './lifecycle.js';

/** What is stored. */
export const STORED_ENTITLEMENT_STATUSES = ['requested', 'trial', 'active', 'revoked'] as const;
export type StoredEntitlementStatus = (typeof STORED_ENTITLEMENT_STATUSES)[number];
/** What is read: a trial past its end is expired. */
export const ENTITLEMENT_STATUSES = ['active', 'trial', 'expired', 'requested', 'revoked'] as const;
export type EntitlementStatus = (typeof ENTITLEMENT_STATUSES)[number];
/** How an entitlement reached its status: an operator's grant, a self-serve trial, a sales request. */
export const ENTITLEMENT_SOURCES = ['operator', 'trial', 'sales_request'] as const;
export type EntitlementSource = (typeof ENTITLEMENT_SOURCES)[number];
/** A sales request is open until a grant, a revoke or a decline answers it. */
export const REQUEST_STATUSES = ['open', 'closed'] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];
/** Why a request was closed: the product was granted or revoked, or sales declined the request. */
export const REQUEST_CLOSE_REASONS = ['granted', 'revoked', 'declined'] as const;
export type RequestCloseReason = (typeof REQUEST_CLOSE_REASONS)[number];

export interface EntitlementFacts {
  product: string;
  status: StoredEntitlementStatus;
  trial_ends_at: Date | null;
}


/** Tenants whose entitlements count; frozen and archived tenants keep their rows, unusable. */
export const USABLE_TENANT_STATUSES: readonly TenantStatus[] = ['demo', 'trial', 'active'];

/**
 * A trial is over the instant its end has passed: from then on it reads as expired. The store's
 * SQL says the same in store/entitlements.ts (trialOver, trialRunning); keep them in step.
 */
export function isTrialOver(entitlement: EntitlementFacts, now: Date): boolean {
  return entitlement.status === 'trial' && entitlement.trial_ends_at !== null && entitlement.trial_ends_at <= now;
}

export function effectiveStatus(entitlement: EntitlementFacts, now: Date): EntitlementStatus {
  return isTrialOver(entitlement, now) ? 'expired' : entitlement.status;
}

/** Whole days left in a running trial, rounded up (the portal's banner); null otherwise. */
export function daysLeft(entitlement: EntitlementFacts, now: Date): number | null {
  if (effectiveStatus(entitlement, now) !== 'trial' || entitlement.trial_ends_at === null) return null;
  return Math.ceil((entitlement.trial_ends_at.getTime() - now.getTime()) / DAY_MS);
}

export function isUsable(entitlement: EntitlementFacts, now: Date): boolean {
  const status = effectiveStatus(entitlement, now);
  return status === 'active' || status === 'trial';
}

/** The products a tenant may use right now, sorted; none while the tenant is frozen or archived. */
export function usableProducts(tenantStatus: TenantStatus, entitlements: EntitlementFacts[], now: Date): string[] {
  if (!USABLE_TENANT_STATUSES.includes(tenantStatus)) return [];
  return entitlements.filter((e) => isUsable(e, now)).map((e) => e.product).sort();
}

/** A product's state for one tenant, as the portal's catalog shows it. */
/** A product as the catalog shows it to a tenant; null: the tenant has nothing of it. */
export const CATALOG_STATES = ['entitled', 'trial', 'expired', 'requested'] as const;
export type CatalogState = (typeof CATALOG_STATES)[number] | null;

export function catalogState(entitlement: EntitlementFacts | undefined, now: Date): CatalogState {
  if (!entitlement) return null;
  const status = effectiveStatus(entitlement, now);
  if (status === 'active') return 'entitled';
  if (status === 'revoked') return null;
  return status;
}

/** What a self-serve trial needs to know of an earlier entitlement to the same product. */
export interface TrialHistory extends EntitlementFacts {
  trial_started_at: Date | null;
  /** Set by an operator's revoke; only an operator's grant clears it. */
  revoked_at: Date | null;
}

/** Why a self-serve trial may not start; each is answered as 409 with this code. */
export type TrialRefusal = 'already_entitled' | 'trial_used' | 'product_revoked';

/**
 * Whether a tenant may start the trial of a product it has this history with. A trial is once
 * per tenant and product, ever. A revocation is an operator's decision that self-service must
 * not undo: asking sales afterwards turns the row into a request but leaves revoked_at, so the
 * revocation still stands until an operator grants the product again. A revoked trial answers
 * trial_used, as it did before revocations were checked: clients already switch on that code.
 */
export function trialRefusal(existing: TrialHistory | undefined, now: Date): TrialRefusal | null {
  if (!existing) return null;
  if (effectiveStatus(existing, now) === 'active') return 'already_entitled';
  if (existing.trial_started_at !== null) return 'trial_used';
  if (existing.revoked_at !== null) return 'product_revoked';
  return null;
}

/** What an entitlement in `requested` was before the tenant asked; null: nothing, there was no row. */
export type StatusBeforeRequest = { status: 'revoked' | 'trial'; source: EntitlementSource } | null;

/**
 * What a requested entitlement goes back to when sales declines the request: what it was before
 * the tenant asked. Asking turns only nothing, a revoked product or an ended trial into
 * `requested` (store/entitlements.ts markRequested), and the row still tells them apart:
 * revoked_at is set by a revoke and cleared only by a grant (a trial cannot follow a revoke, see
 * trialRefusal), and trial_started_at is never cleared. A trial goes back as a trial, which
 * reads as expired because its end has passed.
 */
export function statusBeforeRequest(requested: TrialHistory): StatusBeforeRequest {
  if (requested.revoked_at !== null) return { status: 'revoked', source: 'operator' };
  if (requested.trial_started_at !== null) return { status: 'trial', source: 'trial' };
  return null;
}

export function trialEnd(start: Date, trialDays: number): Date {
  return new Date(start.getTime() + trialDays * DAY_MS);
}
