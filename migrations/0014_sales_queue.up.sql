-- The sales queue is worked, not only answered by a grant: an operator assigns a request to a
-- sales owner and may decline it with a reason. Every closed request says who closed it.
ALTER TABLE product_requests
  ADD COLUMN sales_owner    text,
  -- Who closed the request (the operator who granted, revoked or declined); null while open and
  -- for requests closed before this migration.
  ADD COLUMN closed_by      text,
  ADD COLUMN decline_reason text,
  -- A reason exactly when the request was declined.
  ADD CONSTRAINT product_requests_decline_reason
    CHECK ((closed_reason IS NOT DISTINCT FROM 'declined') = (decline_reason IS NOT NULL));

-- One owner's queue (GET /v1/catalog/requests?sales_owner=), by status, oldest first: the rows
-- of a page come out of the index in the list's order. Unassigned requests are not in it.
CREATE INDEX product_requests_owner_status_created_idx ON product_requests (sales_owner, status, created_at, id)
  WHERE sales_owner IS NOT NULL;

-- One tenant's requests by status, oldest first: the tenant filter of the queue and the tenant
-- export, which would otherwise walk every tenant's closed requests.
CREATE INDEX product_requests_tenant_status_created_idx ON product_requests (tenant_id, status, created_at, id);
