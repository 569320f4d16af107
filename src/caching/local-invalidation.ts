// A replica must see its own changes at once: the next verify after a revoke, on the replica that
// revoked, must not answer from the old cache entry. Other replicas learn of a change through
// NOTIFY, which arrives a little after the commit; for its own writes a replica does not wait.
// This wraps the database so that every write transaction, just before it commits, reads the
// invalidations its triggers wrote (they carry the transaction's start time), and hands them to
// the caches once the commit is done.
import type { Database } from '../store/database.js';
import type { InvalidationTarget } from './invalidation-feed.js';
import { parseScope } from './scope.js';

export function invalidatingOwnWrites(db: Database, target: InvalidationTarget): Database {
  return {
    ...db,
    async transaction(fn) {
      let scopes: string[] = [];
      const result = await db.transaction(async (tx) => {
        const value = await fn(tx);
        // now() is the transaction's start time, which the log rows of this transaction carry.
        // Another transaction that started in the same microsecond would add a harmless eviction.
        const rows = await tx.query<{ scope: string }>('SELECT DISTINCT scope FROM cache_invalidations WHERE created_at = now()');
        scopes = rows.map((row) => row.scope);
        return value;
      });
      for (const scope of scopes) target.invalidate(parseScope(scope));
      return result;
    },
  };
}
