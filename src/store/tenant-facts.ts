// One query for everything the hot read paths need about a tenant: its row and its
// entitlements, whole (by-slug lookups, Keycloak claims, the entitlements list).
import type { Queryable } from './database.js';
import type { EntitlementRow } from './entitlements.js';
import { TENANT_COLUMNS, type TenantRow } from './tenants.js';

export interface TenantFacts {
  tenant: TenantRow;
  /** Ordered by product, as GET /v1/entitlements lists them. */
  entitlements: EntitlementRow[];
}

type JsonEntitlement = Omit<EntitlementRow, TimeColumn | 'created_at' | 'updated_at'> &
  Record<TimeColumn | 'created_at' | 'updated_at', string | null>;
type TimeColumn = 'granted_at' | 'revoked_at' | 'trial_started_at' | 'trial_ends_at';

// json_agg turns timestamps into text; these come back as Dates, as the row queries give them.
const toDate = (text: string | null) => (text === null ? null : new Date(text));

export async function loadTenantFacts(db: Queryable, by: { id: string } | { slug: string }): Promise<TenantFacts | undefined> {
  const [row] = await db.query<TenantRow & { entitlements: JsonEntitlement[] }>(
    `SELECT ${TENANT_COLUMNS},
            COALESCE((SELECT json_agg(json_build_object(
                               'tenant_id', p.tenant_id, 'product', p.product, 'status', p.status, 'source', p.source,
                               'config', p.config, 'granted_at', p.granted_at, 'revoked_at', p.revoked_at,
                               'trial_started_at', p.trial_started_at, 'trial_ends_at', p.trial_ends_at,
                               'created_at', p.created_at, 'updated_at', p.updated_at) ORDER BY p.product)
                      FROM tenant_products p WHERE p.tenant_id = tenants.id), '[]'::json) AS entitlements
     FROM tenants WHERE ${'id' in by ? 'id = $1' : 'slug = $1'}`,
    ['id' in by ? by.id : by.slug],
  );
  if (!row) return undefined;
  const { entitlements, ...tenant } = row;
  return {
    tenant,
    entitlements: entitlements.map((e) => ({
      ...e,
      granted_at: toDate(e.granted_at),
      revoked_at: toDate(e.revoked_at),
      trial_started_at: toDate(e.trial_started_at),
      trial_ends_at: toDate(e.trial_ends_at),
      created_at: toDate(e.created_at)!,
      updated_at: toDate(e.updated_at)!,
    })),
  };
}
