// Queries on the tenants table. Each takes the Queryable it runs on, so a caller decides whether
// it runs alone or inside a transaction together with other writes (its audit event).
import { TRIAL_ENDS_IN, type TenantKind, type TenantStatus } from '../domain/lifecycle.js';
import type { ProvisioningState } from '../domain/provisioning.js';
import type { Queryable } from './database.js';

export interface TenantRow {
  id: string;
  slug: string;
  name: string;
  status: TenantStatus;
  kind: TenantKind;
  plan: string | null;
  trial_ends_at: Date | null;
  erp_id: string | null;
  stripe_id: string | null;
  sales_owner: string | null;
  keycloak_org_id: string | null;
  keycloak_provisioning: ProvisioningState;
  /** The last provisioning failure, as "<type> at <step>". */
  keycloak_error: string | null;
  admin_email: string | null;
  admin_name: string | null;
  /** Dates as 'YYYY-MM-DD'. */
  contract_starts_on: string | null;
  contract_ends_on: string | null;
  /** Bumped by every update of the row (migration 0013): the tenant's ETag. */
  version: number;
  created_at: Date;
  updated_at: Date;
}

export interface NewTenant {
  id?: string;
  slug: string;
  name: string;
  status: TenantStatus;
  kind: TenantKind;
  plan: string | null;
  trialEndsAt: Date | null;
  erpId: string | null;
  stripeId: string | null;
  salesOwner: string | null;
  /** The IT admin to invite through Keycloak; provisioning is then pending. */
  adminEmail?: string | null;
  adminName?: string | null;
}


export const TENANT_COLUMNS = `id, slug, name, status, kind, plan, trial_ends_at, erp_id, stripe_id, sales_owner,
  keycloak_org_id, keycloak_provisioning, keycloak_error, admin_email, admin_name, contract_starts_on, contract_ends_on,
  version, created_at, updated_at`;

// The trial-over rule of domain/lifecycle.ts (isTenantTrialOver) as SQL; `now` names the
// statement's parameter holding the current time.
/** The tenant's trial has ended: it reads as frozen. */
const trialOverSql = (now: string) => `(tenants.status = 'trial' AND tenants.trial_ends_at <= ${now})`;
/** The tenant's trial is still running. */
const trialRunningSql = (now: string) => `(tenants.status = 'trial' AND (tenants.trial_ends_at IS NULL OR tenants.trial_ends_at > ${now}))`;

export async function insertTenant(db: Queryable, tenant: NewTenant): Promise<TenantRow> {
  const [row] = await db.query<TenantRow>(
    `INSERT INTO tenants (id, slug, name, status, kind, plan, trial_ends_at, erp_id, stripe_id, sales_owner,
                          admin_email, admin_name, keycloak_provisioning)
     VALUES (COALESCE($1::uuid, gen_random_uuid()), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
             CASE WHEN $11::text IS NULL THEN 'none' ELSE 'pending' END::keycloak_provisioning)
     RETURNING ${TENANT_COLUMNS}`,
    [
      tenant.id ?? null,
      tenant.slug,
      tenant.name,
      tenant.status,
      tenant.kind,
      tenant.plan,
      tenant.trialEndsAt,
      tenant.erpId,
      tenant.stripeId,
      tenant.salesOwner,
      tenant.adminEmail ?? null,
      tenant.adminName ?? null,
    ],
  );
  return row!;
}

export async function findTenantById(db: Queryable, id: string): Promise<TenantRow | undefined> {
  const [row] = await db.query<TenantRow>(`SELECT ${TENANT_COLUMNS} FROM tenants WHERE id = $1`, [id]);
  return row;
}

// The functions that lock say which lock in their name: FOR UPDATE (no other writer of the row
// until the transaction ends: transitions serialize), FOR KEY SHARE (the row may change but not
// be deleted, nor its id: what an insert that references it needs).

/** Reads the tenant and keeps it from being deleted (not from being updated) until the transaction ends. */
export async function lockTenantForKeyShare(tx: Queryable, id: string): Promise<TenantRow | undefined> {
  const [row] = await tx.query<TenantRow>(`SELECT ${TENANT_COLUMNS} FROM tenants WHERE id = $1 FOR KEY SHARE`, [id]);
  return row;
}

/**
 * As lockTenantForKeyShare, but never waits: undefined when another transaction holds the row
 * (or it does not exist). For those that already hold rows a holder of the tenant may want next.
 */
