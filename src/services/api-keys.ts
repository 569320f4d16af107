// Issuing, revoking and rotating a tenant's API keys, with their audit events, inside the caller's
// transaction: the key routes today; archiving a tenant (every key revoked) next. The plaintext
// of an issued key is returned to the caller only; what is stored is its hash, and the audit log
// names a key by id and display prefix, never by secret or hash.
import { displayParts, generateApiKey, hashApiKey } from '../domain/api-key.js';
import { AppError, notFound } from '../problems.js';
import { insertApiKey, lockApiKeyForUpdate, retireRotatedKey, revokeApiKey, type ApiKeyRow } from '../store/api-keys.js';
import type { Queryable } from '../store/database.js';
import { lockTenantForKeyShare, type TenantRow } from '../store/tenants.js';
import { actorName, recordChange, type Origin } from './audit-trail.js';

export interface KeySpec {
  tenant: TenantRow;
  name: string;
  scopes: string[];
  products: string[];
  expiresAt: Date | null;
}

export interface IssuedKey {
  row: ApiKeyRow;
  /** The plaintext: in this answer only. */
  key: string;
}

const keyTarget = (key: ApiKeyRow) => ({ id: key.id, type: 'api_key', name: `${key.prefix}…${key.last4}` });

/** Makes a key, stores its hash and records `event` (api_key.created, api_key.rotated). */
export async function issueKey(
  tx: Queryable,
  spec: KeySpec,
  pepper: string | null,
  origin: Origin,
  now: Date,
  event: { action: string; fields?: Record<string, string> } = { action: 'api_key.created' },
): Promise<IssuedKey> {
  const key = generateApiKey();
  const row = await insertApiKey(tx, {
    tenantId: spec.tenant.id,
    name: spec.name,
    hash: hashApiKey(key, pepper),
    ...displayParts(key),
    scopes: spec.scopes,
    products: spec.products,
    expiresAt: spec.expiresAt,
    createdBy: actorName(origin),
    now,
  });
  await recordChange(
    tx,
    origin,
    { action: event.action, crud: 'c', tenant: spec.tenant, target: keyTarget(row), fields: { name: row.name, ...event.fields } },
    now,
  );
  return { row, key };
}

/** Revokes the key at once; revoking a revoked key changes nothing and records nothing. */
export async function revokeKey(tx: Queryable, id: string, origin: Origin, now: Date): Promise<void> {
  const key = await lockApiKeyForUpdate(tx, id);
  if (!key) throw notFound('API key');
  if (key.revoked_at) return;
  // The key row cascades with its tenant, so a locked key's tenant exists.
  const tenant = (await lockTenantForKeyShare(tx, key.tenant_id))!;
  await revokeApiKey(tx, key.id, now);
  await recordChange(tx, origin, { action: 'api_key.revoked', crud: 'd', tenant, target: keyTarget(key), fields: { name: key.name } }, now);
}

/**
 * Replaces the key with a new one of the same name, scopes, products and expiry; the old one
 * works `graceSeconds` longer (never past its own expiry) and points at its successor.
 */
export async function rotateKey(tx: Queryable, id: string, graceSeconds: number, pepper: string | null, origin: Origin, now: Date): Promise<IssuedKey> {
  const old = await lockApiKeyForUpdate(tx, id);
  if (!old) throw notFound('API key');
  if (old.revoked_at) throw new AppError('key_revoked', { detail: 'a revoked key cannot be rotated' });
  // A key has one successor: a second rotation during the grace would leave two live keys that
  // both claim to replace it, and the lineage of the old one lost. Checked before the expiry,
  // because the remedy is the same whether the grace is still running or not.
  if (old.rotated_to) {
    throw new AppError('key_rotated', {
      detail: 'this key was already rotated; rotate its successor (rotated_to) instead',
      extensions: { rotated_to: old.rotated_to },
    });
  }
  if (old.expires_at && old.expires_at <= now) throw new AppError('key_expired', { detail: 'an expired key cannot be rotated' });
  const tenant = (await lockTenantForKeyShare(tx, old.tenant_id))!;
  // The successor lives as long as its predecessor was meant to: rotating is not renewing.
  const spec = { tenant, name: old.name, scopes: old.scopes, products: old.products, expiresAt: old.expires_at };
  const issued = await issueKey(tx, spec, pepper, origin, now, {
    action: 'api_key.rotated',
    fields: { replaces: old.id, grace_seconds: String(graceSeconds) },
  });
  const graceEnd = new Date(now.getTime() + graceSeconds * 1000);
  await retireRotatedKey(tx, old.id, issued.row.id, old.expires_at && old.expires_at < graceEnd ? old.expires_at : graceEnd);
  return issued;
}
