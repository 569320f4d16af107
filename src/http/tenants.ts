// /v1/tenants: create a tenant, read it by id or slug, move it through its lifecycle.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { initialState, nextStatus, trialEndsAfter, type LifecycleAction } from '../domain/lifecycle.js';
import type { Database } from '../store/database.js';
import {
  findTenantById,
  findTenantBySlug,
  insertTenant,
  lockTenant,
  updateTenantStatus,
  type TenantRow,
} from '../store/tenants.js';
import { tenantFrom, type TenantOf } from './access.js';
import { originOf, recordChange } from './audit-trail.js';
import { AppError, notFound } from './problem.js';
import { RefTo } from './schemas/common.js';
import { problemResponses } from './schemas/problem.js';
import {
  CreateTenantBody,
  CreatedTenantSchema,
  TenantIdParams,
  TenantSchema,
  TenantSlugParams,
  type Tenant,
} from './schemas/tenant.js';

export interface TenantRoutesOptions {
  db: Database;
  clock: () => Date;
}

export function toTenant(row: TenantRow): Tenant {
  return {
    id: row.id,
    slug: row.slug,
    name: row.name,
    status: row.status,
    kind: row.kind,
    plan: row.plan,
    trial_ends_at: row.trial_ends_at?.toISOString() ?? null,
    erp_id: row.erp_id,
    stripe_id: row.stripe_id,
    sales_owner: row.sales_owner,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export const tenantRoutes: FastifyPluginAsyncTypebox<TenantRoutesOptions> = async (app, { db, clock }) => {
  // A tenant user asking by slug is checked against the tenant the slug names (null: none).
  const tenantOfSlug: TenantOf = async (request) =>
    (await findTenantBySlug(db, (request.params as { slug: string }).slug))?.id ?? null;

  app.post(
    '/v1/tenants',
    {
      config: { access: { allow: ['platform_admin'] } },
      schema: {
        operationId: 'createTenant',
        tags: ['tenants'],
        summary: 'Create a tenant: customers start a trial, demo tenants start in demo',
        body: CreateTenantBody,
        response: { 201: CreatedTenantSchema, ...problemResponses(400, 409, 413, 415, 503) },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const kind = body.kind ?? 'customer';
      const now = clock();
      const { status, trialEndsAt } = initialState(kind, now);
      const row = await db.transaction(async (tx) => {
        const tenant = await insertTenant(tx, {
          slug: body.slug,
          name: body.name.trim(),
          status,
          kind,
          plan: body.plan ?? null,
          trialEndsAt,
          erpId: body.erp_id ?? null,
          stripeId: body.stripe_id ?? null,
          salesOwner: body.sales_owner ?? null,
        });
        await recordChange(tx, originOf(request), { action: 'tenant.created', crud: 'c', tenant, fields: { status, kind } }, now);
        return tenant;
      });
      return reply
        .code(201)
        .header('location', `/v1/tenants/${row.id}`)
        .send({ tenant: toTenant(row) });
    },
  );

  app.get(
    '/v1/tenants/:id',
    {
      config: { access: { allow: ['platform_admin', 'service', 'member'], tenant: tenantFrom.param('id') } },
      schema: {
        operationId: 'getTenant',
        tags: ['tenants'],
        summary: 'Read a tenant by id',
        params: TenantIdParams,
        response: { 200: RefTo(TenantSchema, { description: 'The tenant' }), ...problemResponses(400, 404, 503) },
      },
    },
    async (request) => {
      const row = await findTenantById(db, request.params.id);
      if (!row) throw notFound('tenant');
      return toTenant(row);
    },
  );

  app.get(
    '/v1/tenants/by-slug/:slug',
    {
      config: { access: { allow: ['platform_admin', 'service', 'member'], tenant: tenantOfSlug } },
      schema: {
        operationId: 'getTenantBySlug',
        tags: ['tenants'],
        summary: 'Read a tenant by slug (the portal resolves every request this way)',
        params: TenantSlugParams,
        response: { 200: RefTo(TenantSchema, { description: 'The tenant' }), ...problemResponses(400, 404, 503) },
      },
    },
    async (request) => {
      const row = await findTenantBySlug(db, request.params.slug);
      if (!row) throw notFound('tenant');
      return toTenant(row);
    },
  );

  // One row lock per transition: two concurrent calls serialize, and the second sees the
  // status the first left, so it either applies on top of it or answers invalid_transition.
  const transition = (action: LifecycleAction, id: string, request: FastifyRequest) =>
    db.transaction(async (tx) => {
      const tenant = await lockTenant(tx, id);
      if (!tenant) throw notFound('tenant');
      const next = nextStatus(action, tenant.status);
      if (!next) {
        throw new AppError(409, 'invalid_transition', {
          detail: `cannot ${action} a tenant in status ${tenant.status}`,
          extensions: { current_status: tenant.status },
        });
      }
      const updated = await updateTenantStatus(tx, id, next, trialEndsAfter(next, tenant.trial_ends_at));
      await recordChange(
        tx,
        originOf(request),
        { action: PAST_TENSE[action], crud: 'u', tenant: updated, fields: { from_status: tenant.status, to_status: next } },
        clock(),
      );
      return updated;
    });

  const PAST_TENSE: Record<LifecycleAction, string> = { activate: 'tenant.activated', cancel: 'tenant.cancelled' };
  const summaries: Record<LifecycleAction, string> = {
    activate: 'Activate a tenant (trial or frozen -> active)',
    cancel: 'Cancel a tenant (trial or active -> frozen)',
  };
  for (const action of ['activate', 'cancel'] as const) {
    app.post(
      `/v1/tenants/:id/${action}`,
      {
        config: { access: { allow: ['platform_admin'] } },
        schema: {
          operationId: `${action}Tenant`,
          tags: ['tenants'],
          summary: summaries[action],
          params: TenantIdParams,
          response: { 200: RefTo(TenantSchema, { description: 'The tenant after the transition' }), ...problemResponses(400, 404, 409, 503) },
        },
      },
      async (request) => toTenant(await transition(action, request.params.id, request)),
    );
  }
};
