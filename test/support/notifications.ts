// Waiting for the cache invalidations of what has committed to reach a server's caches, instead of
// sleeping a guessed while (a busy machine can delay a NOTIFY past any fixed wait): a marker
// published now is delivered after them (PostgreSQL delivers notifications in commit order;
// PGlite at commit), so once the server has heard it, it has heard them.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Database } from '../../src/store/database.js';

export interface HearingDatabase {
  /** The database to start the server on: its listeners are watched. */
  db: Database;
  /** Resolves once the server has heard (and handled) every notification committed before the call. */
  arrived(timeoutMs?: number): Promise<void>;
}

export function hearingNotifications(db: Database): HearingDatabase {
  const markers = new Set<string>();
  const heard = new Set<string>();
  const wrapped: Database = {
    ...db,
    listen: (channel, onMessage, onState) =>
      db.listen(
        channel,
        (payload) => {
          onMessage(payload);
          // Only the markers are kept: `seq scope`, the scope a key hash nobody has.
          const scope = payload.slice(payload.indexOf(' ') + 1);
          if (markers.has(scope)) heard.add(scope);
        },
        onState,
      ),
  };
  return {
    db: wrapped,
    async arrived(timeoutMs = 20_000) {
      const marker = `key:${randomBytes(32).toString('hex')}`;
      markers.add(marker);
      await db.query('SELECT publish_invalidation($1::text)', [marker]);
      const deadline = Date.now() + timeoutMs;
      while (!heard.has(marker)) {
        if (Date.now() > deadline) throw new Error(`the server did not hear an invalidation within ${timeoutMs} ms`);
        await sleep(5);
      }
      markers.delete(marker);
      heard.delete(marker);
    },
  };
}
