DROP INDEX IF EXISTS api_keys_tenant_created_idx;
DROP TRIGGER IF EXISTS tenant_products_invalidate ON tenant_products;
DROP TRIGGER IF EXISTS tenants_invalidate ON tenants;
DROP TRIGGER IF EXISTS api_keys_invalidate ON api_keys;
DROP FUNCTION IF EXISTS tenant_rows_invalidate();
DROP FUNCTION IF EXISTS api_keys_invalidate();
DROP FUNCTION IF EXISTS publish_invalidation(text);
DROP TABLE IF EXISTS cache_invalidations;
ALTER TABLE api_keys
  DROP COLUMN created_by,
  DROP COLUMN rotated_to,
  DROP COLUMN last_used_at,
  DROP COLUMN products,
  DROP COLUMN last4;
