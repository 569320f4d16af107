// Rate limits per caller (the token's subject): one budget per minute for the public /v1 routes
// and a larger one for /v1/internal (key verification and claims, which carry every request of
// the platform). Counted in this process by default; with REDIS_URL, counted in Redis so every
// replica shares one budget per caller. Past the budget: 429 rate_limited with Retry-After.
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import type { Redis } from 'ioredis';
import { AppError } from './problem.js';

export interface RateLimits {
  /** Requests per caller per minute on the public /v1 routes; 0 turns the limit off. */
  publicPerMinute: number;
  /** The same for /v1/internal/*. */
  internalPerMinute: number;
}

const WINDOW_MS = 60_000;

/** Counts one request of `key` in the current window and says whether it is within `limit`. */
export interface Counter {
  hit(key: string, limit: number, now: number): { allowed: boolean; retryAfterS: number } | Promise<{ allowed: boolean; retryAfterS: number }>;
  close(): Promise<void>;
}

const verdict = (count: number, limit: number, now: number) => ({
  allowed: count <= limit,
  retryAfterS: Math.max(1, Math.ceil((WINDOW_MS - (now % WINDOW_MS)) / 1000)),
});

/** Fixed one-minute windows in a Map; the whole Map is dropped when a new window starts. */
export class LocalCounter implements Counter {
  private window = -1;
  private counts = new Map<string, number>();

  hit(key: string, limit: number, now: number) {
    const window = Math.floor(now / WINDOW_MS);
    if (window !== this.window) {
      this.window = window;
      this.counts = new Map();
    }
    const count = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, count);
    return verdict(count, limit, now);
  }

  async close() {}
}

/** The same windows in Redis (INCR + PEXPIRE in one round trip), shared by every replica. */
export class RedisCounter implements Counter {
  constructor(private readonly redis: Redis) {}

  async hit(key: string, limit: number, now: number) {
    const window = Math.floor(now / WINDOW_MS);
    const name = `tenant-registry:rate:${window}:${key}`;
    const results = await this.redis.multi().incr(name).pexpire(name, WINDOW_MS * 2).exec();
    const count = Number(results?.[0]?.[1] ?? 0);
    return verdict(count, limit, now);
  }

  async close() {
    await this.redis.quit().catch(() => {});
  }
}

export function registerRateLimits(app: FastifyInstance, counter: Counter | null, limits: RateLimits, clock: () => number = Date.now): void {
  if (!counter) return;
  // Registered after the access rules: their authentication runs first, so the caller is known.
  app.addHook('onRoute', (route) => {
    const access = route.config?.access;
    if (!access || 'public' in access) return;
    const internal = route.url.startsWith('/v1/internal/');
    const limit = internal ? limits.internalPerMinute : limits.publicPerMinute;
    if (limit <= 0) return;
    const scope = internal ? 'internal' : 'public';
    const refuse = (retryAfterS: number) =>
      new AppError(429, 'rate_limited', {
        detail: `more than ${limit} requests a minute from this caller; retry after ${retryAfterS} s`,
        headers: { 'retry-after': String(retryAfterS) },
      });
    const hook = (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) => {
      const outcome = counter.hit(`${scope}:${request.principal?.sub ?? 'anonymous'}`, limit, clock());
      if (!(outcome instanceof Promise)) return done(outcome.allowed ? undefined : refuse(outcome.retryAfterS));
      outcome.then(
        (result) => done(result.allowed ? undefined : refuse(result.retryAfterS)),
        // A counter that cannot count (Redis down) must not take the API down with it.
        (error: unknown) => {
          request.log.warn({ err: error }, 'rate limit counter unavailable; request let through');
          done();
        },
      );
    };
    route.onRequest = [...asArray(route.onRequest), hook];
  });
}

const asArray = <T>(value: T | T[] | undefined): T[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);
