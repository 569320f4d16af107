// last_used_at, written in batches off the request path: verify only notes the time in memory,
// and a timer writes every noted key in one statement per interval, so a key is written at most
// once per interval however often it is used (no write amplification, no row-lock contention).
import type { Database } from '../store/database.js';
import { recordKeyUse } from '../store/api-keys.js';

export class UsageRecorder {
  private pending = new Map<string, Date>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Database,
    private readonly onError: (error: unknown) => void,
  ) {}

  note(keyId: string, at: Date): void {
    this.pending.set(keyId, at);
  }

  /** Writes what was noted; on failure the uses are kept for the next round. */
  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    try {
      await recordKeyUse(this.db, [...batch].map(([id, at]) => ({ id, at })));
    } catch (error) {
      for (const [id, at] of batch) if (!this.pending.has(id)) this.pending.set(id, at);
      this.onError(error);
    }
  }

  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.flush(), intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
  }
}
