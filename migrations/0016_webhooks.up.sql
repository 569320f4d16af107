-- Webhooks: endpoints operators register to receive the change feed (migration 0015) over HTTP,
-- and the log of every attempt to deliver to them. The dispatcher (events/webhook-dispatcher.ts)
-- works each endpoint strictly in sequence order: `last_seq` is the endpoint's own cursor, and
-- the event after it is retried by schedule until delivered or given up (dead), never skipped.
CREATE TABLE webhooks (
  id                    uuid PRIMARY KEY,
  url                   text NOT NULL,
  description           text,
  -- The signing secret (whsec_...). It is needed to sign, so it is kept as is; it never leaves
  -- this row except in the answers to create and rotate-secret.
  secret                text NOT NULL,
  -- After a rotation the old secret signs too, beside the new one, until previous_secret_until,
  -- so a receiver can switch to the new secret without refusing anything meanwhile.
  previous_secret       text,
  previous_secret_until timestamptz,
  -- Event type filters (exact types and namespace.*); empty: every type.
  types                 text[] NOT NULL DEFAULT '{}',
  -- One tenant's events only; none: every tenant's (and events of no tenant).
  tenant_id             uuid REFERENCES tenants (id) ON DELETE CASCADE,
  enabled               boolean NOT NULL DEFAULT true,
  -- The endpoint's cursor: every event up to this seq was delivered, given up or did not match.
  last_seq              bigint NOT NULL,
  -- Failed attempts at the event after last_seq, and when the next one is due (NULL: now).
  attempts              integer NOT NULL DEFAULT 0,
  next_attempt_at       timestamptz,
  -- Moves with every change that re-reads the feed differently (replay, filters): a delivery
  -- that was under way moves the cursor only if the endpoint is still in the state it read.
  generation            integer NOT NULL DEFAULT 0,
  created_at            timestamptz NOT NULL,
  updated_at            timestamptz NOT NULL,
  created_by            text NOT NULL,
  CONSTRAINT webhooks_previous_secret CHECK ((previous_secret IS NULL) = (previous_secret_until IS NULL)),
  CONSTRAINT webhooks_attempts CHECK (attempts >= 0),
  CONSTRAINT webhooks_last_seq CHECK (last_seq >= 0)
);

-- The list (GET /v1/webhooks) in creation order.
CREATE INDEX webhooks_created_idx ON webhooks (created_at, id);
-- The tenant's delete cascades here.
CREATE INDEX webhooks_tenant_idx ON webhooks (tenant_id) WHERE tenant_id IS NOT NULL;

-- One row per attempt (and per test ping, and per stretch of events an endpoint lost to the
-- feed's retention). What was tried and how it went, never a secret nor a response body.
CREATE TABLE webhook_deliveries (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  webhook_id   uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
  -- The event's id (its webhook-id) and seq; a test ping has an id but no seq, a stretch lost to
  -- retention a seq (the last one lost) but no id.
  event_id     uuid,
  seq          bigint,
  type         text,
  attempt      integer NOT NULL,
  outcome      text NOT NULL CHECK (outcome IN ('delivered', 'failed', 'dead', 'expired')),
  http_status  integer,
  latency_ms   integer,
  -- A short class of what went wrong: timeout, connection_refused, http_500, address_refused, ...
  error        text,
  attempted_at timestamptz NOT NULL
);

-- One endpoint's log, newest first (GET /v1/webhooks/{id}/deliveries).
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id DESC);
-- The log is pruned by age.
CREATE INDEX webhook_deliveries_attempted_idx ON webhook_deliveries (attempted_at);
