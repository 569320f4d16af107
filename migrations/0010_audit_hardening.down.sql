DROP TRIGGER IF EXISTS audit_chains_no_truncate ON audit_chains;
DROP TRIGGER IF EXISTS audit_chains_guard ON audit_chains;
DROP FUNCTION IF EXISTS audit_chains_guard();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
DROP FUNCTION IF EXISTS audit_refuse_truncate();
DROP TRIGGER IF EXISTS audit_log_guard ON audit_log;
DROP FUNCTION IF EXISTS audit_log_guard();
ALTER TABLE audit_log
  DROP CONSTRAINT IF EXISTS audit_log_canonical_version,
  DROP COLUMN IF EXISTS size_bytes,
  DROP COLUMN IF EXISTS canonical_version,
  DROP COLUMN IF EXISTS publisher_client,
  DROP COLUMN IF EXISTS publisher_sub;
