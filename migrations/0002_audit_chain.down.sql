-- Back to the 0001 shape of audit_log. Chain columns, and the fields 0001 had no room for, go.
DROP INDEX IF EXISTS audit_log_created_idx;
DROP INDEX IF EXISTS audit_log_tenant_created_idx;
DROP INDEX IF EXISTS audit_log_tenant_action_idx;
DROP INDEX IF EXISTS audit_log_tenant_actor_idx;
DROP INDEX IF EXISTS audit_log_tenant_target_idx;
DROP INDEX IF EXISTS audit_log_product_created_idx;
DROP INDEX IF EXISTS audit_log_external_id_key;
DROP TABLE IF EXISTS audit_chains;

ALTER TABLE audit_log DROP CONSTRAINT IF EXISTS audit_log_chain_position_key;
ALTER TABLE audit_log DROP CONSTRAINT IF EXISTS audit_log_created_ms;
ALTER TABLE audit_log DROP CONSTRAINT IF EXISTS audit_log_received_ms;
ALTER TABLE audit_log ALTER COLUMN created SET DEFAULT now();
UPDATE audit_log SET metadata = '{}' WHERE metadata IS NULL;
ALTER TABLE audit_log
  ALTER COLUMN metadata SET DEFAULT '{}',
  ALTER COLUMN metadata SET NOT NULL,
  ALTER COLUMN source_ip TYPE inet USING NULLIF(source_ip, '')::inet,
  DROP COLUMN chain_key,
  DROP COLUMN chain_seq,
  DROP COLUMN prev_hash,
  DROP COLUMN hash,
  DROP COLUMN received,
  DROP COLUMN group_id,
  DROP COLUMN group_name,
  DROP COLUMN actor_href,
  DROP COLUMN actor_fields,
  DROP COLUMN target_name,
  DROP COLUMN target_href,
  DROP COLUMN target_fields,
  DROP COLUMN description,
  DROP COLUMN is_failure,
  DROP COLUMN is_anonymous,
  DROP COLUMN fields,
  DROP COLUMN component,
  DROP COLUMN version,
  DROP COLUMN external_id;
ALTER TABLE audit_log RENAME COLUMN created TO created_at;
ALTER TABLE audit_log ALTER COLUMN action TYPE text COLLATE "default";

CREATE INDEX audit_log_tenant_created_idx ON audit_log (tenant_id, created_at DESC);
CREATE INDEX audit_log_product_idx ON audit_log (product, created_at DESC);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, created_at DESC);
