-- Operators look for what one actor or one target did across all tenants, and the portal filters
-- a tenant's log by target type; without these, each of those was a scan of the whole log
-- (50-280 ms at a million events, see BENCHMARKS.md). Like the others, they end in the page order.
CREATE INDEX audit_log_actor_created_idx ON audit_log (actor_id, created DESC, id DESC);
CREATE INDEX audit_log_target_created_idx ON audit_log (target_id, created DESC, id DESC);
CREATE INDEX audit_log_tenant_target_type_idx ON audit_log (tenant_id, target_type, created DESC, id DESC);
