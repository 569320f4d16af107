-- Change events: one per change the registry makes, in the transaction of that change, numbered
-- by one global sequence with no gaps once committed (GET /v1/events, webhooks, JetStream).
--
-- How the sequence stays gapless with concurrent writers: a change inserts its event without a
-- number. A deferred constraint trigger numbers it when the transaction commits, by taking the
-- row lock of the one 'global' head and moving it forward by one. The lock is held until the
-- commit is done, so the next transaction that commits an event waits for it and takes the next
-- number. Numbers are therefore handed out in commit order, each one is visible once the number
-- after it is, and a transaction that rolls back (before or after its trigger ran) rolls the
-- head back with it. Writers only queue on that row for the moment of their commit.
CREATE TABLE change_events (
  id              uuid PRIMARY KEY,
  -- NULL only inside the transaction that wrote the event.
  seq             bigint UNIQUE,
  type            text COLLATE "C" NOT NULL,
  -- No foreign key: the event outlives its tenant.
  tenant_id       uuid,
  -- The seq of the tenant's previous event (NULL for its first): a consumer of one tenant checks
  -- that each event names the one it saw last, and so knows it missed none.
  tenant_prev_seq bigint,
  occurred_at     timestamptz NOT NULL,
  data            jsonb NOT NULL
);

-- One tenant's events in order (GET /v1/events?tenant_id=).
CREATE INDEX change_events_tenant_seq_idx ON change_events (tenant_id, seq) WHERE tenant_id IS NOT NULL;
-- Retention deletes from the oldest.
CREATE INDEX change_events_occurred_idx ON change_events (occurred_at);

-- The heads: 'global' is the last seq handed out, 'pruned' the last seq retention deleted (a
-- cursor below it has lost events), and one row per tenant with that tenant's last seq.
CREATE TABLE change_event_heads (
  scope    text PRIMARY KEY,
  last_seq bigint NOT NULL
);
INSERT INTO change_event_heads (scope, last_seq) VALUES ('global', 0), ('pruned', 0);

CREATE FUNCTION change_events_number() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  next_seq bigint;
  prev_seq bigint;
BEGIN
  UPDATE change_event_heads SET last_seq = last_seq + 1 WHERE scope = 'global' RETURNING last_seq INTO next_seq;
  IF NEW.tenant_id IS NOT NULL THEN
    -- Every numbering holds the global lock, so no other writer moves a tenant head meanwhile.
    SELECT last_seq INTO prev_seq FROM change_event_heads WHERE scope = NEW.tenant_id::text;
    INSERT INTO change_event_heads (scope, last_seq) VALUES (NEW.tenant_id::text, next_seq)
      ON CONFLICT (scope) DO UPDATE SET last_seq = EXCLUDED.last_seq;
  END IF;
  UPDATE change_events SET seq = next_seq, tenant_prev_seq = prev_seq WHERE id = NEW.id;
  -- Delivered at commit: readers waiting for news read the feed from their cursor. The tenant and
  -- type ride along, so a reader of one tenant or type is not woken by everyone else's changes.
  PERFORM pg_notify('registry_events', next_seq::text || ' ' || COALESCE(NEW.tenant_id::text, '-') || ' ' || NEW.type);
  RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER change_events_number AFTER INSERT ON change_events
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION change_events_number();

-- The feed's consumers inside the registry (the webhook dispatcher, the JetStream relay): where
-- each has got to, and which replica holds it. One replica works a consumer at a time: it holds
-- the lease until lease_until and renews it while it works; another takes over once it lapses
-- and resumes from last_seq. Every move of last_seq names the holder, so a replica whose lease
-- lapsed (paused, partitioned) cannot move it back or forward behind the new holder's back.
CREATE TABLE feed_consumers (
  name        text PRIMARY KEY,
  last_seq    bigint NOT NULL DEFAULT 0,
  holder      text,
  lease_until timestamptz
);
