// Granting and revoking a tenant's products, with their audit events, inside the caller's
// transaction: an operator's route today; sales tooling, archiving and Keycloak sync next.
// Each also answers the open sales requests for the product, so sales need not follow them up
// (declining a request without changing the product is services/sales-requests.ts).
import { effectiveStatus } from '../domain/entitlements.js';
import { notFound, refuseIfArchived } from '../problems.js';
import type { Queryable } from '../store/database.js';
import { closeOpenRequests, grantEntitlement, lockEntitlementForUpdate, revokeEntitlement, type EntitlementRow } from '../store/entitlements.js';
import { lockTenantForKeyShare, lockTenantForUpdate } from '../store/tenants.js';
import { actorName, recordChange, type Origin } from './audit-trail.js';

const productTarget = (product: string) => ({ id: product, type: 'product', name: product });

/**
 * Makes the product active for the tenant, from any state. The tenant's row lock orders
 * concurrent grants, so each event names the state it changed.
 */
export async function grantProduct(
  tx: Queryable,
  grant: { tenantId: string; product: string; config: Record<string, unknown> | undefined },
  origin: Origin,
  now: Date,
): Promise<EntitlementRow> {
  const { tenantId, product } = grant;
  const tenant = await lockTenantForUpdate(tx, tenantId);
  if (!tenant) throw notFound('tenant');
  refuseIfArchived(tenant);
  const before = await lockEntitlementForUpdate(tx, tenantId, product);
  const granted = await grantEntitlement(tx, tenantId, product, grant.config, now);
  const closed = await closeOpenRequests(tx, tenantId, product, { reason: 'granted', closedBy: actorName(origin), now });
  await recordChange(
    tx,
    origin,
    {
      action: 'entitlement.granted',
      crud: before ? 'u' : 'c',
      tenant,
      product,
      target: productTarget(product),
      fields: { from_status: before ? effectiveStatus(before, now) : 'none', requests_closed: String(closed.length) },
    },
    now,
  );
  return granted;
}

/** Revokes the product; revoking a revoked one changes nothing and records nothing. */
export async function revokeProduct(tx: Queryable, revoke: { tenantId: string; product: string }, origin: Origin, now: Date): Promise<void> {
  const { tenantId, product } = revoke;
  const tenant = await lockTenantForKeyShare(tx, tenantId);
  if (!tenant) throw notFound('tenant');
  const before = await lockEntitlementForUpdate(tx, tenantId, product);
  if (!before) throw notFound('entitlement');
  if (before.status === 'revoked') return;
  await revokeEntitlement(tx, tenantId, product, now);
  await closeOpenRequests(tx, tenantId, product, { reason: 'revoked', closedBy: actorName(origin), now });
  await recordChange(
    tx,
    origin,
    {
      action: 'entitlement.revoked',
      crud: 'd',
      tenant,
      product,
      target: productTarget(product),
      fields: { from_status: effectiveStatus(before, now) },
    },
    now,
  );
}
