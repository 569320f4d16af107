// The answer to "may this key be used, for this product and scope, now?", from the facts of the
// key, its tenant and the tenant's entitlements. Pure, so the verify path can compute it from
// cached facts at the moment of each request: expiry and trial ends need no invalidation.
import { USABLE_TENANT_STATUSES, usableProducts, type EntitlementFacts } from './entitlements.js';
import { statusAt, type LifecycleFacts, type TenantStatus } from './lifecycle.js';

/** Every answer verification gives, in the order verdictFor checks them (after MALFORMED). */
export const VERIFY_CODES = [
  'VALID',
  'MALFORMED',
  'NOT_FOUND',
  'REVOKED',
  'EXPIRED',
  'TENANT_INACTIVE',
  'NOT_ENTITLED',
  'INSUFFICIENT_SCOPE',
] as const;
export type VerifyCode = (typeof VERIFY_CODES)[number];

/**
 * The answer of POST /v1/internal/api-keys/verify: the verdict, and the key's facts when the
 * key exists. http/schemas/api-key.ts serializes it and checks at compile time that it agrees.
 */
export interface VerifyAnswer {
  valid: boolean;
  code: VerifyCode;
  key_id?: string;
  tenant_id?: string;
  slug?: string;
  tenant_status?: TenantStatus;
  plan?: string | null;
  scopes?: string[];
  products?: string[];
  expires_at?: string | null;
  /**
   * The earliest instant the verdict could change by time alone (the key's expiry, the tenant's
   * trial end, the trial end of the product asked about); null when nothing will. A caller that
   * keeps the answer asks again from then on (see verdictChangesAt).
   */
  valid_until?: string | null;
}

export interface VerifiableKey {
  id: string;
  tenantId: string;
  scopes: string[];
  /** Products the key is limited to; empty: every product the tenant may use. */
  products: string[];
  expiresAt: Date | null;
  revokedAt: Date | null;
  tenant: LifecycleFacts & { slug: string; plan: string | null };
  entitlements: EntitlementFacts[];
}

export interface VerifyQuestion {
  product?: string | undefined;
  scope?: string | undefined;
}

/** The first rule the key breaks, in the order a caller can act on them; VALID when none. */
export function verdictFor(key: VerifiableKey | undefined, question: VerifyQuestion, now: Date): VerifyCode {
  if (!key) return 'NOT_FOUND';
  if (key.revokedAt !== null && key.revokedAt <= now) return 'REVOKED';
  if (key.expiresAt !== null && key.expiresAt <= now) return 'EXPIRED';
  const tenantStatus = statusAt(key.tenant, now);
  if (!USABLE_TENANT_STATUSES.includes(tenantStatus)) return 'TENANT_INACTIVE';
  if (question.product !== undefined) {
    const allowedByKey = key.products.length === 0 || key.products.includes(question.product);
    if (!allowedByKey || !usableProducts(tenantStatus, key.entitlements, now).includes(question.product)) {
      return 'NOT_ENTITLED';
    }
  }
  if (question.scope !== undefined && !key.scopes.includes(question.scope)) return 'INSUFFICIENT_SCOPE';
  return 'VALID';
}

/**
 * The earliest instant after `now` at which verdictFor could answer differently for the same
 * facts and question, with nothing written in between: the key's expiry (or a revocation dated
 * ahead), the end of the tenant's trial (it then reads as frozen), and the end of the trial of
 * the product asked about. Null when time alone changes nothing. Products not asked about do not
 * count: their trials cannot change this answer. Entitlements never start by time alone, so a
 * refusal becomes a different refusal at most, never valid.
 */
export function verdictChangesAt(key: VerifiableKey, question: VerifyQuestion, now: Date): Date | null {
  let earliest: Date | null = null;
  const consider = (at: Date | null) => {
    if (at !== null && at > now && (earliest === null || at < earliest)) earliest = at;
  };
  consider(key.revokedAt);
  consider(key.expiresAt);
  if (key.tenant.status === 'trial') consider(key.tenant.trial_ends_at);
  if (question.product !== undefined) {
    for (const entitlement of key.entitlements) {
      if (entitlement.product === question.product && entitlement.status === 'trial') consider(entitlement.trial_ends_at);
    }
  }
  return earliest;
}
