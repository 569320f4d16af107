-- Tenants whose Keycloak organization must be brought in step with the registry (name, enabled,
-- attributes). A change writes its row in the transaction that makes the change, so a committed
-- change is never forgotten; the sync job works the rows off and deletes each once Keycloak has
-- the state it was asked for. One row per tenant: a second change before the sync only moves
-- requested_at, and the sync always sends the tenant's state as it is then.
CREATE TABLE keycloak_sync (
  tenant_id       uuid PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
  -- 'change' after a change of the registry; 'reconcile' from the periodic check, which reports
  -- what it had to repair as drift.
  reason          text NOT NULL CHECK (reason IN ('change', 'reconcile')),
  requested_at    timestamptz NOT NULL,
  -- Due when it is not in the future; a sync in progress holds it a while ahead (its lease).
  next_attempt_at timestamptz NOT NULL,
  attempts        integer NOT NULL DEFAULT 0,
  last_error      text
);
CREATE INDEX keycloak_sync_due_idx ON keycloak_sync (next_attempt_at);
