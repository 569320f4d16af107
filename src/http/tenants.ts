// /v1/tenants: create a tenant, read it by id or slug, move it through its lifecycle.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { TenantCache } from '../caching/tenant-cache.js';
import type { Config } from '../config.js';
import { isUuid } from '../domain/ids.js';
import { initialState, isTenantTrialOver, tenantAt, type LifecycleAction } from '../domain/lifecycle.js';
import type { KeycloakAdapter } from '../keycloak/adapter.js';
import { AppError, notFound, refuseIfArchived } from '../problems.js';
import { recordChange } from '../services/audit-trail.js';
import { provisionTenant, type ProvisionDeps, type ProvisionOutcome } from '../services/provisioning.js';
import { editTenant } from '../services/tenant-edits.js';
import { listExpiriesDueBefore } from '../store/entitlements.js';
import { archiveTenant, transitionTenant } from '../services/tenant-lifecycle.js';
import type { Database } from '../store/database.js';
import {
  findTenantById,
  insertTenant,
  listTenants,
  listTrialsEndingBefore,
  lockTenantForUpdate,
  type TenantFilters,
  type TenantPosition,
  type TenantRow,
} from '../store/tenants.js';
import { tenantFrom, type TenantOf } from './access.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { etagMatches, IfMatchHeaders, strongEtag } from './etag.js';
import { originOf } from './origin.js';
import { RefTo } from './schemas/parts.js';
import {
  ArchiveTenantBody,
  CreateTenantBody,
  CreatedTenantSchema,
  ProvisionBody,
  TenantIdParams,
  TenantListQuery,
  TenantPageSchema,
  TenantSchema,
  TenantSlugParams,
  TransitionsQuery,
  TransitionsSchema,
  UpdateTenantBody,
  type Tenant,
} from './schemas/tenant.js';

export interface TenantRoutesOptions {
  db: Database;
  clock: () => Date;
  tenants: TenantCache;
  keycloak: KeycloakAdapter;
  provisionBudgetMs: number;
  /** invite_url is answered only in dev: it lets a tester finish sign-up without a mailbox. */
  appEnv: Config['appEnv'];
}

