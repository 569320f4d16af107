// Follows the registry's change feed as Server-Sent Events (GET /v1/events/stream) over fetch,
// for as long as the verifier lives: reconnects after a drop with backoff and resumes after the
// last event it saw (Last-Event-ID), and treats a stream on which nothing arrived, not even a
// heartbeat, for twice the heartbeat interval as dropped (a connection can die without a reset).
// It tells the verifier when the stream is live (answer headers received: from then on every
// change that commits reaches it) and when it is not.
import { SseParser } from './sse.js';

export interface ChangeEvent {
  seq?: number;
  type: string;
  tenant_id?: string | null;
  data?: { target?: { id?: unknown }; fields?: Record<string, unknown> } | null;
}

export interface FollowerOptions {
  url: URL;
  headers(): Promise<Record<string, string>>;
  fetch: typeof fetch;
  heartbeatMs: number;
  /** The stream answered and is reading: every change from now on will arrive. */
  onLive(): void;
  /** The stream is gone; `lastHeardAt` is when anything last arrived on it. */
  onDown(lastHeardAt: number): void;
  /** An event, or null for a message that is no event this build can read. */
  onEvent(event: ChangeEvent | null): void;
  onError(error: unknown): void;
}

// Reconnection backoff: the first retry comes soon (a registry restart or a proxy's idle cut is
// over in moments, and until the stream is back every verify asks the registry), later ones
// spread out so that a registry that is down for a while is not hammered by every product.
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 10_000;
// A connection that lasted this long was a good one: the next drop starts the backoff again.
const STABLE_MS = 5_000;

export class StreamFollower {
  private closed = false;
  private controller: AbortController | null = null;
  private lastEventId: string | null = null;
  private sleeping: { timer: NodeJS.Timeout; wake(): void } | null = null;
  readonly done: Promise<void>;

  constructor(private readonly options: FollowerOptions) {
    this.done = this.run();
  }

  /** The seq of the last event that arrived, to resume after. */
  get lastSeq(): string | null {
    return this.lastEventId;
  }

  /** Ends the current connection at once; the follower reconnects as after any drop. */
  reconnect(): void {
    this.controller?.abort();
  }

  close(): Promise<void> {
    this.closed = true;
    this.controller?.abort();
    if (this.sleeping) {
      clearTimeout(this.sleeping.timer);
      this.sleeping.wake();
    }
    return this.done;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      const startedAt = Date.now();
      await this.connectOnce();
      if (this.closed) return;
      failures = Date.now() - startedAt >= STABLE_MS ? 0 : failures + 1;
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.max(0, failures - 1));
      // Jitter: products restarted together must not reconnect together.
      await this.sleep(delay / 2 + Math.random() * (delay / 2));
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.sleeping = null;
        resolve();
      }, ms);
      timer.unref();
      this.sleeping = { timer, wake: resolve };
    });
  }

  /** One connection, from request to drop; never throws. */
  private async connectOnce(): Promise<void> {
    const controller = new AbortController();
    this.controller = controller;
    let live = false;
    let lastHeardAt = Date.now();
    // Checked at half the limit, so a silent connection is cut between 2x and 2.5x the heartbeat.
    const silenceLimitMs = 2 * this.options.heartbeatMs;
    const watchdog = setInterval(() => {
      if (Date.now() - lastHeardAt > silenceLimitMs) controller.abort(new Error('event stream silent'));
    }, Math.max(50, this.options.heartbeatMs / 2));
    watchdog.unref();
    try {
      const headers: Record<string, string> = { accept: 'text/event-stream', ...(await this.options.headers()) };
      if (this.lastEventId !== null) headers['last-event-id'] = this.lastEventId;
      const response = await this.options.fetch(this.options.url, { headers, signal: controller.signal });
      if (response.status !== 200 || response.body === null) {
        await response.body?.cancel();
        // A cursor past retention (410) or from another feed (400): start again from now. The
        // verifier never trusts what it held across a drop, so nothing is lost by it.
        if (response.status === 410 || response.status === 400) this.lastEventId = null;
        throw new Error(`event stream answered ${response.status}`);
      }
      lastHeardAt = Date.now();
      live = true;
      this.options.onLive();
      const parser = new SseParser({
        message: (message) => {
          if (message.id !== null) this.lastEventId = message.id;
          this.options.onEvent(parseEvent(message.data));
        },
        comment: () => {},
      });
      const decoder = new TextDecoder();
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        lastHeardAt = Date.now();
        parser.push(decoder.decode(chunk, { stream: true }));
      }
    } catch (error) {
      if (!this.closed) this.options.onError(error);
    } finally {
      clearInterval(watchdog);
      controller.abort();
      if (this.controller === controller) this.controller = null;
      if (live) this.options.onDown(lastHeardAt);
    }
  }
}

function parseEvent(data: string): ChangeEvent | null {
  try {
    const event = JSON.parse(data) as unknown;
    if (typeof event !== 'object' || event === null || typeof (event as ChangeEvent).type !== 'string') return null;
    return event as ChangeEvent;
  } catch {
    return null;
  }
}
