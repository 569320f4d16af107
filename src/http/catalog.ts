// /v1/catalog: what the platform offers, each product's state for a tenant, sales requests (and
// the operators' queue of them: assign, decline) and self-serve trials.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { findProduct, type Catalog, type Product } from '../domain/products.js';
import { statusAt } from '../domain/lifecycle.js';
import {
  catalogState,
  daysLeft,
  effectiveStatus,
  trialEnd,
  trialRefusal,
  USABLE_TENANT_STATUSES,
  type TrialRefusal,
} from '../domain/entitlements.js';
import type { Database } from '../store/database.js';
import {
  findEntitlement,
  findOpenRequest,
  lockEntitlementForUpdate,
  insertRequest,
  listEntitlements,
  listRequests,
  markRequested,
  startTrial,
  type EntitlementRow,
  type ProductRequestRow,
} from '../store/entitlements.js';
import { findTenantById, lockTenantForUpdate } from '../store/tenants.js';
import { tenantFrom } from './access.js';
import { recordChange } from '../services/audit-trail.js';
import { assignRequest, declineRequest } from '../services/sales-requests.js';
import { originOf } from './origin.js';
import { decodePosition, encodePosition } from './cursor.js';
import { toEntitlement, unknownProduct } from './entitlements.js';
import { AppError, notFound, refuseIfArchived } from '../problems.js';
import { RefTo } from './schemas/parts.js';
import {
  AssignBody,
  CatalogSchema,
  ProductRequestPageSchema,
  CatalogQuery,
  DeclineBody,
  EntitlementSchema,
  ProductRequestBody,
  ProductRequestSchema,
  RequestListQuery,
  RequestParams,
  TrialRequestBody,
  type ProductRequest,
} from './schemas/entitlement.js';

export interface CatalogRoutesOptions {
  db: Database;
  catalog: Catalog;
  clock: () => Date;
}

/** What each refusal of a trial tells the tenant; the code is what clients switch on. */
const TRIAL_REFUSALS: Record<TrialRefusal, (code: string) => string> = {
  already_entitled: (code) => `the tenant already has ${code}`,
  trial_used: (code) => `the tenant has already had its ${code} trial`,
  product_revoked: (code) => `an operator revoked ${code} for this tenant; ask sales to restore it`,
};

export function toRequest(row: ProductRequestRow): ProductRequest {
  return {
    ...row,
    created_at: row.created_at.toISOString(),
    closed_at: row.closed_at?.toISOString() ?? null,
  };
}

function catalogItem(product: Product, entitlement: EntitlementRow | undefined, now: Date | null) {
  const item = { ...product };
  if (now === null) return item;
  const state = catalogState(entitlement, now);
  return {
    ...item,
    state,
    trial_ends_at: state === 'trial' || state === 'expired' ? (entitlement?.trial_ends_at?.toISOString() ?? null) : null,
    days_left: entitlement ? daysLeft(entitlement, now) : null,
  };
}


