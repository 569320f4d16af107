-- Tenants whose Keycloak organization must be brought in step with the registry (name, enabled,
-- attributes). A change writes its row in the transaction that makes the change, so a committed
-- change is never forgotten; the sync job works the rows off and deletes each once Keycloak has
-- the state it was asked for. One row per tenant: a second change before the sync bumps
-- `version`, and the sync always sends the tenant's state as it is when it reads it.
CREATE TABLE keycloak_sync (
  tenant_id       uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
  -- 'change' after a change of the registry; 'reconcile' from the periodic check, which reports
  -- what it had to repair as drift.
  reason          text NOT NULL CHECK (reason IN ('change', 'reconcile')),
  requested_at    timestamptz NOT NULL,
  -- Bumped by every request: a sync deletes the row only if no request came after it read the
  -- tenant (timestamps could tie or run backwards across replicas; a counter cannot).
  version         bigint NOT NULL DEFAULT 1,
  -- Due when it is not in the future.
  next_attempt_at timestamptz NOT NULL,
  -- A replica working on the row holds it until then, with its token; a new request does not
  -- shorten that, so two replicas never sync one organization at once.
  leased_until    timestamptz,
  lease_token     uuid,
  attempts        integer NOT NULL DEFAULT 0,
  last_error      text
);
CREATE INDEX keycloak_sync_due_idx ON keycloak_sync (next_attempt_at);
