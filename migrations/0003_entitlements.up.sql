-- Entitlements get a lifecycle, and sales requests get a queue.
--   requested  a sales request is open and nothing is usable yet
--   trial      usable until trial_ends_at; read as "expired" from that moment (no job needed)
--   active     granted by an operator
--   revoked    taken away; the row stays so the trial history is kept
CREATE TYPE entitlement_status AS ENUM ('requested', 'trial', 'active', 'revoked');

ALTER TABLE tenant_products
  ADD COLUMN status             entitlement_status NOT NULL DEFAULT 'active',
  -- How the entitlement reached its status: operator, trial or sales_request.
  ADD COLUMN source             text NOT NULL DEFAULT 'operator',
  ADD COLUMN granted_at         timestamptz,
  ADD COLUMN revoked_at         timestamptz,
  -- Set when the self-serve trial starts and never cleared: one trial per tenant and product, ever.
  ADD COLUMN trial_started_at   timestamptz,
  ADD COLUMN trial_ends_at      timestamptz,
  -- Set in the transaction that writes the trial's entitlement.trial_expired event: exactly once.
  ADD COLUMN trial_expiry_recorded_at timestamptz,
  ADD CONSTRAINT tenant_products_trial_has_end CHECK (status <> 'trial' OR trial_ends_at IS NOT NULL);

-- Rows from before this migration were entitlements in use.
UPDATE tenant_products SET granted_at = created_at WHERE granted_at IS NULL;

-- The expiry job looks only at trials whose end has passed and whose event is not written yet.
CREATE INDEX tenant_products_trials_to_expire_idx ON tenant_products (trial_ends_at)
  WHERE status = 'trial' AND trial_expiry_recorded_at IS NULL;

CREATE TYPE product_request_status AS ENUM ('open', 'closed');

CREATE TABLE product_requests (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  product       text NOT NULL,
  message       text,
  status        product_request_status NOT NULL DEFAULT 'open',
  requested_by  text,
  created_at    timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
  closed_at     timestamptz,
  closed_reason text,
  CONSTRAINT product_requests_created_ms CHECK (created_at = date_trunc('milliseconds', created_at))
);
-- At most one open request per tenant and product: asking again while it is open is a no-op.
CREATE UNIQUE INDEX product_requests_open_key ON product_requests (tenant_id, product) WHERE status = 'open';
-- The sales queue: open requests, oldest first.
CREATE INDEX product_requests_status_created_idx ON product_requests (status, created_at, id);
