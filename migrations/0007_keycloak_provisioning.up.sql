-- What the registry knows of each tenant's Keycloak organization, and of provisioning it. The
-- admin's email and name stay so that an operator can re-run a failed provisioning.
CREATE TYPE keycloak_provisioning AS ENUM ('none', 'pending', 'done', 'failed');

ALTER TABLE tenants
  ADD COLUMN keycloak_org_id       text,
  ADD COLUMN keycloak_provisioning keycloak_provisioning NOT NULL DEFAULT 'none',
  -- The failure of the last attempt, e.g. 'unavailable at invite'; never a secret.
  ADD COLUMN keycloak_error        text,
  ADD COLUMN admin_email           text,
  ADD COLUMN admin_name            text;
