// Provisioning a tenant in Keycloak, around the adapter: run it within the budget, then record
// the outcome on the tenant and in the audit log in one transaction. It never throws for a
// Keycloak failure: the tenant exists either way, and the failure is what the operator retries.
// Tenant creation and the retry route call it; Keycloak synchronisation will too.
import { KeycloakError, type KeycloakAdapter, type ProvisionResult } from '../keycloak/adapter.js';
import type { Database } from '../store/database.js';
import { recordProvisioning, recordTenantAdmin, type TenantRow } from '../store/tenants.js';
import { recordChange, type Origin } from './audit-trail.js';

export interface ProvisionOutcome {
  tenant: TenantRow;
  result: ProvisionResult | null;
  error: KeycloakError | null;
}

export interface ProvisionDeps {
  db: Database;
  keycloak: KeycloakAdapter;
  budgetMs: number;
  clock: () => Date;
  onUnexpected: (error: unknown) => void;
}

export async function provisionTenant(
  deps: ProvisionDeps,
  tenant: TenantRow,
  admin: { email: string; name: string | null },
  origin: Origin,
): Promise<ProvisionOutcome> {
  let result: ProvisionResult | null = null;
  let error: KeycloakError | null = null;
  try {
    result = await deps.keycloak.provision(
      {
        tenantId: tenant.id,
        slug: tenant.slug,
        name: tenant.name,
        adminEmail: admin.email,
        adminName: admin.name,
        knownOrganizationId: tenant.keycloak_org_id,
      },
      AbortSignal.timeout(deps.budgetMs),
    );
  } catch (caught) {
    if (caught instanceof KeycloakError) {
      error = caught;
    } else {
      // A bug, not Keycloak: still recorded as a failure the operator can retry, and logged.
      deps.onUnexpected(caught);
      error = new KeycloakError('unavailable', 'organization', 'provisioning failed unexpectedly');
    }
  }
  const now = deps.clock();
  const updated = await deps.db.transaction(async (tx) => {
    const row = await recordProvisioning(tx, tenant.id, {
      status: result ? 'done' : 'failed',
      organizationId: result?.organizationId ?? null,
      error: error ? `${error.type} at ${error.step}` : null,
      adminEmail: admin.email,
      adminName: admin.name,
    });
    // The invited user administers this tenant, whatever else it belongs to (http/access.ts).
    if (result) await recordTenantAdmin(tx, row.id, result.userId);
    await recordChange(
      tx,
      origin,
      result
        ? {
            action: 'keycloak.invite_sent',
            crud: 'u',
            tenant: row,
            target: { id: result.userId, type: 'keycloak_user', name: admin.email },
            fields: { organization_id: result.organizationId, user_id: result.userId },
          }
        : {
            action: 'keycloak.provision_failed',
            crud: 'u',
            tenant: row,
            target: { id: row.id, type: 'tenant', name: row.slug },
            fields: {
              error_type: error!.type,
              step: error!.step,
              ...(error!.status !== null ? { status: String(error!.status) } : {}),
              reason: error!.message.slice(0, 200),
            },
          },
      now,
    );
    return row;
  });
  return { tenant: updated, result, error };
}
