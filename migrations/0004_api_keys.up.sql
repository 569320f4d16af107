-- API keys get what verification and their owners need, and every change that can alter a
-- verify answer is published, so each replica's verify cache forgets what changed within a second.

ALTER TABLE api_keys
  ADD COLUMN last4        text NOT NULL DEFAULT '',
  ADD COLUMN products     text[] NOT NULL DEFAULT '{}',
  ADD COLUMN last_used_at timestamptz,
  -- The key that replaced this one by rotation; this one works until its expires_at (the grace).
  ADD COLUMN rotated_to   uuid REFERENCES api_keys (id) ON DELETE SET NULL,
  ADD COLUMN created_by   text;

-- The invalidation log: one row per change that affects verification, written by the triggers
-- below in the changing transaction. NOTIFY wakes listening replicas at commit; a replica whose
-- listening connection dropped reads the rows it missed instead (its fallback poll).
CREATE TABLE cache_invalidations (
  seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- 'key:<sha256 hex of the stored hash>' or 'tenant:<tenant id>'
  scope      text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION publish_invalidation(scope text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  position bigint;
BEGIN
  INSERT INTO cache_invalidations (scope) VALUES (scope) RETURNING seq INTO position;
  PERFORM pg_notify('registry_cache', position::text || ' ' || scope);
END;
$$;

CREATE FUNCTION api_keys_invalidate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM publish_invalidation('key:' || encode(OLD.key_hash, 'hex'));
    RETURN OLD;
  END IF;
  -- last_used_at is bookkeeping; it changes no verify answer and is written often.
  IF TG_OP = 'UPDATE' AND NEW.revoked_at IS NOT DISTINCT FROM OLD.revoked_at
     AND NEW.expires_at IS NOT DISTINCT FROM OLD.expires_at AND NEW.scopes = OLD.scopes
     AND NEW.products = OLD.products AND NEW.tenant_id = OLD.tenant_id AND NEW.key_hash = OLD.key_hash THEN
    RETURN NEW;
  END IF;
  PERFORM publish_invalidation('key:' || encode(NEW.key_hash, 'hex'));
  RETURN NEW;
END;
$$;
CREATE TRIGGER api_keys_invalidate AFTER INSERT OR UPDATE OR DELETE ON api_keys
  FOR EACH ROW EXECUTE FUNCTION api_keys_invalidate();

CREATE FUNCTION tenant_rows_invalidate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  tenant uuid;
BEGIN
  IF TG_TABLE_NAME = 'tenants' THEN
    tenant := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
  ELSE
    tenant := CASE WHEN TG_OP = 'DELETE' THEN OLD.tenant_id ELSE NEW.tenant_id END;
  END IF;
  PERFORM publish_invalidation('tenant:' || tenant::text);
  RETURN NULL;
END;
$$;
-- A tenant's status, slug or plan and its entitlements are part of every verify answer.
CREATE TRIGGER tenants_invalidate AFTER UPDATE OR DELETE ON tenants
  FOR EACH ROW EXECUTE FUNCTION tenant_rows_invalidate();
CREATE TRIGGER tenant_products_invalidate AFTER INSERT OR UPDATE OR DELETE ON tenant_products
  FOR EACH ROW EXECUTE FUNCTION tenant_rows_invalidate();

-- Verification looks keys up by hash (the unique constraint's index); owners list live keys.
CREATE INDEX api_keys_tenant_created_idx ON api_keys (tenant_id, created_at DESC, id DESC);
