// Issuing, revoking, rotating and narrowing a tenant's API keys, with their audit events, inside
// the caller's transaction: the key routes today; archiving a tenant (every key revoked) next.
// The plaintext of an issued key is returned to the caller only; what is stored is its hash, and
// the audit log names a key by id and display prefix, never by secret or hash.
import { displayParts, generateApiKey, hashApiKey, wideningOf, type Widening } from '../domain/api-key.js';
import { isUsable } from '../domain/entitlements.js';
import { AppError, notFound, refuseIfArchived } from '../problems.js';
import { insertApiKey, lockApiKeyForUpdate, retireRotatedKey, revokeApiKey, updateApiKey, type ApiKeyRow } from '../store/api-keys.js';
import { listEntitlements } from '../store/entitlements.js';
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
  refuseIfArchived(spec.tenant);
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

/** What PATCH may change of a key; an absent field stays as it is. */
export interface KeyEdit {
  name?: string;
  scopes?: string[];
  products?: string[];
}

const EDITABLE = ['name', 'scopes', 'products'] as const;

/** What each refusal to widen tells the caller; nothing in it is secret. */
function widening({ field, added }: Widening, key: ApiKeyRow): AppError {
  let why: string;
  if (field === 'scopes') why = `the key does not have the scopes ${added.join(', ')}`;
  else if (added.length === 0) why = `an empty products list would lift the key's limit to ${key.products.join(', ')}`;
  else if (key.products.length > 0) why = `the key is limited to ${key.products.join(', ')}`;
  else why = `the tenant may not use ${added.join(', ')} now`;
  return new AppError('key_widening', {
    detail: `${why}; a key's scopes and products can only be narrowed: create a new key for more`,
    extensions: { field },
  });
}

const sameSet = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((item) => b.includes(item));

/**
 * Renames the key and narrows its scopes or products, never widening them (domain/api-key.ts
 * wideningOf). Records api_key.updated with each changed field's old and new value (lists
 * comma-joined); an edit that changes nothing records nothing. The next verify of the key sees
 * the change: the api_keys trigger invalidates its cache entry in this transaction.
 */
export async function updateKey(tx: Queryable, id: string, edit: KeyEdit, origin: Origin, now: Date): Promise<ApiKeyRow> {
  const key = await lockApiKeyForUpdate(tx, id);
  if (!key) throw notFound('API key');
  if (key.revoked_at) throw new AppError('key_revoked', { detail: 'a revoked key cannot be changed' });
  if (key.expires_at && key.expires_at <= now) throw new AppError('key_expired', { detail: 'an expired key cannot be changed' });
  const tenant = (await lockTenantForKeyShare(tx, key.tenant_id))!;
  // Only limiting a key without a limit asks what the tenant may use.
  const usable =
    edit.products?.length && key.products.length === 0
      ? (await listEntitlements(tx, key.tenant_id)).filter((entitlement) => isUsable(entitlement, now)).map((entitlement) => entitlement.product)
      : [];
  const refused = wideningOf(key, edit, usable);
  if (refused) throw widening(refused, key);

  const next = {
    name: edit.name ?? key.name,
    // A list with the same members in another order is no change.
    scopes: edit.scopes && !sameSet(edit.scopes, key.scopes) ? edit.scopes : key.scopes,
    products: edit.products && !sameSet(edit.products, key.products) ? edit.products : key.products,
  };
  const changed = EDITABLE.filter((field) => next[field] !== key[field]);
  if (changed.length === 0) return key;
  const updated = await updateApiKey(tx, key.id, next);
  const shown = (value: string | readonly string[]) => (typeof value === 'string' ? value : value.join(','));
  const fields: Record<string, string> = { changed: changed.join(',') };
  for (const field of changed) {
    fields[`${field}.old`] = shown(key[field]);
    fields[`${field}.new`] = shown(updated[field]);
  }
  await recordChange(tx, origin, { action: 'api_key.updated', crud: 'u', tenant, target: keyTarget(updated), fields }, now);
  return updated;
}
