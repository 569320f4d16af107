// /v1/api-keys: tenants' keys for headless products. The plaintext key exists only in the answer
// to create and rotate; what is stored is its hash, what is listed is a prefix and the last 4.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { displayParts, generateApiKey, hashApiKey } from '../domain/api-key.js';
import { findProduct, type Catalog } from '../domain/catalog.js';
import type { Queryable, Database } from '../store/database.js';
import { findApiKey, insertApiKey, listApiKeys, retireRotatedKey, revokeApiKey, type ApiKeyRow } from '../store/api-keys.js';
import { holdTenant, type TenantRow } from '../store/tenants.js';
import { tenantFrom, type TenantOf } from './access.js';
import { originOf, recordChange, type Origin } from './audit-trail.js';
import { unknownProduct } from './entitlements.js';
import { AppError, notFound } from './problem.js';
import { RefTo } from './schemas/common.js';
import { ApiKeyListQuery, ApiKeyParams, ApiKeySchema, CreateApiKeyBody, CreatedApiKeySchema, RotateBody, type ApiKey } from './schemas/api-key.js';
import { problemResponses } from './schemas/problem.js';

export interface ApiKeyRoutesOptions {
  db: Database;
  catalog: Catalog;
  pepper: string | null;
  clock: () => Date;
}

export function toApiKey(row: ApiKeyRow): ApiKey {
  return {
    id: row.id,
    tenant_id: row.tenant_id,
    name: row.name,
    prefix: row.prefix,
    last4: row.last4,
    scopes: row.scopes,
    products: row.products,
    created_at: row.created_at.toISOString(),
    expires_at: row.expires_at?.toISOString() ?? null,
    last_used_at: row.last_used_at?.toISOString() ?? null,
    revoked_at: row.revoked_at?.toISOString() ?? null,
  };
}

interface KeySpec {
  tenant: TenantRow;
  name: string;
  scopes: string[];
  products: string[];
  expiresAt: Date | null;
}