export async function lockTenantForKeyShareIfFree(tx: Queryable, id: string): Promise<TenantRow | undefined> {
  const [row] = await tx.query<TenantRow>(`SELECT ${TENANT_COLUMNS} FROM tenants WHERE id = $1 FOR KEY SHARE SKIP LOCKED`, [id]);
  return row;
}

/** Whether the tenant exists; if so, it cannot be deleted until the transaction ends. */
export async function lockTenantIdForKeyShare(tx: Queryable, id: string): Promise<boolean> {
  const rows = await tx.query('SELECT 1 FROM tenants WHERE id = $1 FOR KEY SHARE', [id]);
  return rows.length > 0;
}

/** Reads the tenant and locks its row until the transaction ends, so two transitions serialize. */
export async function lockTenantForUpdate(tx: Queryable, id: string): Promise<TenantRow | undefined> {
  const [row] = await tx.query<TenantRow>(`SELECT ${TENANT_COLUMNS} FROM tenants WHERE id = $1 FOR UPDATE`, [id]);
  return row;
}

export async function updateTenantStatus(
  tx: Queryable,
  id: string,
  status: TenantStatus,
  trialEndsAt: Date | null,
): Promise<TenantRow> {
  const [row] = await tx.query<TenantRow>(
    `UPDATE tenants SET status = $2, trial_ends_at = $3 WHERE id = $1 RETURNING ${TENANT_COLUMNS}`,
    [id, status, trialEndsAt],
  );
  return row!;
}

/**
 * Tenants whose trial has ended by `now` and is not yet written down, oldest end first, each
 * locked (FOR UPDATE SKIP LOCKED): two replicas never take the same one.
 */
export async function lockEndedTrials(tx: Queryable, now: Date, limit: number): Promise<TenantRow[]> {
  return tx.query<TenantRow>(
    `SELECT ${TENANT_COLUMNS} FROM tenants WHERE ${trialOverSql('$1')}
     ORDER BY trial_ends_at LIMIT ${Number(limit)} FOR UPDATE SKIP LOCKED`,
    [now],
  );
}

/**
 * Trials that will be over by `before` and are not written down yet, soonest first: what
 * lockEndedTrials will take by then (the transitions preview).
 */
export async function listTrialsEndingBefore(db: Queryable, before: Date, limit: number): Promise<TenantRow[]> {
  return db.query<TenantRow>(
    `SELECT ${TENANT_COLUMNS} FROM tenants WHERE ${trialOverSql('$1')}
     ORDER BY trial_ends_at, id LIMIT ${Number(limit)}`,
    [before],
  );
}

/** The fields an operator may edit (PATCH /v1/tenants/{id}); the slug is not one of them. */
export const EDITABLE_TENANT_FIELDS = [
  'name',
  'plan',
  'erp_id',
  'stripe_id',
  'sales_owner',
  'contract_starts_on',
  'contract_ends_on',
] as const;
export type EditableTenantField = (typeof EDITABLE_TENANT_FIELDS)[number];
export type TenantEdit = Partial<Record<EditableTenantField, string | null>>;

/** Writes the given fields (and only those); the version trigger bumps the ETag. */
export async function updateTenantFields(tx: Queryable, id: string, edit: TenantEdit): Promise<TenantRow> {
  const fields = EDITABLE_TENANT_FIELDS.filter((field) => edit[field] !== undefined);
  const [row] = await tx.query<TenantRow>(
    `UPDATE tenants SET ${fields.map((field, i) => `${field} = $${i + 2}`).join(', ')}
     WHERE id = $1 RETURNING ${TENANT_COLUMNS}`,
    [id, ...fields.map((field) => edit[field])],
  );
  return row!;
}

/** What GET /v1/tenants can filter on; every filter is served by an index (migration 0013). */
export interface TenantFilters {
  /** As the tenant reads now: a trial that has ended counts as frozen, not as trial. */
  status?: TenantStatus;
  kind?: TenantKind;
  plan?: string;
  salesOwner?: string;
  erpId?: string;
  /** Running trials that end by then. */
  trialEndsBefore?: Date;
  createdAfter?: Date;
  createdBefore?: Date;
  /** A prefix of the slug or of the name, in any case. */
  q?: string;
}

/** A keyset position: created_at in microseconds since the epoch (exact, unlike a Date), and id. */
export interface TenantPosition {
  createdMicros: string;
  id: string;
}

