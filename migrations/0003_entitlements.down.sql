DROP TABLE IF EXISTS product_requests;
DROP TYPE IF EXISTS product_request_status;
DROP INDEX IF EXISTS tenant_products_trials_to_expire_idx;
ALTER TABLE tenant_products
  DROP CONSTRAINT IF EXISTS tenant_products_trial_has_end,
  DROP COLUMN status,
  DROP COLUMN source,
  DROP COLUMN granted_at,
  DROP COLUMN revoked_at,
  DROP COLUMN trial_started_at,
  DROP COLUMN trial_ends_at,
  DROP COLUMN trial_expiry_recorded_at;
DROP TYPE IF EXISTS entitlement_status;
