// /v1/entitlements: what each tenant may use. Operators grant and revoke; tenants and services read.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { findProduct, type Catalog } from '../domain/products.js';
import { daysLeft, effectiveStatus } from '../domain/entitlements.js';
import type { TenantCache } from '../caching/tenant-cache.js';
import type { Database } from '../store/database.js';
import type { EntitlementRow } from '../store/entitlements.js';
import { AppError, notFound } from '../problems.js';
import { grantProduct, revokeProduct } from '../services/entitlements.js';
import { tenantFrom } from './access.js';
import { originOf } from './origin.js';
import { RefTo } from './schemas/parts.js';
import { EntitlementListSchema, EntitlementParams, EntitlementSchema, GrantBody, TenantQuery, type Entitlement } from './schemas/entitlement.js';

export interface EntitlementRoutesOptions {
  db: Database;
  /** The list is read from here: products and the portal ask for it on every page. */
  tenants: TenantCache;
  catalog: Catalog;
  clock: () => Date;
}

export function toEntitlement(row: EntitlementRow, now: Date): Entitlement {
  return {
    tenant_id: row.tenant_id,
    product: row.product,
    status: effectiveStatus(row, now),
    source: row.source,
    // A trial's end means something only while the entitlement is (or was last) that trial.
    trial_ends_at: row.status === 'trial' ? (row.trial_ends_at?.toISOString() ?? null) : null,
    days_left: daysLeft(row, now),
    granted_at: row.granted_at?.toISOString() ?? null,
    config: row.config,
  };
}

export const unknownProduct = (code: string) =>
  new AppError('unknown_product', { detail: `the catalog has no product "${code}"` });

export const entitlementRoutes: FastifyPluginAsyncTypebox<EntitlementRoutesOptions> = async (app, { db, tenants, catalog, clock }) => {
  app.get(
    '/v1/entitlements',
    {
      config: { access: { allow: ['platform_admin', 'service', 'member'], tenant: tenantFrom.query('tenant_id') }, problems: ['not_found'] },
      schema: {
        operationId: 'listEntitlements',
        tags: ['entitlements'],
        summary: "A tenant's entitlements, with trial expiry computed at read time",
        querystring: TenantQuery,
        response: {
          200: RefTo(EntitlementListSchema),
        },
      },
    },
    async (request) => {
      // The cached facts are dropped by the invalidation feed on every change of the tenant's
      // entitlements, and at once on this replica by its own writes; expiry is computed here.
      const facts = await tenants.byIdOrSlug({ id: request.query.tenant_id });
      if (!facts) throw notFound('tenant');
      const now = clock();
      return { items: facts.entitlements.map((row) => toEntitlement(row, now)) };
    },
  );

  app.put(
    '/v1/entitlements/:tenant_id/:product',
    {
      config: { access: { allow: ['platform_admin'] }, problems: ['not_found', 'unknown_product', 'tenant_inactive'] },
      schema: {
        operationId: 'grantEntitlement',
        tags: ['entitlements'],
        summary: 'Grant a product (from any state); closes open sales requests for it',
        params: EntitlementParams,
        body: GrantBody,
        response: { 200: RefTo(EntitlementSchema, { description: 'The active entitlement' }) },
      },
    },
    async (request) => {
      const { tenant_id: tenantId, product } = request.params;
      if (!findProduct(catalog, product)) throw unknownProduct(product);
      const now = clock();
      const grant = { tenantId, product, config: request.body?.config };
      const row = await db.transaction((tx) => grantProduct(tx, grant, originOf(request), now));
      return toEntitlement(row, now);
    },
  );

  app.delete(
    '/v1/entitlements/:tenant_id/:product',
    {
      config: { access: { allow: ['platform_admin'] }, problems: ['not_found'] },
      schema: {
        operationId: 'revokeEntitlement',
        tags: ['entitlements'],
        summary: 'Revoke a product; revoking again changes nothing',
        params: EntitlementParams,
        response: { 204: Type.Null({ description: 'Revoked' }) },
      },
    },
    async (request, reply) => {
      const { tenant_id: tenantId, product } = request.params;
      const now = clock();
      await db.transaction((tx) => revokeProduct(tx, { tenantId, product }, originOf(request), now));
      return reply.code(204).send(null);
    },
  );
};
