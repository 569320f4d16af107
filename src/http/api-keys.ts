// /v1/api-keys: tenants' keys for headless products. The plaintext key exists only in the answer
// to create and rotate; what is stored is its hash, what is listed is a prefix and the last 4.
// A key's name can change, and its scopes and products can shrink; nothing else about it can.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { findProduct, type Catalog } from '../domain/products.js';
import { invalidBody, notFound } from '../problems.js';
import { issueKey, revokeKey, rotateKey, updateKey } from '../services/api-keys.js';
import { findApiKey, listApiKeys, type ApiKeyRow } from '../store/api-keys.js';
import type { Database } from '../store/database.js';
import { findTenantById, lockTenantForKeyShare } from '../store/tenants.js';
import { tenantFrom, type TenantOf } from './access.js';
import { unknownProduct } from './entitlements.js';
import { originOf } from './origin.js';
import { RefTo } from './schemas/parts.js';
import {
  ApiKeyListQuery,
  ApiKeyParams,
  ApiKeySchema,
  CreateApiKeyBody,
  ApiKeyListSchema,
  CreatedApiKeySchema,
  RotateBody,
  UpdateApiKeyBody,
  type ApiKey,
} from './schemas/api-key.js';

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

export const apiKeyRoutes: FastifyPluginAsyncTypebox<ApiKeyRoutesOptions> = async (app, { db, catalog, pepper, clock }) => {
  // The tenant a key belongs to, for the access rules of routes that name only the key.
  const tenantOfKey: TenantOf = async (request) =>
    (await findApiKey(db, (request.params as { id: string }).id))?.tenant_id ?? null;
  const manageKeys = (tenant: TenantOf) => ({ allow: ['platform_admin', 'it_admin'] as const, tenant });

  app.post(
    '/v1/api-keys',
    {
      // A replay answers the key without its plaintext, which is never kept at rest.
      config: {
        access: manageKeys(tenantFrom.body('tenant_id')),
        idempotent: { withhold: ['key'] },
        answerHeaders: { 201: ['Location'] },
        problems: ['not_found', 'unknown_product', 'tenant_inactive'],
      },
      schema: {
        operationId: 'createApiKey',
        tags: ['api-keys'],
        summary: 'Create a key; its plaintext is in this answer only',
        body: CreateApiKeyBody,
        response: { 201: RefTo(CreatedApiKeySchema) },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const now = clock();
      for (const product of body.products ?? []) if (!findProduct(catalog, product)) throw unknownProduct(product);
      const expiresAt = body.expires_at ? new Date(body.expires_at) : null;
      if (expiresAt && expiresAt <= now) {
        throw invalidBody('/expires_at', 'must be in the future');
      }
      const origin = originOf(request);
      const { row, key } = await db.transaction(async (tx) => {
        const tenant = await lockTenantForKeyShare(tx, body.tenant_id);
        if (!tenant) throw notFound('tenant');
        const spec = { tenant, name: body.name.trim(), scopes: body.scopes ?? [], products: body.products ?? [], expiresAt };
        return issueKey(tx, spec, pepper, origin, now);
      });
      return reply.code(201).header('location', `/v1/api-keys/${row.id}`).send({ ...toApiKey(row), key });
    },
  );

  app.get(
    '/v1/api-keys',
    {
      config: { access: manageKeys(tenantFrom.query('tenant_id')), problems: ['not_found'] },
      schema: {
        operationId: 'listApiKeys',
        tags: ['api-keys'],
        summary: "A tenant's keys, newest first, without secrets; revoked ones with include_revoked",
        querystring: ApiKeyListQuery,
        response: {
          200: RefTo(ApiKeyListSchema),
        },
      },
    },
    async (request) => {
      const { tenant_id: tenantId, include_revoked: includeRevoked = false } = request.query;
      if (!(await findTenantById(db, tenantId))) throw notFound('tenant');
      return { items: (await listApiKeys(db, tenantId, includeRevoked)).map(toApiKey) };
    },
  );

  app.get(
    '/v1/api-keys/:id',
    {
      config: { access: manageKeys(tenantOfKey), problems: ['not_found'] },
      schema: {
        operationId: 'getApiKey',
        tags: ['api-keys'],
        summary: 'One key, without its secret',
        params: ApiKeyParams,
        response: { 200: RefTo(ApiKeySchema, { description: 'The key' }) },
      },
    },
    async (request) => {
      const key = await findApiKey(db, request.params.id);
      if (!key) throw notFound('API key');
      return toApiKey(key);
    },
  );

  app.patch(
    '/v1/api-keys/:id',
    {
      config: { access: manageKeys(tenantOfKey), problems: ['not_found', 'unknown_product', 'key_revoked', 'key_expired', 'key_widening'] },
      schema: {
        operationId: 'updateApiKey',
        tags: ['api-keys'],
        summary: 'Rename a key, or narrow its scopes and products; never widen them (a new key is for more)',
        params: ApiKeyParams,
        body: UpdateApiKeyBody,
        response: { 200: RefTo(ApiKeySchema, { description: 'The key as it is now' }) },
      },
    },
    async (request) => {
      const { name, scopes, products } = request.body;
      for (const product of products ?? []) if (!findProduct(catalog, product)) throw unknownProduct(product);
      const edit = { ...(name !== undefined ? { name: name.trim() } : {}), ...(scopes ? { scopes } : {}), ...(products ? { products } : {}) };
      const now = clock();
      const origin = originOf(request);
      return toApiKey(await db.transaction((tx) => updateKey(tx, request.params.id, edit, origin, now)));
    },
  );

  app.delete(
    '/v1/api-keys/:id',
    {
      config: { access: manageKeys(tenantOfKey), problems: ['not_found'] },
      schema: {
        operationId: 'revokeApiKey',
        tags: ['api-keys'],
        summary: 'Revoke a key at once, on every replica within a second; revoking again changes nothing',
        params: ApiKeyParams,
        response: { 204: Type.Null({ description: 'Revoked' }) },
      },
    },
    async (request, reply) => {
      const now = clock();
      await db.transaction((tx) => revokeKey(tx, request.params.id, originOf(request), now));
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/api-keys/:id/rotate',
    {
      // Every field is optional, and so is the body: a rotate sent without one means the defaults.
      config: {
        access: manageKeys(tenantOfKey),
        optionalBody: true,
        answerHeaders: { 201: ['Location'] },
        problems: ['not_found', 'key_revoked', 'key_rotated', 'key_expired', 'tenant_inactive'],
      },
      schema: {
        operationId: 'rotateApiKey',
        tags: ['api-keys'],
        summary: 'Replace a key with a new one of the same name, scopes and products; the old one works for the grace period',
        params: ApiKeyParams,
        body: RotateBody,
        response: { 201: RefTo(CreatedApiKeySchema) },
      },
    },
    async (request, reply) => {
      const now = clock();
      const graceSeconds = request.body?.grace_seconds ?? 0;
      const origin = originOf(request);
      const { row, key } = await db.transaction((tx) => rotateKey(tx, request.params.id, graceSeconds, pepper, origin, now));
      return reply.code(201).header('location', `/v1/api-keys/${row.id}`).send({ ...toApiKey(row), key });
    },
  );
};
