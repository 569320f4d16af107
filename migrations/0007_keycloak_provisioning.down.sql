ALTER TABLE tenants
  DROP COLUMN admin_name,
  DROP COLUMN admin_email,
  DROP COLUMN keycloak_error,
  DROP COLUMN keycloak_provisioning,
  DROP COLUMN keycloak_org_id;
DROP TYPE IF EXISTS keycloak_provisioning;
