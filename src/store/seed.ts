// The embedded database starts with one tenant so the portal can be developed against it at
// once. Only the embedded driver seeds; a real database holds only what operators created.
import type { Database } from './database.js';

export const ACME_TENANT = {
  id: '00000000-0000-0000-0000-000000000001',
  slug: 'acme',
  name: 'Acme Corp',
} as const;

/** Inserts the acme tenant unless a tenant with its id or slug is already there. */
export async function seedEmbedded(db: Database): Promise<void> {
  await db.query(
    `INSERT INTO tenants (id, slug, name, status, kind, plan)
     VALUES ($1, $2, $3, 'active', 'customer', 'enterprise')
     ON CONFLICT DO NOTHING`,
    [ACME_TENANT.id, ACME_TENANT.slug, ACME_TENANT.name],
  );
}
