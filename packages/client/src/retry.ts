// Retries of the requests that are safe to send twice, and nothing else. Safe means the registry
// gives the same outcome for a second copy: reads (GET, HEAD) and the creating calls that carry an
// Idempotency-Key, which the registry answers a second time from the first answer it kept. A
// retry waits as long as the registry asks (Retry-After) when it asks for a bounded while, and
// backs off exponentially with jitter otherwise; every wait and the number of tries are bounded,
// and the caller's AbortSignal ends the waiting.

/** How a client retries; every field has a default. */
export interface RetryOptions {
  /** Tries after the first one; 0 turns retrying off. Default 3. */
  retries?: number;
  /** The first backoff, doubled each try (with full jitter). Default 250 ms. */
  baseDelayMs?: number;
  /** The longest backoff between two tries. Default 5 s. */
  maxDelayMs?: number;
  /**
   * The longest Retry-After the client waits for. An answer asking for longer (a rate limit's
   * window that ends in 40 s) is handed to the caller at once rather than held. Default 10 s.
   */
  maxRetryAfterMs?: number;
  /** Called before each wait: for logs and metrics. */
  onRetry?: (retry: RetryEvent) => void;
}

export interface RetryEvent {
  method: string;
  url: string;
  /** 1 for the first retry. */
  attempt: number;
  delayMs: number;
  /** The status that is retried, or the network error's message. */
  reason: number | string;
}

const DEFAULTS = { retries: 3, baseDelayMs: 250, maxDelayMs: 5_000, maxRetryAfterMs: 10_000 };

/** Statuses a retry may cure: too many requests, and a gateway or the registry unavailable for now. */
const TRANSIENT = new Set([429, 502, 503, 504]);
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

type Fetch = (request: Request) => Promise<Response>;

/** Whether sending `request` again cannot do its work twice. */
export function isRetrySafe(request: Request): boolean {
  return SAFE_METHODS.has(request.method) || request.headers.has('idempotency-key');
}

/** Retry-After in ms (seconds or an HTTP date), or null without a usable one. */
export function retryAfterMs(response: Response, now = Date.now()): number | null {
  const value = response.headers.get('retry-after')?.trim();
  if (!value) return null;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

/**
 * Whether the answer is worth another try. 409 idempotency_in_progress is one: the first copy of
 * this request (sent before a connection dropped) is still running, and the registry says when to
 * ask again for its answer.
 */
async function transient(request: Request, response: Response): Promise<boolean> {
  if (TRANSIENT.has(response.status)) return true;
  if (response.status >= 500 && response.headers.has('retry-after')) return true;
  if (response.status === 409 && request.headers.has('idempotency-key') && response.headers.has('retry-after')) {
    const body: unknown = await response.clone().json().catch(() => null);
    return typeof body === 'object' && body !== null && (body as { code?: unknown }).code === 'idempotency_in_progress';
  }
  return false;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * `send` with retries of the safe requests. `prepare` runs before every try (it adds the bearer
 * token, fetched again each time, so a long wait does not send an expired one).
 */
export function retrying(send: Fetch, options: RetryOptions, prepare: (request: Request) => Promise<Request>): Fetch {
  const { retries, baseDelayMs, maxDelayMs, maxRetryAfterMs } = { ...DEFAULTS, ...options };
  const backoff = (attempt: number) => Math.random() * Math.min(maxDelayMs, baseDelayMs * 2 ** (attempt - 1));

  return async (original) => {
    const safe = retries > 0 && isRetrySafe(original);
    for (let attempt = 1; ; attempt += 1) {
      // A Request's body can be read once: each try sends a copy, the original stays unread.
      const request = await prepare(safe ? original.clone() : original);
      let delayMs: number;
      let reason: number | string;
      try {
        const response = await send(request);
        if (!safe || attempt > retries || !(await transient(request, response))) return response;
        const asked = retryAfterMs(response);
        // The registry asked for a longer wait than this client holds a caller for: its answer
        // (429 rate_limited with the window's end, say) is the caller's to act on.
        if (asked !== null && asked > maxRetryAfterMs) return response;
        delayMs = asked ?? backoff(attempt);
        reason = response.status;
        // The answer is dropped: free its connection rather than leave it to the collector.
        await response.body?.cancel().catch(() => {});
      } catch (error) {
        // An abort is the caller's decision, not a failure to cure; only network errors
        // (fetch's TypeError) are retried.
        if (!safe || attempt > retries || original.signal.aborted || !(error instanceof TypeError)) throw error;
        delayMs = backoff(attempt);
        reason = error.message;
      }
      options.onRetry?.({ method: original.method, url: original.url, attempt, delayMs, reason });
      await sleep(delayMs, original.signal);
    }
  };
}
