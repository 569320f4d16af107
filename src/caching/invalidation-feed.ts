// Keeps a cache honest across replicas. Database triggers write every change that can alter a
// verify answer to cache_invalidations and NOTIFY it (migration 0004). This feed hands each
// scope, parsed (scope.ts), to the cache as it arrives. While notifications may be missed (the
// listening connection dropped), it tells the cache to forget everything once and then polls the
// log for recent rows until listening resumes.
import type { Database } from '../store/database.js';
import { parseNotification, parseScope, type InvalidationScope } from './scope.js';

export const INVALIDATION_CHANNEL = 'registry_cache';

export interface InvalidationTarget {
  /** A change named by the database; 'unrecognized' ones must evict everything. */
  invalidate(scope: InvalidationScope): void;
  invalidateAll(): void;
  /** The log was read successfully after a loss of track: every change since is known again. */
  resumed?(): void;
}

export interface FeedOptions {
  /** How often the log is read while notifications are not flowing; well under the 1 s promise. */
  pollMs?: number;
  /** Log rows older than this are deleted; no replica needs them once it has polled past them. */
  retainMs?: number;
  /** How far before the last read each poll reaches back (rows of transactions that committed late). */
  overlapMs?: number;
}

/** One target that passes every notice on to several caches. */
export function fanOut(targets: InvalidationTarget[]): InvalidationTarget {
  return {
    invalidate: (scope) => targets.forEach((target) => target.invalidate(scope)),
    invalidateAll: () => targets.forEach((target) => target.invalidateAll()),
    resumed: () => targets.forEach((target) => target.resumed?.()),
  };
}

export interface InvalidationFeed {
  stop(): Promise<void>;
}

export async function startInvalidationFeed(
  db: Database,
  target: InvalidationTarget,
  options: FeedOptions = {},
): Promise<InvalidationFeed> {
  const pollMs = options.pollMs ?? 250;
  const retainMs = options.retainMs ?? 60 * 60 * 1000;
  let pollTimer: NodeJS.Timeout | undefined;
  // Rows are read by time, with an overlap: rows of transactions that committed late carry an
  // earlier created_at than rows already read. Evicting twice is harmless; missing one is not.
  let readSince = new Date();
  const overlapMs = options.overlapMs ?? 5_000;

  const poll = async () => {
    const from = new Date(readSince.getTime() - overlapMs);
    const startedAt = new Date();
    const rows = await db.query<{ scope: string }>('SELECT scope FROM cache_invalidations WHERE created_at >= $1', [from]);
    // Moved on only once read: a poll that fails (the database is away) leaves the window where
    // it was, so the first poll that succeeds reads everything since the loss of track.
    readSince = startedAt;
    for (const row of rows) target.invalidate(parseScope(row.scope));
    target.resumed?.();
  };

  const onState = (listening: boolean) => {
    if (listening) {
      const wasPolling = pollTimer !== undefined;
      if (pollTimer) clearInterval(pollTimer);
      pollTimer = undefined;
      // A drop shorter than one poll interval was never polled: read what it may have missed
      // (the poll's overlap reaches back before the drop began).
      if (wasPolling) void poll().catch(() => target.invalidateAll());
      return;
    }
    target.invalidateAll();
    if (pollTimer) return;
    readSince = new Date();
    pollTimer = setInterval(() => void poll().catch(() => target.invalidateAll()), pollMs);
    pollTimer.unref();
  };

  const onMessage = (payload: string) => target.invalidate(parseNotification(payload));
  const unlisten = await db.listen(INVALIDATION_CHANNEL, onMessage, onState);
  const cleanup = setInterval(() => {
    void db.query('DELETE FROM cache_invalidations WHERE created_at < $1', [new Date(Date.now() - retainMs)]).catch(() => {});
  }, 10 * 60 * 1000);
  cleanup.unref();

  return {
    async stop() {
      clearInterval(cleanup);
      if (pollTimer) clearInterval(pollTimer);
      await unlisten();
    },
  };
}
