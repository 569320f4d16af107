// Queries on the tenants table. Each takes the Queryable it runs on, so a caller decides whether
// it runs alone or inside a transaction together with other writes (its audit event).
import type { TenantKind, TenantStatus } from '../domain/lifecycle.js';
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
  keycloak_org_id, keycloak_provisioning, keycloak_error, admin_email, admin_name, created_at, updated_at`;

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
