// One query for everything the hot read paths need about a tenant: its row and its
// entitlements (by-slug lookups, Keycloak claims).
import type { EntitlementFacts } from '../domain/entitlements.js';
import type { Queryable } from './database.js';
import { TENANT_COLUMNS, type TenantRow } from './tenants.js';

export interface TenantFacts {
  tenant: TenantRow;
  entitlements: EntitlementFacts[];
}

export async function loadTenantFacts(db: Queryable, by: { id: string } | { slug: string }): Promise<TenantFacts | undefined> {
  const [row] = await db.query<TenantRow & { entitlements: Array<{ product: string; status: EntitlementFacts['status']; trial_ends_at: string | null }> }>(
    `SELECT ${TENANT_COLUMNS},
            COALESCE((SELECT json_agg(json_build_object('product', p.product, 'status', p.status,
                                                         'trial_ends_at', p.trial_ends_at))
                      FROM tenant_products p WHERE p.tenant_id = tenants.id), '[]'::json) AS entitlements
     FROM tenants WHERE ${'id' in by ? 'id = $1' : 'slug = $1'}`,
    ['id' in by ? by.id : by.slug],
  );
  if (!row) return undefined;
  const { entitlements, ...tenant } = row;
  return {
    tenant,
    entitlements: entitlements.map((e) => ({
      product: e.product,
      status: e.status,
      trial_ends_at: e.trial_ends_at === null ? null : new Date(e.trial_ends_at),
    })),
  };
}
