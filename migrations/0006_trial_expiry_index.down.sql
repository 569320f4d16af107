DROP INDEX tenant_products_trials_to_expire_idx;
CREATE INDEX tenant_products_trials_to_expire_idx ON tenant_products (trial_ends_at)
  WHERE status = 'trial' AND trial_expiry_recorded_at IS NULL;
