-- The registry's first schema: six tables and four enums. Every row a tenant owns goes away with
-- the tenant (ON DELETE CASCADE), except its audit history, which outlives it (SET NULL).

CREATE TYPE tenant_status AS ENUM (
  'demo',     -- shared, reset nightly, never billed
  'trial',    -- time-boxed evaluation, ends at trial_ends_at
  'active',   -- paying customer
  'frozen',   -- read-only after cancellation or non-payment; a grace window to export data
  'archived'  -- export window closed; only the audit log is kept
);
CREATE TYPE tenant_kind AS ENUM ('customer', 'demo');
CREATE TYPE idp_kind AS ENUM ('oidc', 'saml');
CREATE TYPE tenant_project_status AS ENUM ('active', 'archived');

-- One trigger function keeps updated_at honest for every table that has it, whoever writes.
CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END;
$$;

CREATE TABLE tenants (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  slug               text NOT NULL,
  name               text NOT NULL,
  status             tenant_status NOT NULL,
  kind               tenant_kind NOT NULL DEFAULT 'customer',
  plan               text,
  erp_id             text,
  stripe_id          text,
  trial_ends_at      timestamptz,
  contract_starts_on date,
  contract_ends_on   date,
  sales_owner        text,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  -- 3 to 40 characters, lowercase letters, digits and inner dashes: safe in URLs and hostnames.
  CONSTRAINT tenants_slug_format CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$'),
  CONSTRAINT tenants_name_not_blank CHECK (btrim(name) <> ''),
  CONSTRAINT tenants_contract_order CHECK (contract_ends_on IS NULL OR contract_starts_on IS NULL
                                           OR contract_ends_on >= contract_starts_on)
);
CREATE UNIQUE INDEX tenants_slug_key ON tenants (slug);
CREATE INDEX tenants_status_idx ON tenants (status);
CREATE TRIGGER tenants_updated_at BEFORE UPDATE ON tenants
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Sub-tenancy: a tenant's projects, each opted into some of the tenant's products.
CREATE TABLE tenant_projects (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  slug       text NOT NULL,
  name       text NOT NULL,
  status     tenant_project_status NOT NULL DEFAULT 'active',
  products   text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT tenant_projects_slug_format CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$'),
  CONSTRAINT tenant_projects_tenant_slug_key UNIQUE (tenant_id, slug)
);
CREATE TRIGGER tenant_projects_updated_at BEFORE UPDATE ON tenant_projects
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- The entitlement row: which products a tenant may use, with per-product configuration.
CREATE TABLE tenant_products (
  tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  product    text NOT NULL,
  config     jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, product)
);
CREATE INDEX tenant_products_product_idx ON tenant_products (product);
CREATE TRIGGER tenant_products_updated_at BEFORE UPDATE ON tenant_products
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- A tenant's own identity provider (federated into Keycloak); verified once a login succeeded.
CREATE TABLE tenant_idp_config (
  tenant_id  uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
  kind       idp_kind NOT NULL,
  metadata   jsonb NOT NULL DEFAULT '{}',
  verified   boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER tenant_idp_config_updated_at BEFORE UPDATE ON tenant_idp_config
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Only a hash of each key is stored; the plaintext is shown once, at creation.
CREATE TABLE api_keys (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  name       text NOT NULL,
  key_hash   bytea NOT NULL,
  prefix     text NOT NULL,
  scopes     text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  revoked_at timestamptz,
  CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash)
);
-- Listing a tenant's keys asks for the live ones; revoked keys pile up and stay out of the way.
CREATE INDEX api_keys_live_by_tenant_idx ON api_keys (tenant_id, created_at DESC)
  WHERE revoked_at IS NULL;

-- Retraced-shaped audit events. tenant_id survives as NULL when the tenant is deleted, so the
-- history of a deleted tenant can still be read by its other fields.
CREATE TABLE audit_log (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  tenant_id   uuid REFERENCES tenants (id) ON DELETE SET NULL,
  product     text,
  action      text NOT NULL,
  crud        char(1) NOT NULL CHECK (crud IN ('c', 'r', 'u', 'd')),
  actor_id    text,
  actor_name  text,
  target_id   text,
  target_type text,
  source_ip   inet,
  metadata    jsonb NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant_created_idx ON audit_log (tenant_id, created_at DESC);
CREATE INDEX audit_log_product_idx ON audit_log (product, created_at DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, created_at DESC);
