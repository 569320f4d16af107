-- The audit log becomes a Retraced-shaped, tamper-evident record. Events form one hash chain per
-- tenant (and one for platform events without a tenant): each row's hash covers the previous
-- row's hash and every field of the row, so a changed, deleted or inserted row breaks the chain.

ALTER TABLE audit_log RENAME COLUMN created_at TO created;
ALTER TABLE audit_log
  -- The chain a row belongs to: the tenant id as text, or 'platform'. It is not tenant_id, which
  -- becomes NULL when the tenant is deleted; the chain and its hashes must outlive that.
  ADD COLUMN chain_key    text,
  ADD COLUMN chain_seq    bigint,
  ADD COLUMN prev_hash    text,
  ADD COLUMN hash         text,
  ADD COLUMN received     timestamptz NOT NULL DEFAULT now(),
  ADD COLUMN group_id     text,
  ADD COLUMN group_name   text,
  ADD COLUMN actor_href   text,
  ADD COLUMN actor_fields jsonb,
  ADD COLUMN target_name  text,
  ADD COLUMN target_href  text,
  ADD COLUMN target_fields jsonb,
  ADD COLUMN description  text,
  ADD COLUMN is_failure   boolean NOT NULL DEFAULT false,
  ADD COLUMN is_anonymous boolean NOT NULL DEFAULT false,
  ADD COLUMN fields       jsonb,
  ADD COLUMN component    text,
  ADD COLUMN version      text,
  ADD COLUMN external_id  text;

-- Rows written before the chain existed join the chain of their tenant in the order they were
-- written; their hash stays NULL, which verification reports as unverifiable, not as tampering.
UPDATE audit_log SET chain_key = COALESCE(tenant_id::text, 'platform');
UPDATE audit_log AS a SET chain_seq = ordered.seq
  FROM (SELECT id, row_number() OVER (PARTITION BY chain_key ORDER BY created, id) AS seq FROM audit_log) AS ordered
 WHERE a.id = ordered.id;

ALTER TABLE audit_log
  ALTER COLUMN chain_key SET NOT NULL,
  ALTER COLUMN chain_seq SET NOT NULL,
  -- A source IP is kept as the exact text that was hashed; inet would rewrite it (::ffff:...).
  ALTER COLUMN source_ip TYPE text USING host(source_ip),
  -- The hash covers metadata; an absent map and an empty one must stay distinct.
  ALTER COLUMN metadata DROP NOT NULL,
  ALTER COLUMN metadata DROP DEFAULT;

ALTER TABLE audit_log
  ADD CONSTRAINT audit_log_chain_position_key UNIQUE (chain_key, chain_seq);

-- Times are kept to the millisecond: that is what the hash covers (JavaScript dates) and what the
-- keyset cursor carries, so a finer time would make pages skip rows within one millisecond.
UPDATE audit_log SET created = date_trunc('milliseconds', created), received = date_trunc('milliseconds', received);
ALTER TABLE audit_log
  ALTER COLUMN created SET DEFAULT date_trunc('milliseconds', now()),
  ALTER COLUMN received SET DEFAULT date_trunc('milliseconds', now()),
  ADD CONSTRAINT audit_log_created_ms CHECK (created = date_trunc('milliseconds', created)),
  ADD CONSTRAINT audit_log_received_ms CHECK (received = date_trunc('milliseconds', received));

-- The head of each chain: appends lock this one row, so appends to one chain are serialized while
-- different tenants never wait for each other; it also lets verification notice deleted tails.
CREATE TABLE audit_chains (
  chain_key   text PRIMARY KEY,
  last_seq    bigint NOT NULL,
  last_hash   text,
  -- How many leading rows predate the chain and so have no hash. Fixed here, so clearing the
  -- hashes of later rows cannot pass them off as old ones.
  legacy_rows bigint NOT NULL DEFAULT 0
);
INSERT INTO audit_chains (chain_key, last_seq, last_hash, legacy_rows)
SELECT chain_key, max(chain_seq), NULL, max(chain_seq) FROM audit_log GROUP BY chain_key;

-- A retried append with the same external_id lands once per chain.
CREATE UNIQUE INDEX audit_log_external_id_key ON audit_log (chain_key, external_id)
  WHERE external_id IS NOT NULL;

-- Byte order for actions, so `action LIKE 'tenant.%'` (the trailing-* prefix filter) can use the
-- btree indexes whatever the database's default collation is.
ALTER TABLE audit_log ALTER COLUMN action TYPE text COLLATE "C";

-- The query order is (created, id) newest first; every index ends with it so that a page is an
-- index range scan from the cursor, whatever its depth.
DROP INDEX audit_log_tenant_created_idx;
DROP INDEX audit_log_product_idx;
DROP INDEX audit_log_actor_idx;
CREATE INDEX audit_log_created_idx ON audit_log (created DESC, id DESC);
CREATE INDEX audit_log_tenant_created_idx ON audit_log (tenant_id, created DESC, id DESC);
CREATE INDEX audit_log_tenant_action_idx ON audit_log (tenant_id, action, created DESC, id DESC);
CREATE INDEX audit_log_tenant_actor_idx ON audit_log (tenant_id, actor_id, created DESC, id DESC);
CREATE INDEX audit_log_tenant_target_idx ON audit_log (tenant_id, target_id, created DESC, id DESC);
CREATE INDEX audit_log_product_created_idx ON audit_log (product, created DESC, id DESC);
