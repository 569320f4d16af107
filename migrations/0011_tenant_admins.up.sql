-- The IT admins of each tenant, by the subject (Keycloak user id) of their tokens. Provisioning
-- records the admin it invites; a token proves membership of a tenant (its organization id, or
-- the legacy tenant_id claim), and this table says whether that member administers it. A realm
-- role cannot say it: one user may administer tenant B and be a plain member of tenant A.
CREATE TABLE tenant_admins (
  tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  subject    text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
  granted_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, subject)
);
