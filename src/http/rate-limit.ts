// Rate limits. Per caller (the token's subject), a budget a minute on the public /v1 routes for
// users and a larger one for service accounts (the portal's backend resolves a tenant on every
// portal request through one account), and one on /v1/internal (key verification and claims,
// which carry every request of the platform). Per source address, a budget of failed
// authentications: past it, a request whose token is not already known to be valid is refused
// before its signature is checked, which is the CPU a flood of bad tokens would otherwise buy.
// Counted in this process by default; with REDIS_URL, counted in Redis so every replica shares
// one budget per caller and per address. Past a budget: 429 rate_limited with Retry-After.
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import type { Redis } from 'ioredis';
import type { Principal } from '../auth/principal.js';
import type { TokenVerifier } from '../auth/verifier.js';
import { rememberedPrincipal } from './access.js';
import { AppError } from '../problems.js';

export interface RateLimits {
  /** Requests per user per minute on the public /v1 routes; 0 turns the limit off. */
  publicPerMinute: number;
  /** The same for service accounts (registry_service) on the public /v1 routes. */
  servicePerMinute: number;
  /** The same for every caller on /v1/internal/*. */
  internalPerMinute: number;
  /** Failed authentications (401) per source address per minute; 0 turns the bound off. */
  authFailuresPerMinute: number;
}

export interface RateLimiting {
  counter: Counter;
  limits: RateLimits;
  /** The time source of the windows (ms since the epoch); tests pin it. */
  clock?: () => number;
}

const WINDOW_MS = 60_000;

type Outcome = { allowed: boolean; retryAfterS: number };

/** Counts one request of `key` in the current window and says whether it is within `limit`. */
export interface Counter {
  hit(key: string, limit: number, now: number): Outcome | Promise<Outcome>;
  close(): Promise<void>;
}

const secondsLeft = (now: number) => Math.max(1, Math.ceil((WINDOW_MS - (now % WINDOW_MS)) / 1000));

const verdict = (count: number, limit: number, now: number) => ({ allowed: count <= limit, retryAfterS: secondsLeft(now) });

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

type Hook = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => void;

const callerKey = (scope: string, principal: Principal | null) => `${scope}:${principal?.sub ?? 'anonymous'}`;

/** Requests counted against their caller's budget before the router: the route's hook counts them no more. */
const countedBeforeRouting = new WeakSet<IncomingMessage>();

/**
 * The /v1/internal budget for code that serves requests before the router (http/key-verify.ts,
 * the verify lane): `count` counts a request of `principal` as the routes' hook does, and
 * `handedOver` says that a request it allowed goes to the route after all, whose hook then does not
 * count it again (one past the budget it counts, and refuses). Null when that budget is off.
 */
export function internalBudget(limiting: RateLimiting | null): {
  count(principal: Principal): Outcome | Promise<Outcome>;
  handedOver(request: IncomingMessage): void;
} | null {
  if (!limiting || limiting.limits.internalPerMinute <= 0) return null;
  const { counter } = limiting;
  const clock = limiting.clock ?? Date.now;
  const limit = limiting.limits.internalPerMinute;
  // A caller's key, made once per principal (the lane sees the same principal object for as long
  // as its token holds): a string the counter's map has hashed before, not a new one per request.
  const keys = new WeakMap<Principal, string>();
  const keyOf = (principal: Principal) => {
    let key = keys.get(principal);
    if (key === undefined) keys.set(principal, (key = callerKey('internal', principal)));
    return key;
  };
  return {
    count: (principal) => counter.hit(keyOf(principal), limit, clock()),
    handedOver: (request) => countedBeforeRouting.add(request),
  };
}

const rateLimited = (detail: string, retryAfterS: number) =>
  new AppError('rate_limited', { detail: `${detail}; retry after ${retryAfterS} s`, headers: { 'retry-after': String(retryAfterS) } });

