-- The audit log becomes append-only in the database and records who published each event.
--
-- Until now any writer of the database could edit history and re-hash it cheaply: null every
-- hash and raise a chain's legacy_rows, or move a row out of its tenant by nulling tenant_id,
-- and /v1/audit/verify still said ok. From here the database itself refuses every UPDATE,
-- DELETE and TRUNCATE of audit_log, with one exception: the documented tenant deletion, whose
-- foreign key sets tenant_id to NULL on the rows of a tenant that no longer exists. The chain
-- heads may only move forward, and how many legacy rows a chain has is fixed for good.

ALTER TABLE audit_log
  -- The authenticated caller of POST /v1/audit (token subject and client); NULL on the events
  -- the registry writes about its own changes.
  ADD COLUMN publisher_sub     text,
  ADD COLUMN publisher_client  text,
  -- Which canonical form the hash covers: 1 (before publishers were recorded) or 2.
  ADD COLUMN canonical_version smallint NOT NULL DEFAULT 1,
  -- The row's size as text, set by the database on insert: readers fetch batches by bytes, so
  -- a batch of large events holds no more memory than a batch of small ones.
  ADD COLUMN size_bytes        integer NOT NULL DEFAULT 0;

UPDATE audit_log SET size_bytes = octet_length(audit_log::text);

ALTER TABLE audit_log ADD CONSTRAINT audit_log_canonical_version CHECK (canonical_version IN (1, 2));

CREATE FUNCTION audit_log_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    NEW.size_bytes := octet_length(NEW::text);
    RETURN NEW;
  END IF;
  -- The tenant deletion path: ON DELETE SET NULL from tenants, and nothing else in the row.
  IF TG_OP = 'UPDATE' AND OLD.tenant_id IS NOT NULL AND NEW.tenant_id IS NULL
     AND to_jsonb(NEW) - 'tenant_id' = to_jsonb(OLD) - 'tenant_id'
     AND NOT EXISTS (SELECT 1 FROM tenants WHERE id = OLD.tenant_id) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'events are never changed or removed; a deleted tenant''s rows only lose their tenant_id';
END;
$$;
CREATE TRIGGER audit_log_guard BEFORE INSERT OR UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_guard();

CREATE FUNCTION audit_refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate();

CREATE FUNCTION audit_chains_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  -- A chain is born on its first append, never with legacy rows (those predate migration 0002).
  IF TG_OP = 'INSERT' AND NEW.legacy_rows = 0 THEN
    RETURN NEW;
  END IF;
  -- An append moves the head forward; nothing else about a chain ever changes.
  IF TG_OP = 'UPDATE' AND NEW.chain_key = OLD.chain_key AND NEW.legacy_rows = OLD.legacy_rows
     AND NEW.last_seq > OLD.last_seq THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit_chains only moves forward: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_chains_guard BEFORE INSERT OR UPDATE OR DELETE ON audit_chains
  FOR EACH ROW EXECUTE FUNCTION audit_chains_guard();
CREATE TRIGGER audit_chains_no_truncate BEFORE TRUNCATE ON audit_chains
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_truncate();
