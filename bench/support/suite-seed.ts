// The data of `make bench`, written straight into the database in bulk (the API would take
// minutes for a million events): 1,000 tenants and 1,000,000 audit events by seed-audit.ts's
// generate_series statements, an entitlement per tenant, and 20,000 API keys generated here,
// stored as the service stores them (HMAC-SHA-256 under the pepper the service is started with)
// and inserted 2,000 at a time through unnest(). The plaintexts stay in this process for the
// load generator; the service only ever sees them in verify requests.
import type { Database } from '../../src/store/database.js';
import { displayParts, generateApiKey, hashApiKey } from '../../src/domain/api-key.js';
import { encodeCursor, encodePosition } from '../../src/http/cursor.js';
import { seedAuditLog, type SeededTenant } from './seed-audit.js';
import { QUESTION } from './verify-seed.js';

const KEY_SCOPES = ['documents:read', 'documents:write'];
const KEY_BATCH = 2_000;

export interface SuiteSeedOptions {
  tenants: number;
  keys: number;
  events: number;
  /** How deep the deep audit page starts, in events from the newest. */
  deepPage: number;
  /** Tenants in all, for the list scenarios: the audit seed's, and as many more plain ones. */
  directory: number;
  pepper: string;
  log: (line: string) => void;
}

export interface SuiteFixture {
  /** Ordered by slug; index 0 is the tenant holding 10% of the events. */
  tenants: SeededTenant[];
  /** Valid keys, each for the verify benchmark's QUESTION, spread over the tenants. */
  keys: string[];
  revokedKey: string;
  /** The cursor GET /v1/audit would hand out for the page starting deepPage events in. */
  deepCursor: string;
  /** The cursor GET /v1/tenants would hand out 90% of the way down the list. */
  deepTenantCursor: string;
  /** A slug prefix that names about ten tenants, and a sales owner with its share of them. */
  search: { prefix: string; salesOwner: string };
  seconds: { auditAndTenants: number; entitlementsAndKeys: number };
}

export async function seedSuite(db: Database, options: SuiteSeedOptions): Promise<SuiteFixture> {
  const audit = await seedAuditLog(db, { events: options.events, tenants: options.tenants, batch: 250_000, log: options.log });
  const started = performance.now();
  const tenantIds = audit.tenants.map((tenant) => tenant.id);

  // Every tenant may use the keys' product; every third one also has a running trial, so the
  // entitlement answers are not all alike.
  await db.query(
    `INSERT INTO tenant_products (tenant_id, product, status, source, granted_at)
       SELECT id, $2, 'active', 'operator', now() FROM unnest($1::uuid[]) AS t(id)`,
    [tenantIds, QUESTION.product],
  );
  await db.query(
    `INSERT INTO tenant_products (tenant_id, product, status, source, trial_started_at, trial_ends_at)
       SELECT id, 'risk', 'trial', 'trial', now(), now() + interval '14 days'
         FROM unnest($1::uuid[]) WITH ORDINALITY AS t(id, n) WHERE n % 3 = 0`,
    [tenantIds],
  );

  const keys = Array.from({ length: options.keys + 1 }, () => generateApiKey());
  for (let low = 0; low < keys.length; low += KEY_BATCH) {
    const batch = keys.slice(low, low + KEY_BATCH);
    const parts = batch.map(displayParts);
    await db.query(
      `INSERT INTO api_keys (tenant_id, name, key_hash, prefix, last4, scopes, products)
         SELECT tenant_id, 'bench key ' || n, decode(hash, 'hex'), prefix, last4, $5::text[], $6::text[]
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS k(tenant_id, hash, prefix, last4, n)`,
      [
        batch.map((_, i) => tenantIds[(low + i) % tenantIds.length]),
        batch.map((key) => hashApiKey(key, options.pepper).toString('hex')),
        parts.map((part) => part.prefix),
        parts.map((part) => part.last4),
        KEY_SCOPES,
        [QUESTION.product],
      ],
    );
  }
  const revokedKey = keys.pop()!;
  await db.query('UPDATE api_keys SET revoked_at = now() WHERE key_hash = $1', [hashApiKey(revokedKey, options.pepper)]);
  await db.exec('VACUUM (ANALYZE) api_keys');
  await db.exec('VACUUM (ANALYZE) tenant_products');

  // The position of the last event before the deep page, in the API's own order and cursor format.
  const [last] = await db.query<{ created: Date; id: string }>(
    'SELECT created, id FROM audit_log ORDER BY created DESC, id DESC OFFSET $1 LIMIT 1',
    [options.deepPage - 1],
  );
  if (!last) throw new Error(`the audit log has fewer than ${options.deepPage} events`);
  const deepCursor = encodePosition({ created: last.created.toISOString(), id: last.id });
  const entitlementsAndKeys = (performance.now() - started) / 1000;
  options.log(`  entitlements and ${keys.length + 1} API keys: ${entitlementsAndKeys.toFixed(1)} s`);

  // The operators' directory: plain tenants up to `directory`, spread over statuses, twenty
  // plans, two hundred sales owners and a few years of creation times, as GET /v1/tenants sees
  // a grown registry.
  const more = Math.max(0, options.directory - audit.tenants.length);
  await db.query(
    `INSERT INTO tenants (slug, name, status, kind, plan, sales_owner, erp_id, trial_ends_at, created_at)
     SELECT 'dir-' || g, 'Directory ' || g,
            (CASE WHEN g % 10 = 0 THEN 'trial' WHEN g % 17 = 0 THEN 'frozen' ELSE 'active' END)::tenant_status,
            'customer', 'plan-' || (g % 20), 'owner-' || (g % 200) || '@sales.example.com', 'ERP-' || g,
            CASE WHEN g % 10 = 0 THEN now() + (g % 14) * interval '1 day' END,
            now() - g * interval '17 minutes'
     FROM generate_series(1, $1::int) AS g`,
    [more],
  );
  await db.exec('VACUUM (ANALYZE) tenants');
  const [deepTenant] = await db.query<{ micros: string; id: string }>(
    `SELECT (extract(epoch FROM created_at) * 1000000)::bigint::text AS micros, id::text
     FROM tenants ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1`,
    [Math.floor(options.directory * 0.9)],
  );
  if (!deepTenant) throw new Error(`fewer than ${options.directory} tenants`);
  options.log(`  ${more} more tenants for the directory: ${((performance.now() - started) / 1000 - entitlementsAndKeys).toFixed(1)} s`);

  return {
    tenants: audit.tenants,
    keys,
    revokedKey,
    deepCursor,
    deepTenantCursor: encodeCursor([deepTenant.micros, deepTenant.id]),
    search: { prefix: 'DIR-424', salesOwner: 'owner-42@sales.example.com' },
    seconds: { auditAndTenants: audit.seconds, entitlementsAndKeys },
  };
}