/** Counts the request against its caller's budget in `scope`; 429 past `limit`, nothing at 0. */
function perCaller(counter: Counter, clock: () => number, scope: string, limit: number): Hook {
  const refuse = (retryAfterS: number) => rateLimited(`more than ${limit} requests a minute from this caller`, retryAfterS);
  return (request, _reply, done) => {
    if (limit <= 0 || countedBeforeRouting.has(request.raw)) return done();
    const outcome = counter.hit(callerKey(scope, request.principal), limit, clock());
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
}

/**
 * Where a request comes from, for counting failures: the IPv4 address, or the /64 of an IPv6
 * one (a single host is given a whole /64 and could otherwise take a fresh address per request).
 */
export function sourceOf(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  if (/^::ffff:[0-9.]+$/i.test(ip)) return ip.slice(7);
  const [head = '', tail] = ip.replace(/%.*$/, '').split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  // A dotted IPv4 tail takes two groups; it never reaches the first four.
  const rightGroups = right.reduce((n, group) => n + (group.includes('.') ? 2 : 1), 0);
  const groups = [...left, ...Array<string>(Math.max(0, 8 - left.length - rightGroups)).fill('0'), ...right];
  return `${groups.slice(0, 4).map((group) => parseInt(group, 16).toString(16)).join(':')}::/64`;
}

/**
 * The bound on failed authentications: `count` (onError) counts each 401 against its source
 * address, and notes the addresses past their budget in this window; `gate` (onRequest, before
 * authentication) refuses a request from such an address unless its token was verified before,
 * on this connection or in the verifier's cache. The gate is synchronous whatever the counter:
 * an address is refused once a count (local or Redis) has said its budget is spent, so with Redis
 * a replica lets one more failure through (and those in flight) before it knows.
 */
function failureBound(counter: Counter, clock: () => number, limit: number, verifier: TokenVerifier) {
  let window = -1;
  // Addresses past their budget in `window`: at most failures ÷ limit of them, dropped each minute.
  let over = new Set<string>();

  const noteOver = (source: string, now: number) => {
    const current = Math.floor(now / WINDOW_MS);
    if (current < window) return;
    if (current > window) {
      window = current;
      over = new Set();
    }
    over.add(source);
  };

  const tokenKnown = (request: FastifyRequest) => {
    if (rememberedPrincipal(request)) return true;
    const token = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '')?.[1];
    return token !== undefined && verifier.known?.(token) !== undefined;
  };

  const gate: Hook = (request, _reply, done) => {
    if (over.size === 0) return done();
    const now = clock();
    if (Math.floor(now / WINDOW_MS) !== window) {
      over = new Set();
      return done();
    }
    if (!over.has(sourceOf(request.ip)) || tokenKnown(request)) return done();
    done(rateLimited(`${limit} failed authentications this minute from this address`, secondsLeft(now)));
  };

  const count = (request: FastifyRequest, _reply: FastifyReply, error: FastifyError, done: () => void) => {
    if (error instanceof AppError && error.status === 401) {
      const now = clock();
      const source = sourceOf(request.ip);
      // The limit-th failure spends the budget: the request after it is refused.
      const outcome = counter.hit(`auth-failures:${source}`, limit - 1, now);
      if (!(outcome instanceof Promise)) {
        if (!outcome.allowed) noteOver(source, now);
      } else {
        // Not awaited: the 401 goes out at once. Redis being away leaves failures uncounted
        // (service.ts has logged that limits are not enforced).
        outcome.then(
          (result) => {
            if (!result.allowed) noteOver(source, now);
          },
          () => {},
        );
      }
    }
    done();
  };

  return { gate, count };
}

/**
 * Must be registered after the access rules (registerAccessControl): the per-caller hooks go after
 * its authentication, so the caller is known, and the failure gate goes before it.
 */
export function registerRateLimits(app: FastifyInstance, limiting: RateLimiting | null, verifier: TokenVerifier): void {
  if (!limiting) return;
  const { counter, limits } = limiting;
  const clock = limiting.clock ?? Date.now;
  const failures = limits.authFailuresPerMinute > 0 ? failureBound(counter, clock, limits.authFailuresPerMinute, verifier) : null;
  const internal = perCaller(counter, clock, 'internal', limits.internalPerMinute);
  const user = perCaller(counter, clock, 'public', limits.publicPerMinute);
  const service = perCaller(counter, clock, 'service', limits.servicePerMinute);
  const publicHook: Hook = (request, reply, done) => (request.principal?.isService ? service : user)(request, reply, done);

  app.addHook('onRoute', (route) => {
    const access = route.config?.access;
    if (!access || 'public' in access) return;
    if (failures) {
      route.onRequest = [failures.gate, ...asArray(route.onRequest)];
      route.onError = [...asArray(route.onError), failures.count];
    }
    const isInternal = route.url.startsWith('/v1/internal/');
    const limited = isInternal ? limits.internalPerMinute > 0 : limits.publicPerMinute > 0 || limits.servicePerMinute > 0;
    if (limited) route.onRequest = [...asArray(route.onRequest), isInternal ? internal : publicHook];
  });
}

const asArray = <T>(value: T | T[] | undefined): T[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);
