DROP INDEX IF EXISTS audit_log_tenant_target_type_idx;
DROP INDEX IF EXISTS audit_log_target_created_idx;
DROP INDEX IF EXISTS audit_log_actor_created_idx;
