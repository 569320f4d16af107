// The embedded database starts with one tenant so the portal can be developed against it at
// once: acme, active, with one product it pays for and one in its trial, so products, claims and
// the catalog all have something to show. Only the embedded driver seeds; a real database holds
// only what operators created.
import type { Database } from './database.js';

export const ACME_TENANT = {
  id: '00000000-0000-0000-0000-000000000001',
  slug: 'acme',
  name: 'Acme Corp',
} as const;

/** What acme may use from the start: one product granted, one in a trial of the catalog's length. */
export const ACME_ENTITLEMENTS = { active: 'compliance', trial: { product: 'risk', days: 14 } } as const;

/**
 * Inserts acme and its entitlements unless a tenant with its id or slug is already there: a
 * kept database (EMBEDDED_DB_DIR) is seeded once, and what was changed in it since stays changed.
 */
export async function seedEmbedded(db: Database): Promise<void> {
  await db.query(
    `WITH acme AS (
       INSERT INTO tenants (id, slug, name, status, kind, plan)
       VALUES ($1, $2, $3, 'active', 'customer', 'enterprise')
       ON CONFLICT DO NOTHING
       RETURNING id
     )
     INSERT INTO tenant_products (tenant_id, product, status, source, granted_at, trial_started_at, trial_ends_at)
     SELECT acme.id, $4::text, 'active'::entitlement_status, 'operator', now(), NULL::timestamptz, NULL::timestamptz FROM acme
     UNION ALL
     SELECT acme.id, $5::text, 'trial'::entitlement_status, 'trial', NULL, now(), now() + make_interval(days => $6::int) FROM acme`,
    [ACME_TENANT.id, ACME_TENANT.slug, ACME_TENANT.name, ACME_ENTITLEMENTS.active, ACME_ENTITLEMENTS.trial.product, ACME_ENTITLEMENTS.trial.days],
  );
}
