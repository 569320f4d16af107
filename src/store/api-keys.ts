// Queries on api_keys. The key itself is never stored or passed here: only its hash.
import type { EntitlementFacts } from '../domain/entitlements.js';
import type { VerifiableKey } from '../domain/key-verdict.js';
import type { TenantStatus } from '../domain/lifecycle.js';
import type { Queryable } from './database.js';

export interface ApiKeyRow {
  id: string;
  tenant_id: string;
  name: string;
  prefix: string;
  last4: string;
  scopes: string[];
  products: string[];
  created_at: Date;
  expires_at: Date | null;
  last_used_at: Date | null;
  revoked_at: Date | null;
  rotated_to: string | null;
}

const COLUMNS = `id, tenant_id, name, prefix, last4, scopes, products, created_at, expires_at, last_used_at,
  revoked_at, rotated_to`;

export interface NewApiKey {
  tenantId: string;
  name: string;
  hash: Buffer;
  prefix: string;
  last4: string;
  scopes: string[];
  products: string[];
  expiresAt: Date | null;
  createdBy: string | null;
  now: Date;
}

export async function insertApiKey(tx: Queryable, key: NewApiKey): Promise<ApiKeyRow> {
  const [row] = await tx.query<ApiKeyRow>(
    `INSERT INTO api_keys (tenant_id, name, key_hash, prefix, last4, scopes, products, expires_at, created_by, created_at)
     VALUES ($1, $2, $3, $4, $5, $6::text[], $7::text[], $8, $9, $10) RETURNING ${COLUMNS}`,
    [key.tenantId, key.name, key.hash, key.prefix, key.last4, key.scopes, key.products, key.expiresAt, key.createdBy, key.now],
  );
  return row!;
}

export async function listApiKeys(db: Queryable, tenantId: string, includeRevoked: boolean): Promise<ApiKeyRow[]> {
  return db.query<ApiKeyRow>(
    `SELECT ${COLUMNS} FROM api_keys WHERE tenant_id = $1 ${includeRevoked ? '' : 'AND revoked_at IS NULL'}
     ORDER BY created_at DESC, id DESC`,
    [tenantId],
  );
}

/**
 * Locks the tenant's keys that are not revoked (FOR UPDATE, in id order), so no revoke or rotation
 * of one of them runs until the transaction ends.
 */
export async function lockLiveKeysOfTenant(tx: Queryable, tenantId: string): Promise<void> {
  await tx.query('SELECT id FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL ORDER BY id FOR UPDATE', [tenantId]);
}

export async function findApiKey(db: Queryable, id: string): Promise<ApiKeyRow | undefined> {
  const [row] = await db.query<ApiKeyRow>(`SELECT ${COLUMNS} FROM api_keys WHERE id = $1`, [id]);
  return row;
}

/** The key, its row locked (FOR UPDATE) until the transaction ends: one revoke or rotation at a time. */
export async function lockApiKeyForUpdate(tx: Queryable, id: string): Promise<ApiKeyRow | undefined> {
  const [row] = await tx.query<ApiKeyRow>(`SELECT ${COLUMNS} FROM api_keys WHERE id = $1 FOR UPDATE`, [id]);
  return row;
}

export async function revokeApiKey(tx: Queryable, id: string, now: Date): Promise<void> {
  await tx.query('UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL', [id, now]);
}

/** Writes the key's name, scopes and products; the caller holds its lock and decided they may change. */
export async function updateApiKey(
  tx: Queryable,
  id: string,
  fields: { name: string; scopes: readonly string[]; products: readonly string[] },
): Promise<ApiKeyRow> {
  const [row] = await tx.query<ApiKeyRow>(
    `UPDATE api_keys SET name = $2, scopes = $3::text[], products = $4::text[] WHERE id = $1 RETURNING ${COLUMNS}`,
    [id, fields.name, fields.scopes, fields.products],
  );
  return row!;
}

/** Ends the old key of a rotation at `expiresAt` and points it at its successor. */
export async function retireRotatedKey(tx: Queryable, id: string, successor: string, expiresAt: Date): Promise<void> {
  await tx.query('UPDATE api_keys SET expires_at = $3, rotated_to = $2 WHERE id = $1', [id, successor, expiresAt]);
}

/** Everything a verify answer depends on (see src/domain/key-verdict.ts). */
export type KeyFacts = VerifiableKey;

/** One query for a verify cache miss; undefined when no key has this hash. */
export async function loadKeyFacts(db: Queryable, hash: Buffer): Promise<KeyFacts | undefined> {
  const [row] = await db.query<{
    id: string;
    tenant_id: string;
    scopes: string[];
    products: string[];
    expires_at: Date | null;
    revoked_at: Date | null;
    slug: string;
    status: TenantStatus;
    trial_ends_at: Date | null;
    plan: string | null;
    entitlements: Array<{ product: string; status: EntitlementFacts['status']; trial_ends_at: string | null }>;
  }>(
    `SELECT k.id, k.tenant_id, k.scopes, k.products, k.expires_at, k.revoked_at, t.slug, t.status, t.trial_ends_at, t.plan,
            COALESCE((SELECT json_agg(json_build_object('product', p.product, 'status', p.status,
                                                         'trial_ends_at', p.trial_ends_at))
                      FROM tenant_products p WHERE p.tenant_id = k.tenant_id), '[]'::json) AS entitlements
     FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
     WHERE k.key_hash = $1`,
    [hash],
  );
  if (!row) return undefined;
  return {
    id: row.id,
    tenantId: row.tenant_id,
    scopes: row.scopes,
    products: row.products,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    tenant: { slug: row.slug, status: row.status, trial_ends_at: row.trial_ends_at, plan: row.plan },
    entitlements: row.entitlements.map((e) => ({
      product: e.product,
      status: e.status,
      trial_ends_at: e.trial_ends_at === null ? null : new Date(e.trial_ends_at),
    })),
  };
}

/** Writes last-use times in one statement; a time never moves backwards. */
export async function recordKeyUse(db: Queryable, uses: Array<{ id: string; at: Date }>): Promise<void> {
  if (uses.length === 0) return;
  await db.query(
    `UPDATE api_keys SET last_used_at = u.at
     FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at)
     WHERE api_keys.id = u.id AND (api_keys.last_used_at IS NULL OR api_keys.last_used_at < u.at)`,
    [uses.map((u) => u.id), uses.map((u) => u.at)],
  );
}

/** One page of the tenant's keys, revoked ones included, newest first (the tenant export walks them all). */
export async function listApiKeysPage(
  db: Queryable,
  tenantId: string,
  after: { createdAt: Date; id: string } | null,
  limit: number,
): Promise<ApiKeyRow[]> {
  return db.query<ApiKeyRow>(
    `SELECT ${COLUMNS} FROM api_keys WHERE tenant_id = $1 ${after ? 'AND (created_at, id) < ($2, $3)' : ''}
     ORDER BY created_at DESC, id DESC LIMIT ${Number(limit)}`,
    after ? [tenantId, after.createdAt, after.id] : [tenantId],
  );
}