export const catalogRoutes: FastifyPluginAsyncTypebox<CatalogRoutesOptions> = async (app, { db, catalog, clock }) => {
  app.get(
    '/v1/catalog',
    {
      config: {
        access: { allow: ['platform_admin', 'service', 'member'], tenant: tenantFrom.query('tenant_id'), tenantOptional: true },
        problems: ['not_found'],
      },
      schema: {
        operationId: 'listCatalog',
        tags: ['catalog'],
        summary: "The products on offer; with tenant_id, each with that tenant's state",
        querystring: CatalogQuery,
        response: {
          200: RefTo(CatalogSchema),
        },
      },
    },
    async (request) => {
      const { tenant_id: tenantId } = request.query;
      if (!tenantId) return { items: catalog.products.map((product) => catalogItem(product, undefined, null)) };
      if (!(await findTenantById(db, tenantId))) throw notFound('tenant');
      const now = clock();
      const byProduct = new Map((await listEntitlements(db, tenantId)).map((row) => [row.product, row]));
      return { items: catalog.products.map((product) => catalogItem(product, byProduct.get(product.code), now)) };
    },
  );

  app.post(
    '/v1/catalog/request',
    {
      config: { access: { allow: ['platform_admin', 'it_admin'], tenant: tenantFrom.body('tenant_id') }, idempotent: {}, problems: ['not_found', 'unknown_product', 'not_requestable', 'tenant_inactive', 'already_entitled'] },
      schema: {
        operationId: 'requestProduct',
        tags: ['catalog'],
        summary: 'Ask sales for a product; asking again while the request is open changes nothing',
        body: ProductRequestBody,
        response: {
          202: RefTo(ProductRequestSchema, { description: 'The open request' }),
        },
      },
    },
    async (request, reply) => {
      const { tenant_id: tenantId, product: code, message } = request.body;
      const product = findProduct(catalog, code);
      if (!product) throw unknownProduct(code);
      if (!product.requestable) throw new AppError('not_requestable', { detail: `${code} cannot be requested from sales` });
      const now = clock();
      const origin = originOf(request);
      const row = await db.transaction(async (tx) => {
        // The tenant's row lock serializes its requests: two at once make one.
        const tenant = await lockTenantForUpdate(tx, tenantId);
        if (!tenant) throw notFound('tenant');
        refuseIfArchived(tenant);
        const entitlement = await findEntitlement(tx, tenantId, code);
        if (entitlement && effectiveStatus(entitlement, now) === 'active') {
          throw new AppError('already_entitled', { detail: `the tenant already has ${code}` });
        }
        const open = await findOpenRequest(tx, tenantId, code);
        if (open) return open;
        const created = await insertRequest(tx, {
          tenantId,
          product: code,
          message: message ?? null,
          requestedBy: request.principal?.name ?? null,
          now,
        });
        await markRequested(tx, tenantId, code, now);
        await recordChange(
          tx,
          origin,
          {
            action: 'catalog.product_requested',
            crud: 'c',
            tenant,
            product: code,
            target: { id: created.id, type: 'product_request', name: code },
          },
          now,
        );
        return created;
      });
      return reply.code(202).send(toRequest(row));
    },
  );

  app.get(
    '/v1/catalog/requests',
    {
      config: { access: { allow: ['platform_admin'] }, problems: ['invalid_cursor'] },
      schema: {
        operationId: 'listProductRequests',
        tags: ['catalog'],
        summary: 'The sales follow-up queue: requests by status, tenant or sales owner, oldest first',
        querystring: RequestListQuery,
        response: {
          200: RefTo(ProductRequestPageSchema),
        },
      },
    },
    async (request) => {
      const { status = 'open', tenant_id: tenantId, sales_owner: salesOwner, limit = 50, cursor } = request.query;
      const after = cursor ? decodePosition(cursor) : null;
      const filters = { status, ...(tenantId ? { tenantId } : {}), ...(salesOwner !== undefined ? { salesOwner: salesOwner.trim() } : {}) };
      const rows = await listRequests(db, filters, after, limit + 1);
      const items = rows.slice(0, limit);
      const last = items.at(-1);
      return {
        items: items.map(toRequest),
        next_cursor: rows.length > limit && last ? encodePosition({ created: last.created_at.toISOString(), id: last.id }) : null,
      };
    },
  );

  app.post(
    '/v1/catalog/requests/:id/decline',
    {
      config: { access: { allow: ['platform_admin'] }, problems: ['not_found', 'request_closed'] },
      schema: {
        operationId: 'declineProductRequest',
        tags: ['catalog'],
        summary: 'Close an open request as declined, with the reason; the tenant may ask again later',
        params: RequestParams,
        body: DeclineBody,
        response: { 200: RefTo(ProductRequestSchema, { description: 'The request, now closed as declined' }) },
      },
    },
    async (request) => {
      const now = clock();
      const decline = { id: request.params.id, reason: request.body.reason.trim() };
      const origin = originOf(request);
      return toRequest(await db.transaction((tx) => declineRequest(tx, decline, origin, now)));
    },
  );

  app.post(
    '/v1/catalog/requests/:id/assign',
    {
      config: { access: { allow: ['platform_admin'] }, problems: ['not_found', 'request_closed'] },
      schema: {
        operationId: 'assignProductRequest',
        tags: ['catalog'],
        summary: 'Give an open request to a sales owner (null: to nobody)',
        params: RequestParams,
        body: AssignBody,
        response: { 200: RefTo(ProductRequestSchema, { description: 'The request with its sales owner' }) },
      },
    },
    async (request) => {
      const now = clock();
      const assign = { id: request.params.id, salesOwner: request.body.sales_owner?.trim() ?? null };
      const origin = originOf(request);
      return toRequest(await db.transaction((tx) => assignRequest(tx, assign, origin, now)));
    },
  );

  app.post(
    '/v1/catalog/trial-request',
    {
      config: { access: { allow: ['platform_admin', 'it_admin'], tenant: tenantFrom.body('tenant_id') }, idempotent: {}, problems: ['not_found', 'unknown_product', 'trial_not_offered', 'tenant_inactive', 'already_entitled', 'trial_used', 'product_revoked'] },
      schema: {
        operationId: 'startTrial',
        tags: ['catalog'],
        summary: 'Start the self-serve trial of a product: once per tenant and product, ever',
        body: TrialRequestBody,
        response: {
          201: RefTo(EntitlementSchema, { description: 'The trial entitlement' }),
        },
      },
    },
    async (request, reply) => {
      const { tenant_id: tenantId, product: code } = request.body;
      const product = findProduct(catalog, code);
      if (!product) throw unknownProduct(code);
      const trialDays = product.trial_days;
      if (trialDays === null) throw new AppError('trial_not_offered', { detail: `${code} has no self-serve trial` });
      const now = clock();
      const origin = originOf(request);
      const row = await db.transaction(async (tx) => {
        // The tenant's row lock serializes its trial requests: two at once start one trial.
        const tenant = await lockTenantForUpdate(tx, tenantId);
        if (!tenant) throw notFound('tenant');
        const status = statusAt(tenant, now);
        if (!USABLE_TENANT_STATUSES.includes(status)) {
          throw new AppError('tenant_inactive', {
            detail: `a ${status} tenant cannot start trials`,
            extensions: { current_status: status },
          });
        }
        const existing = await lockEntitlementForUpdate(tx, tenantId, code);
        const refusal = trialRefusal(existing, now);
        if (refusal) throw new AppError(refusal, { detail: TRIAL_REFUSALS[refusal](code) });
        const endsAt = trialEnd(now, trialDays);
        const started = await startTrial(tx, tenantId, code, now, endsAt);
        await recordChange(
          tx,
          origin,
          {
            action: 'entitlement.trial_started',
            crud: existing ? 'u' : 'c',
            tenant,
            product: code,
            target: { id: code, type: 'product', name: code },
            fields: { trial_ends_at: endsAt.toISOString(), trial_days: String(trialDays) },
          },
          now,
        );
        return started;
      });
      return reply.code(201).send(toEntitlement(row, now));
    },
  );
};
