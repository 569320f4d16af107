-- A trial that ended is due its expiry event even if the entitlement moved on afterwards (a sales
-- request, a late grant); the job's index follows the trial, not the current status.
DROP INDEX tenant_products_trials_to_expire_idx;
CREATE INDEX tenant_products_trials_to_expire_idx ON tenant_products (trial_ends_at)
  WHERE trial_started_at IS NOT NULL AND trial_expiry_recorded_at IS NULL;
