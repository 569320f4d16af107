// Editing a tenant's descriptive fields (PATCH /v1/tenants/{id}) with its tenant.updated event,
// inside the caller's transaction. The lifecycle fields (status, trial end) change only through
// services/tenant-lifecycle.ts; the slug never changes.
import { AppError, invalidBody } from '../problems.js';
import type { Queryable } from '../store/database.js';
import { EDITABLE_TENANT_FIELDS, updateTenantFields, type TenantEdit, type TenantRow } from '../store/tenants.js';
import { recordChange, type Origin } from './audit-trail.js';

/**
 * Applies the edit to the tenant, whose row the caller has locked, and records every field that
 * changed with its old and new value. An edit that changes nothing writes nothing: no event, no
 * new version.
 */
export async function editTenant(tx: Queryable, tenant: TenantRow, requested: TenantEdit, origin: Origin, now: Date): Promise<TenantRow> {
  if (tenant.status === 'archived') {
    throw new AppError('tenant_inactive', { detail: 'an archived tenant cannot be edited', extensions: { current_status: tenant.status } });
  }
  const edit: TenantEdit = {};
  for (const field of EDITABLE_TENANT_FIELDS) {
    const value = requested[field];
    if (value === undefined) continue;
    const next = field === 'name' ? value!.trim() : value;
    if (next !== tenant[field]) edit[field] = next;
  }
  const starts = edit.contract_starts_on !== undefined ? edit.contract_starts_on : tenant.contract_starts_on;
  const ends = edit.contract_ends_on !== undefined ? edit.contract_ends_on : tenant.contract_ends_on;
  // 'YYYY-MM-DD' strings order as their dates do.
  if (starts !== null && ends !== null && ends < starts) {
    throw invalidBody(
      edit.contract_ends_on !== undefined ? '/contract_ends_on' : '/contract_starts_on',
      `the contract would end (${ends}) before it starts (${starts})`,
    );
  }
  const changed = EDITABLE_TENANT_FIELDS.filter((field) => edit[field] !== undefined);
  if (changed.length === 0) return tenant;
  const updated = await updateTenantFields(tx, tenant.id, edit);
  // Audit fields are strings: a side that was empty (null) is left out.
  const fields: Record<string, string> = { changed: changed.join(',') };
  for (const field of changed) {
    const [before, after] = [tenant[field], updated[field]];
    if (before !== null) fields[`${field}.old`] = before;
    if (after !== null) fields[`${field}.new`] = after;
  }
  await recordChange(tx, origin, { action: 'tenant.updated', crud: 'u', tenant: updated, fields }, now);
  return updated;
}
