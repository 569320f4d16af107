-- Idempotency-Key: the first answer to a request, kept for 24 hours so that a retry with the
-- same key and body gets the same answer instead of a second effect, from any replica.
CREATE TABLE idempotency_keys (
  -- Keys are the caller's own: two callers choosing the same key never see each other's answers.
  principal    text NOT NULL,
  key          text NOT NULL,
  -- SHA-256 of the route, its parameters and the body: the same key with another request is refused.
  request_hash text NOT NULL,
  -- NULL while the first request is still running.
  status       integer,
  headers      jsonb,
  body         text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);
