// What a tenant may use, and how each entitlement reads at a given moment. Everything here is
// computed from stored facts and the current time, so a trial reads as expired the instant it
// ends, without a background job, and the claims bundle and key verification ask one function
// (usableProducts) what a tenant may use now.
import type { TenantStatus } from './lifecycle.js';

/** What is stored. */
export type StoredEntitlementStatus = 'requested' | 'trial' | 'active' | 'revoked';
/** What is read: a trial past its end is expired. */
export type EntitlementStatus = StoredEntitlementStatus | 'expired';

export interface EntitlementFacts {
  product: string;
  status: StoredEntitlementStatus;
  trial_ends_at: Date | null;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** Tenants whose entitlements count; frozen and archived tenants keep their rows, unusable. */
export const USABLE_TENANT_STATUSES: readonly TenantStatus[] = ['demo', 'trial', 'active'];

export function effectiveStatus(entitlement: EntitlementFacts, now: Date): EntitlementStatus {
  if (entitlement.status === 'trial' && entitlement.trial_ends_at !== null && entitlement.trial_ends_at <= now) {
    return 'expired';
  }
  return entitlement.status;
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
export type CatalogState = 'entitled' | 'trial' | 'expired' | 'requested' | null;

export function catalogState(entitlement: EntitlementFacts | undefined, now: Date): CatalogState {
  if (!entitlement) return null;
  const status = effectiveStatus(entitlement, now);
  if (status === 'active') return 'entitled';
  if (status === 'revoked') return null;
  return status;
}

export function trialEnd(start: Date, trialDays: number): Date {
  return new Date(start.getTime() + trialDays * DAY_MS);
}