const likePrefix = (text: string) => `${text.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/**
 * The statement of one page of the list, newest first. Exported so the plan test can EXPLAIN
 * exactly what the route runs.
 */
export function tenantListQuery(
  filters: TenantFilters,
  page: { after: TenantPosition | null; limit: number; now: Date },
): { text: string; params: unknown[] } {
  const params: unknown[] = [];
  const param = (value: unknown) => {
    params.push(value);
    return `$${params.length}`;
  };
  const where: string[] = [];
  if (filters.status === 'trial') where.push(trialRunningSql(param(page.now)));
  else if (filters.status === TRIAL_ENDS_IN) where.push(`(tenants.status = 'frozen' OR ${trialOverSql(param(page.now))})`);
  else if (filters.status !== undefined) where.push(`tenants.status = ${param(filters.status)}`);
  if (filters.kind !== undefined) where.push(`kind = ${param(filters.kind)}`);
  if (filters.plan !== undefined) where.push(`plan = ${param(filters.plan)}`);
  if (filters.salesOwner !== undefined) where.push(`sales_owner = ${param(filters.salesOwner)}`);
  if (filters.erpId !== undefined) where.push(`erp_id = ${param(filters.erpId)}`);
  if (filters.trialEndsBefore !== undefined) where.push(`(${trialRunningSql(param(page.now))} AND trial_ends_at <= ${param(filters.trialEndsBefore)})`);
  if (filters.createdAfter !== undefined) where.push(`created_at > ${param(filters.createdAfter)}`);
  if (filters.createdBefore !== undefined) where.push(`created_at < ${param(filters.createdBefore)}`);
  if (filters.q !== undefined) {
    const prefix = param(likePrefix(filters.q));
    where.push(`(slug LIKE ${prefix} OR lower(name) LIKE ${prefix})`);
  }
  if (page.after) {
    where.push(`(created_at, id) < ('epoch'::timestamptz + ${param(page.after.createdMicros)}::bigint * interval '1 microsecond', ${param(page.after.id)}::uuid)`);
  }
  return {
    text: `SELECT ${TENANT_COLUMNS}, (extract(epoch FROM created_at) * 1000000)::bigint::text AS created_micros
           FROM tenants ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
           ORDER BY created_at DESC, id DESC LIMIT ${Number(page.limit)}`,
    params,
  };
}

export async function listTenants(
  db: Queryable,
  filters: TenantFilters,
  page: { after: TenantPosition | null; limit: number; now: Date },
): Promise<Array<TenantRow & { created_micros: string }>> {
  const { text, params } = tenantListQuery(filters, page);
  return db.query<TenantRow & { created_micros: string }>(text, params);
}

/** Records the outcome of a Keycloak provisioning run (and the admin it was for). */
export async function recordProvisioning(
  tx: Queryable,
  id: string,
  outcome: {
    status: ProvisioningState;
    organizationId: string | null;
    error: string | null;
    adminEmail: string;
    adminName: string | null;
  },
): Promise<TenantRow> {
  const [row] = await tx.query<TenantRow>(
    `UPDATE tenants SET keycloak_provisioning = $2, keycloak_org_id = COALESCE($3, keycloak_org_id), keycloak_error = $4,
            admin_email = $5, admin_name = $6
     WHERE id = $1 RETURNING ${TENANT_COLUMNS}`,
    [id, outcome.status, outcome.organizationId, outcome.error, outcome.adminEmail, outcome.adminName],
  );
  return row!;
}

/** Records `subject` as an IT admin of the tenant; recording it again changes nothing. */
export async function recordTenantAdmin(tx: Queryable, tenantId: string, subject: string): Promise<void> {
  await tx.query(`INSERT INTO tenant_admins (tenant_id, subject) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [tenantId, subject]);
}

/** What a token's subject is to a tenant: its organization (to match the token's) and whether it administers it. */
export interface TenantStanding {
  organizationId: string | null;
  admin: boolean;
}

/** The standing of `subject` in the tenant; undefined when the tenant does not exist. */
export async function findTenantStanding(db: Queryable, tenantId: string, subject: string): Promise<TenantStanding | undefined> {
  const [row] = await db.query<{ keycloak_org_id: string | null; admin: boolean }>(
    `SELECT t.keycloak_org_id,
            EXISTS (SELECT 1 FROM tenant_admins a WHERE a.tenant_id = t.id AND a.subject = $2) AS admin
     FROM tenants t WHERE t.id = $1`,
    [tenantId, subject],
  );
  return row && { organizationId: row.keycloak_org_id, admin: row.admin };
}
