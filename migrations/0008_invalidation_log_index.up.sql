-- The invalidation log is read by time: by each write transaction for its own rows, and by the
-- fallback poll for recent ones. It is small (an hour of changes), but read on every write.
CREATE INDEX cache_invalidations_created_idx ON cache_invalidations (created_at);
