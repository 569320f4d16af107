// Working the sales queue: an operator gives a request to a sales owner, or declines it with a
// reason, each with its audit event, inside the caller's transaction. Granting or revoking the
// product (services/entitlements.ts) answers its open requests too.
//
// Locks are taken in the order every change of a tenant's products takes them, the tenant's row
// first and the request's after it, so a decline or an assignment racing a grant, a revoke or a
// new request never deadlocks with it.
import { statusBeforeRequest } from '../domain/entitlements.js';
import { AppError, notFound } from '../problems.js';
import type { Queryable } from '../store/database.js';
import {
  closeAsDeclined,
  findRequest,
  lockEntitlementForUpdate,
  lockRequestForUpdate,
  revertRequested,
  setSalesOwner,
  type ProductRequestRow,
} from '../store/entitlements.js';
import { lockTenantForKeyShare, lockTenantForUpdate, type TenantRow } from '../store/tenants.js';
import { actorName, recordChange, type Origin } from './audit-trail.js';

const requestTarget = (request: ProductRequestRow) => ({ id: request.id, type: 'product_request', name: request.product });

/**
 * The open request, locked, with its tenant locked by `lockTenant` first. A request deleted with
 * its tenant meanwhile is not found; one closed meanwhile is refused.
 */
async function lockOpenRequest(
  tx: Queryable,
  id: string,
  lockTenant: (tx: Queryable, tenantId: string) => Promise<TenantRow | undefined>,
): Promise<{ tenant: TenantRow; request: ProductRequestRow }> {
  const found = await findRequest(tx, id);
  const tenant = found && (await lockTenant(tx, found.tenant_id));
  const request = tenant && (await lockRequestForUpdate(tx, id));
  if (!tenant || !request) throw notFound('sales request');
  if (request.status !== 'open') {
    throw new AppError('request_closed', {
      detail: `the request was closed (${request.closed_reason ?? 'closed'}); the tenant may ask again`,
      extensions: { closed_reason: request.closed_reason },
    });
  }
  return { tenant, request };
}

/**
 * Closes the request as declined and puts the tenant's product back to what it was before the
 * tenant asked (a requested entitlement would otherwise show `requested` with nothing open). The
 * tenant may ask again later: only an open request blocks a new one.
 */
export async function declineRequest(
  tx: Queryable,
  decline: { id: string; reason: string },
  origin: Origin,
  now: Date,
): Promise<ProductRequestRow> {
  // FOR UPDATE, as a grant and a new request take it: a decline changes the entitlement.
  const { tenant, request } = await lockOpenRequest(tx, decline.id, lockTenantForUpdate);
  const entitlement = await lockEntitlementForUpdate(tx, tenant.id, request.product);
  if (entitlement?.status === 'requested') await revertRequested(tx, tenant.id, request.product, statusBeforeRequest(entitlement));
  const declined = await closeAsDeclined(tx, request.id, { reason: decline.reason, closedBy: actorName(origin), now });
  await recordChange(
    tx,
    origin,
    {
      action: 'catalog.request_declined',
      crud: 'u',
      tenant,
      product: request.product,
      target: requestTarget(declined),
      fields: { product: request.product, reason: decline.reason },
    },
    now,
  );
  return declined;
}

/**
 * Gives the open request to a sales owner, or to nobody (null). Giving it to the owner it has
 * changes nothing and records nothing.
 */
export async function assignRequest(
  tx: Queryable,
  assign: { id: string; salesOwner: string | null },
  origin: Origin,
  now: Date,
): Promise<ProductRequestRow> {
  const { tenant, request } = await lockOpenRequest(tx, assign.id, lockTenantForKeyShare);
  if (request.sales_owner === assign.salesOwner) return request;
  const assigned = await setSalesOwner(tx, request.id, assign.salesOwner);
  // Audit fields are strings: the side that was nobody (null) is left out.
  const fields: Record<string, string> = {};
  if (request.sales_owner !== null) fields['sales_owner.old'] = request.sales_owner;
  if (assigned.sales_owner !== null) fields['sales_owner.new'] = assigned.sales_owner;
  await recordChange(
    tx,
    origin,
    { action: 'catalog.request_assigned', crud: 'u', tenant, product: request.product, target: requestTarget(assigned), fields },
    now,
  );
  return assigned;
}