export const apiKeyRoutes: FastifyPluginAsyncTypebox<ApiKeyRoutesOptions> = async (app, { db, catalog, pepper, clock }) => {
  // The tenant a key belongs to, for the access rules of routes that name only the key.
  const tenantOfKey: TenantOf = async (request) =>
    (await findApiKey(db, (request.params as { id: string }).id))?.tenant_id ?? null;
  const manageKeys = (tenant: TenantOf) => ({ allow: ['platform_admin', 'it_admin'] as const, tenant });

  /** Makes a key, stores its hash and writes its audit event; the plaintext goes to the caller only. */
  async function issueKey(tx: Queryable, spec: KeySpec, origin: Origin, now: Date, event: { action: string; fields?: Record<string, string> }) {
    const key = generateApiKey();
    const row = await insertApiKey(tx, {
      tenantId: spec.tenant.id,
      name: spec.name,
      hash: hashApiKey(key, pepper),
      ...displayParts(key),
      scopes: spec.scopes,
      products: spec.products,
      expiresAt: spec.expiresAt,
      createdBy: origin.actor.name ?? origin.actor.id,
      now,
    });
    await recordChange(
      tx,
      origin,
      {
        action: event.action,
        crud: 'c',
        tenant: spec.tenant,
        // The audit log names the key by id and display prefix; never by secret or hash.
        target: { id: row.id, type: 'api_key', name: `${row.prefix}…${row.last4}` },
        fields: { name: row.name, ...event.fields },
      },
      now,
    );
    return { row, key };
  }

  app.post(
    '/v1/api-keys',
    {
      // A replay answers the key without its plaintext, which is never kept at rest.
      config: { access: manageKeys(tenantFrom.body('tenant_id')), idempotent: { withhold: ['key'] } },
      schema: {
        operationId: 'createApiKey',
        tags: ['api-keys'],
        summary: 'Create a key; its plaintext is in this answer only',
        body: CreateApiKeyBody,
        response: { 201: CreatedApiKeySchema, ...problemResponses(400, 404, 413, 415, 503) },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const now = clock();
      for (const product of body.products ?? []) if (!findProduct(catalog, product)) throw unknownProduct(product);
      const expiresAt = body.expires_at ? new Date(body.expires_at) : null;
      if (expiresAt && expiresAt <= now) {
        throw new AppError(400, 'validation_failed', {
          detail: 'the request body is invalid',
          errors: [{ path: '/expires_at', in: 'body', message: 'must be in the future' }],
        });
      }
      const origin = originOf(request);
      const { row, key } = await db.transaction(async (tx) => {
        const tenant = await holdTenant(tx, body.tenant_id);
        if (!tenant) throw notFound('tenant');
        const spec = { tenant, name: body.name.trim(), scopes: body.scopes ?? [], products: body.products ?? [], expiresAt };
        return issueKey(tx, spec, origin, now, { action: 'api_key.created' });
      });
      return reply.code(201).header('location', `/v1/api-keys/${row.id}`).send({ ...toApiKey(row), key });
    },
  );

  app.get(
    '/v1/api-keys',
    {
      config: { access: manageKeys(tenantFrom.query('tenant_id')) },
      schema: {
        operationId: 'listApiKeys',
        tags: ['api-keys'],
        summary: "A tenant's keys, newest first, without secrets; revoked ones with include_revoked",
        querystring: ApiKeyListQuery,
        response: {
          200: Type.Object({ items: Type.Array(RefTo(ApiKeySchema)) }, { description: 'The keys' }),
          ...problemResponses(400, 404, 503),
        },
      },
    },
    async (request) => {
      const { tenant_id: tenantId, include_revoked: includeRevoked = false } = request.query;
      if (!(await holdTenant(db, tenantId))) throw notFound('tenant');
      return { items: (await listApiKeys(db, tenantId, includeRevoked)).map(toApiKey) };
    },
  );

  app.get(
    '/v1/api-keys/:id',
    {
      config: { access: manageKeys(tenantOfKey) },
      schema: {
        operationId: 'getApiKey',
        tags: ['api-keys'],
        summary: 'One key, without its secret',
        params: ApiKeyParams,
        response: { 200: RefTo(ApiKeySchema, { description: 'The key' }), ...problemResponses(400, 404, 503) },
      },
    },
    async (request) => {
      const key = await findApiKey(db, request.params.id);
      if (!key) throw notFound('API key');
      return toApiKey(key);
    },
  );

  app.delete(
    '/v1/api-keys/:id',
    {
      config: { access: manageKeys(tenantOfKey) },
      schema: {
        operationId: 'revokeApiKey',
        tags: ['api-keys'],
        summary: 'Revoke a key at once, on every replica within a second; revoking again changes nothing',
        params: ApiKeyParams,
        response: { 204: Type.Null({ description: 'Revoked' }), ...problemResponses(400, 404, 503) },
      },
    },
    async (request, reply) => {
      const now = clock();
      const origin = originOf(request);
      await db.transaction(async (tx) => {
        const key = await findApiKey(tx, request.params.id, true);
        if (!key) throw notFound('API key');
        if (key.revoked_at) return;
        const tenant = (await holdTenant(tx, key.tenant_id))!;
        await revokeApiKey(tx, key.id, now);
        await recordChange(
          tx,
          origin,
          {
            action: 'api_key.revoked',
            crud: 'd',
            tenant,
            target: { id: key.id, type: 'api_key', name: `${key.prefix}…${key.last4}` },
            fields: { name: key.name },
          },
          now,
        );
      });
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/api-keys/:id/rotate',
    {
      config: { access: manageKeys(tenantOfKey) },
      // Every field is optional; a rotate sent without a body means the defaults.
      preValidation: async (request) => {
        request.body ??= {};
      },
      schema: {
        operationId: 'rotateApiKey',
        tags: ['api-keys'],
        summary: 'Replace a key with a new one of the same name, scopes and products; the old one works for the grace period',
        params: ApiKeyParams,
        body: RotateBody,
        response: { 201: CreatedApiKeySchema, ...problemResponses(400, 404, 409, 413, 415, 503) },
      },
    },
    async (request, reply) => {
      const now = clock();
      const graceSeconds = request.body?.grace_seconds ?? 0;
      const origin = originOf(request);
      const { row, key } = await db.transaction(async (tx) => {
        const old = await findApiKey(tx, request.params.id, true);
        if (!old) throw notFound('API key');
        if (old.revoked_at) throw new AppError(409, 'key_revoked', { detail: 'a revoked key cannot be rotated' });
        // A key has one successor: a second rotation during the grace would leave two live keys
        // that both claim to replace it, and the lineage of the old one lost. Checked before the
        // expiry, because the remedy is the same whether the grace is still running or not.
        if (old.rotated_to) {
          throw new AppError(409, 'key_rotated', {
            detail: 'this key was already rotated; rotate its successor (rotated_to) instead',
            extensions: { rotated_to: old.rotated_to },
          });
        }
        if (old.expires_at && old.expires_at <= now) throw new AppError(409, 'key_expired', { detail: 'an expired key cannot be rotated' });
        const tenant = (await holdTenant(tx, old.tenant_id))!;
        // The successor lives as long as its predecessor was meant to: rotating is not renewing.
        const spec = { tenant, name: old.name, scopes: old.scopes, products: old.products, expiresAt: old.expires_at };
        const issued = await issueKey(tx, spec, origin, now, {
          action: 'api_key.rotated',
          fields: { replaces: old.id, grace_seconds: String(graceSeconds) },
        });
        // Never later than the old key's own expiry.
        const graceEnd = new Date(now.getTime() + graceSeconds * 1000);
        await retireRotatedKey(tx, old.id, issued.row.id, old.expires_at && old.expires_at < graceEnd ? old.expires_at : graceEnd);
        return issued;
      });
      return reply.code(201).header('location', `/v1/api-keys/${row.id}`).send({ ...toApiKey(row), key });
    },
  );
};