/** The tenant as it reads at `now` (a trial that has ended is frozen: domain/lifecycle.ts). */
export function toTenant(stored: TenantRow, now: Date): Tenant {
  const row = tenantAt(stored, now);
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
    keycloak_org_id: row.keycloak_org_id,
    keycloak_provisioning: row.keycloak_provisioning,
    contract_starts_on: row.contract_starts_on,
    contract_ends_on: row.contract_ends_on,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

/**
 * The tenant's ETag: the version of its row, marked once its trial has ended, since the answer
 * changes then (it reads as frozen) without a write.
 */
const etagOf = (row: TenantRow, now: Date) => strongEtag(isTenantTrialOver(row, now) ? `${row.version}-trial-over` : String(row.version));

/** A tenant as the answer, with the ETag that If-Match takes. */
const sendTenant = (reply: FastifyReply, row: TenantRow, now: Date) => reply.header('etag', etagOf(row, now)).send(toTenant(row, now));

// The list's cursor: created_at in microseconds (a Date would round it to milliseconds, and
// tenants created within one millisecond would be skipped or repeated) and the id.
const MICROSECONDS = /^[0-9]{1,17}$/;
function decodeTenantPosition(cursor: string): TenantPosition {
  const [createdMicros, id] = decodeCursor(cursor, 2, (part, i) => (i === 0 ? MICROSECONDS.test(part) : isUuid(part)));
  return { createdMicros: createdMicros!, id: id! };
}

export const tenantRoutes: FastifyPluginAsyncTypebox<TenantRoutesOptions> = async (app, options) => {
  const { db, clock, tenants } = options;
  // A tenant user asking by slug is checked against the tenant the slug names (null: none).
  const tenantOfSlug: TenantOf = async (request) =>
    (await tenants.byIdOrSlug({ slug: (request.params as { slug: string }).slug }))?.tenant.id ?? null;
  const provisioning = (request: FastifyRequest): ProvisionDeps => ({
    db,
    keycloak: options.keycloak,
    budgetMs: options.provisionBudgetMs,
    clock,
    onUnexpected: (error) => request.log.error({ err: error }, 'Keycloak provisioning failed unexpectedly'),
  });
  const inviteUrlOf = (outcome: ProvisionOutcome | null) =>
    options.appEnv === 'dev' && outcome?.result?.inviteUrl ? { invite_url: outcome.result.inviteUrl } : {};

  app.post(
    '/v1/tenants',
    {
      config: { access: { allow: ['platform_admin'] }, idempotent: {}, answerHeaders: { 201: ['Location'] }, problems: ['slug_taken'] },
      schema: {
        operationId: 'createTenant',
        tags: ['tenants'],
        summary: 'Create a tenant: customers start a trial, demo tenants start in demo',
        body: CreateTenantBody,
        response: { 201: RefTo(CreatedTenantSchema) },
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
          adminEmail: body.admin_email ?? null,
          adminName: body.admin_name?.trim() ?? null,
        });
        await recordChange(tx, originOf(request), { action: 'tenant.created', crud: 'c', tenant, fields: { status, kind } }, now);
        return tenant;
      });
      // The tenant is committed; Keycloak comes after and, failing, fails alone (and is retried).
      const outcome = body.admin_email
        ? await provisionTenant(provisioning(request), row, { email: body.admin_email, name: row.admin_name }, originOf(request))
        : null;
      return reply
        .code(201)
        .header('location', `/v1/tenants/${row.id}`)
        .send({ tenant: toTenant(outcome?.tenant ?? row, now), ...inviteUrlOf(outcome) });
    },
  );

  app.get(
    '/v1/tenants/:id',
    {
      config: { access: { allow: ['platform_admin', 'service', 'member'], tenant: tenantFrom.param('id') }, problems: ['not_found'] },
      schema: {
        operationId: 'getTenant',
        description: 'The ETag of the answer is what PATCH /v1/tenants/{id} takes as If-Match.',
        tags: ['tenants'],
        summary: 'Read a tenant by id',
        params: TenantIdParams,
        response: { 200: RefTo(TenantSchema, { description: 'The tenant' }) },
      },
    },
    async (request, reply) => {
      const facts = await tenants.byIdOrSlug({ id: request.params.id });
      if (!facts) throw notFound('tenant');
      const now = clock();
      return sendTenant(reply, facts.tenant, now);
    },
  );

  app.get(
    '/v1/tenants',
    {
      config: { access: { allow: ['platform_admin', 'service'] }, problems: ['invalid_cursor'] },
      schema: {
        operationId: 'listTenants',
        tags: ['tenants'],
        summary: 'Find tenants, newest first: by status, kind, plan, sales owner, ERP id, trial end, creation time or a slug or name prefix',
        querystring: TenantListQuery,
        response: { 200: RefTo(TenantPageSchema) },
      },
    },
    async (request) => {
      const { limit = 50, cursor, ...query } = request.query;
      const now = clock();
      const filters: TenantFilters = {
        ...(query.status !== undefined && { status: query.status }),
        ...(query.kind !== undefined && { kind: query.kind }),
        ...(query.plan !== undefined && { plan: query.plan }),
        ...(query.sales_owner !== undefined && { salesOwner: query.sales_owner }),
        ...(query.erp_id !== undefined && { erpId: query.erp_id }),
        ...(query.trial_ends_before !== undefined && { trialEndsBefore: new Date(query.trial_ends_before) }),
        ...(query.created_after !== undefined && { createdAfter: new Date(query.created_after) }),
        ...(query.created_before !== undefined && { createdBefore: new Date(query.created_before) }),
        ...(query.q !== undefined && { q: query.q }),
      };
      const rows = await listTenants(db, filters, { after: cursor ? decodeTenantPosition(cursor) : null, limit: limit + 1, now });
      const items = rows.slice(0, limit);
      const last = items.at(-1);
      return {
        items: items.map((row) => toTenant(row, now)),
        next_cursor: rows.length > limit && last ? encodeCursor([last.created_micros, last.id]) : null,
      };
    },
  );

  app.get(
    '/v1/tenants/transitions',
    {
      config: { access: { allow: ['platform_admin', 'service'] } },
      schema: {
        operationId: 'listScheduledTransitions',
        tags: ['tenants'],
        summary: 'What the service will do by itself by a given time: tenant trials that end, product trials that expire',
        querystring: TransitionsQuery,
        response: { 200: RefTo(TransitionsSchema) },
      },
    },
    async (request) => {
      const { before: until, limit = 100 } = request.query;
      const before = new Date(until);
      const [trials, expiries] = await Promise.all([
        listTrialsEndingBefore(db, before, limit + 1),
        listExpiriesDueBefore(db, before, limit + 1),
      ]);
      const moves = [
        ...trials.map((row) => ({ at: row.trial_ends_at!, kind: 'trial_ends' as const, tenant_id: row.id, slug: row.slug, name: row.name, product: null })),
        ...expiries.map((row) => ({
          at: row.trial_ends_at!,
          kind: 'product_trial_expires' as const,
          tenant_id: row.tenant_id,
          slug: row.slug,
          name: row.name,
          product: row.product,
        })),
      ].sort((a, b) => a.at.getTime() - b.at.getTime());
      return {
        items: moves.slice(0, limit).map((move) => ({ ...move, at: move.at.toISOString() })),
        truncated: moves.length > limit,
      };
    },
  );

  app.patch(
    '/v1/tenants/:id',
    {
      config: {
        access: { allow: ['platform_admin'] },
        problems: ['not_found', 'slug_immutable', 'precondition_failed', 'precondition_required', 'tenant_inactive'],
      },
      // Said plainly rather than as "slug is not allowed": an operator trying to rename the
      // slug should learn why it is fixed.
      preValidation: async (request) => {
        const body = request.body as Record<string, unknown> | null;
        if (body !== null && typeof body === 'object' && Object.hasOwn(body, 'slug')) {
          throw new AppError('slug_immutable', {
            detail: "the slug cannot change: it is the tenant's Keycloak organization alias and part of URLs; create a new tenant for a new slug",
          });
        }
      },
      schema: {
        operationId: 'updateTenant',
        tags: ['tenants'],
        summary: "Edit a tenant's name, plan, ERP and Stripe ids, sales owner and contract dates",
        description:
          'Send If-Match with the ETag of your last read (or *): an edit based on a stale read is refused with 412, so no one silently undoes another change. Each changed field is recorded in one tenant.updated event with its old and new value.',
        params: TenantIdParams,
        headers: IfMatchHeaders,
        body: UpdateTenantBody,
        response: { 200: RefTo(TenantSchema, { description: 'The tenant after the edit (ETag: its new version)' }) },
      },
    },
    async (request, reply) => {
      const ifMatch = request.headers['if-match'];
      if (ifMatch === undefined) {
        throw new AppError('precondition_required', { detail: 'send If-Match with the ETag of a read of this tenant (or *)' });
      }
      const now = clock();
      const row = await db.transaction(async (tx) => {
        const tenant = await lockTenantForUpdate(tx, request.params.id);
        if (!tenant) throw notFound('tenant');
        const current = etagOf(tenant, now);
        if (!etagMatches(ifMatch, current)) {
          throw new AppError('precondition_failed', {
            detail: 'the tenant changed since that read; read it again and reapply the edit',
            headers: { etag: current },
          });
        }
        return editTenant(tx, tenant, request.body, originOf(request), now);
      });
      return sendTenant(reply, row, now);
    },
  );

  app.get(
    '/v1/tenants/by-slug/:slug',
    {
      config: { access: { allow: ['platform_admin', 'service', 'member'], tenant: tenantOfSlug }, problems: ['not_found'] },
      schema: {
        operationId: 'getTenantBySlug',
        tags: ['tenants'],
        summary: 'Read a tenant by slug (the portal resolves every request this way)',
        params: TenantSlugParams,
        response: { 200: RefTo(TenantSchema, { description: 'The tenant' }) },
      },
    },
    async (request, reply) => {
      const facts = await tenants.byIdOrSlug({ slug: request.params.slug });
      if (!facts) throw notFound('tenant');
      const now = clock();
      return sendTenant(reply, facts.tenant, now);
    },
  );

  const summaries: Record<Exclude<LifecycleAction, 'archive'>, string> = {
    activate: 'Activate a tenant (trial or frozen -> active)',
    cancel: 'Cancel a tenant (trial or active -> frozen)',
  };
  for (const action of ['activate', 'cancel'] as const) {
    app.post(
      `/v1/tenants/:id/${action}`,
      {
        config: { access: { allow: ['platform_admin'] }, problems: ['not_found', 'invalid_transition'] },
        schema: {
          operationId: `${action}Tenant`,
          tags: ['tenants'],
          summary: summaries[action],
          params: TenantIdParams,
          response: { 200: RefTo(TenantSchema, { description: 'The tenant after the transition' }) },
        },
      },
      async (request, reply) => {
        const now = clock();
        const row = await db.transaction((tx) => transitionTenant(tx, request.params.id, action, originOf(request), now));
        return sendTenant(reply, row, now);
      },
    );
  }

  app.post(
    '/v1/tenants/:id/archive',
    {
      config: { access: { allow: ['platform_admin'] }, problems: ['not_found', 'invalid_transition'] },
      schema: {
        operationId: 'archiveTenant',
        tags: ['tenants'],
        summary: 'End a frozen tenant for good: its keys and products are revoked and its Keycloak organization disabled',
        description:
          'From frozen only (a trial that has ended counts as frozen). The slug stays taken and the audit history is kept; GET /v1/tenants/{id}/export still reads everything. Not reversible.',
        params: TenantIdParams,
        body: ArchiveTenantBody,
        response: { 200: RefTo(TenantSchema, { description: 'The archived tenant' }) },
      },
    },
    async (request, reply) => {
      const now = clock();
      const row = await db.transaction((tx) => archiveTenant(tx, request.params.id, request.body.reason.trim(), originOf(request), now));
      return sendTenant(reply, row, now);
    },
  );

  app.post(
    '/v1/tenants/:id/keycloak/provision',
    {
      config: {
        access: { allow: ['platform_admin'] },
        // Every field is optional, and so is the body: a retry sent without one uses the admin given at creation.
        optionalBody: true,
        problems: ['not_found', 'tenant_inactive', 'no_admin_email', 'keycloak_provisioning_off', 'keycloak_failed'],
      },
      schema: {
        operationId: 'provisionTenantInKeycloak',
        tags: ['tenants'],
        summary: "Run the tenant's Keycloak provisioning again (after a failure, or to resend the invitation)",
        params: TenantIdParams,
        body: ProvisionBody,
        response: {
          200: RefTo(CreatedTenantSchema, { description: 'Provisioned; the invitation mail is on its way' }),
        },
      },
    },
    async (request) => {
      const tenant = await findTenantById(db, request.params.id);
      if (!tenant) throw notFound('tenant');
      // Its organization is disabled for good; inviting an admin into it makes no sense.
      refuseIfArchived(tenant);
      const email = request.body?.admin_email ?? tenant.admin_email;
      if (!email) {
        throw new AppError('no_admin_email', { detail: 'the tenant has no IT admin to invite; give admin_email' });
      }
      const name = request.body?.admin_name?.trim() ?? tenant.admin_name;
      const outcome = await provisionTenant(provisioning(request), tenant, { email, name }, originOf(request));
      // Turned off by configuration: nothing failed upstream, and retrying will not help until
      // an operator turns it on. The refused attempt is recorded like any other.
      if (outcome.error?.type === 'disabled') {
        throw new AppError('keycloak_provisioning_off', {
          detail: 'Keycloak provisioning is turned off in this deployment; nothing was sent',
        });
      }
      if (outcome.error) {
        throw new AppError('keycloak_failed', {
          detail: `Keycloak provisioning failed (${outcome.error.type} at ${outcome.error.step}); it is recorded and can be retried`,
          extensions: { error_type: outcome.error.type, step: outcome.error.step },
        });
      }
      return { tenant: toTenant(outcome.tenant, clock()), ...inviteUrlOf(outcome) };
    },
  );
};
