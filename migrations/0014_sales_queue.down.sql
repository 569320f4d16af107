DROP INDEX IF EXISTS product_requests_tenant_status_created_idx;
DROP INDEX IF EXISTS product_requests_owner_status_created_idx;
ALTER TABLE product_requests
  DROP CONSTRAINT IF EXISTS product_requests_decline_reason,
  DROP COLUMN IF EXISTS decline_reason,
  DROP COLUMN IF EXISTS closed_by,
  DROP COLUMN IF EXISTS sales_owner;
