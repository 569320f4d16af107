-- What operators need to run the tenant lifecycle: finding tenants, editing them safely, and
-- trials that end on their own.

-- A counter every update of the row bumps: the ETag of a tenant, so an edit made from a stale
-- read is refused (If-Match) instead of silently undoing someone else's.
ALTER TABLE tenants ADD COLUMN version bigint NOT NULL DEFAULT 1;
CREATE FUNCTION bump_tenant_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.version := OLD.version + 1;
  RETURN NEW;
END;
$$;
CREATE TRIGGER tenants_version BEFORE UPDATE ON tenants
  FOR EACH ROW EXECUTE FUNCTION bump_tenant_version();

-- GET /v1/tenants lists newest first, by (created_at, id); each filter has an index that yields
-- its rows in that order, so a page costs the same at any depth of the cursor.
CREATE INDEX tenants_created_idx ON tenants (created_at DESC, id DESC);
DROP INDEX tenants_status_idx;
CREATE INDEX tenants_status_created_idx ON tenants (status, created_at DESC, id DESC);
CREATE INDEX tenants_kind_created_idx ON tenants (kind, created_at DESC, id DESC);
CREATE INDEX tenants_plan_created_idx ON tenants (plan, created_at DESC, id DESC) WHERE plan IS NOT NULL;
CREATE INDEX tenants_sales_owner_created_idx ON tenants (sales_owner, created_at DESC, id DESC) WHERE sales_owner IS NOT NULL;
CREATE INDEX tenants_erp_id_idx ON tenants (erp_id) WHERE erp_id IS NOT NULL;
-- q: a prefix of the slug or of the name, whatever the case. text_pattern_ops lets LIKE 'abc%'
-- use the index under any collation.
CREATE INDEX tenants_slug_prefix_idx ON tenants (slug text_pattern_ops);
CREATE INDEX tenants_name_prefix_idx ON tenants (lower(name) text_pattern_ops);
-- Running trials by their end: the trial-end job, the trial_ends_before filter and the
-- transitions preview.
CREATE INDEX tenants_trial_ends_idx ON tenants (trial_ends_at) WHERE status = 'trial';
