DROP INDEX IF EXISTS cache_invalidations_created_idx;
