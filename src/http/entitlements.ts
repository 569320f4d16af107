// /v1/entitlements: what each tenant may use. Operators grant and revoke; tenants and services read.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { findProduct, type Catalog } from '../domain/catalog.js';
import { daysLeft, effectiveStatus } from '../domain/entitlements.js';
import type { TenantCache } from '../caching/tenant-cache.js';
import type { Database } from '../store/database.js';
import { closeOpenRequests, findEntitlement, grantEntitlement, revokeEntitlement, type EntitlementRow } from '../store/entitlements.js';
import { holdTenant, lockTenant } from '../store/tenants.js';
import { tenantFrom } from './access.js';
import { originOf, recordChange } from './audit-trail.js';
import { AppError, notFound } from './problem.js';
import { RefTo } from './schemas/common.js';
import { EntitlementParams, EntitlementSchema, GrantBody, TenantQuery, type Entitlement } from './schemas/entitlement.js';
import { problemResponses } from './schemas/problem.js';

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
    source: row.source as Entitlement['source'],
    // A trial's end means something only while the entitlement is (or was last) that trial.
    trial_ends_at: row.status === 'trial' ? (row.trial_ends_at?.toISOString() ?? null) : null,
    days_left: daysLeft(row, now),
    granted_at: row.granted_at?.toISOString() ?? null,
    config: row.config,
  };
}

export const unknownProduct = (code: string) =>
  new AppError(404, 'unknown_product', { detail: `the catalog has no product "${code}"` });

const productTarget = (product: string) => ({ id: product, type: 'product', name: product });

export const entitlementRoutes: FastifyPluginAsyncTypebox<EntitlementRoutesOptions> = async (app, { db, tenants, catalog, clock }) => {
  app.get(
    '/v1/entitlements',
    {
      config: { access: { allow: ['platform_admin', 'service', 'member'], tenant: tenantFrom.query('tenant_id') } },
      schema: {
        operationId: 'listEntitlements',
        tags: ['entitlements'],
        summary: "A tenant's entitlements, with trial expiry computed at read time",
        querystring: TenantQuery,
        response: {
          200: Type.Object({ items: Type.Array(RefTo(EntitlementSchema)) }, { description: 'Every entitlement of the tenant' }),
          ...problemResponses(400, 404, 503),
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
      config: { access: { allow: ['platform_admin'] } },
      schema: {
        operationId: 'grantEntitlement',
        tags: ['entitlements'],
        summary: 'Grant a product (from any state); closes open sales requests for it',
        params: EntitlementParams,
        body: GrantBody,
        response: { 200: RefTo(EntitlementSchema, { description: 'The active entitlement' }), ...problemResponses(400, 404, 413, 415, 503) },
      },
    },
    async (request) => {
      const { tenant_id: tenantId, product } = request.params;
      if (!findProduct(catalog, product)) throw unknownProduct(product);
      const now = clock();
      const row = await db.transaction(async (tx) => {
        // The tenant's row lock orders concurrent grants, so each event names the state it changed.
        const tenant = await lockTenant(tx, tenantId);
        if (!tenant) throw notFound('tenant');
        const before = await findEntitlement(tx, tenantId, product, true);
        const granted = await grantEntitlement(tx, tenantId, product, request.body?.config, now);
        const closed = await closeOpenRequests(tx, tenantId, product, 'granted', now);
        await recordChange(
          tx,
          originOf(request),
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
      });
      return toEntitlement(row, now);
    },
  );

  app.delete(
    '/v1/entitlements/:tenant_id/:product',
    {
      config: { access: { allow: ['platform_admin'] } },
      schema: {
        operationId: 'revokeEntitlement',
        tags: ['entitlements'],
        summary: 'Revoke a product; revoking again changes nothing',
        params: EntitlementParams,
        response: { 204: Type.Null({ description: 'Revoked' }), ...problemResponses(400, 404, 503) },
      },
    },
    async (request, reply) => {
      const { tenant_id: tenantId, product } = request.params;
      const now = clock();
      await db.transaction(async (tx) => {
        const tenant = await holdTenant(tx, tenantId);
        if (!tenant) throw notFound('tenant');
        const before = await findEntitlement(tx, tenantId, product, true);
        if (!before) throw notFound('entitlement');
        if (before.status === 'revoked') return;
        await revokeEntitlement(tx, tenantId, product, now);
        // A request that was open for it is answered too: sales need not follow it up.
        await closeOpenRequests(tx, tenantId, product, 'revoked', now);
        await recordChange(
          tx,
          originOf(request),
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
      });
      return reply.code(204).send(null);
    },
  );
};
