// Idempotency-Key on the creating POSTs: a retry with the same key and the same request gets the
// first answer again (for 24 hours, from any replica, since the answers live in PostgreSQL) and
// has no second effect; the same key with another request is refused (422); a retry that arrives
// while the first request still runs is told to wait (409). Keys belong to the caller (the token's
// subject). A 5xx answer is not kept: the operation did not happen, and a retry should run again.
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { canonicalJson } from '../domain/audit.js';
import type { Database } from '../store/database.js';
import { claimIdempotencyKey, releaseIdempotencyKey, storeIdempotentAnswer } from '../store/idempotency.js';
import Type from 'typebox';
import { AppError, invalidInput } from '../problems.js';

export interface IdempotencyRule {
  /** Body fields that must not be kept at rest (a created API key's plaintext). */
  withhold?: string[];
}

declare module 'fastify' {
  interface FastifyContextConfig {
    idempotent?: IdempotencyRule;
  }
}

export const IDEMPOTENCY_HEADER = 'idempotency-key';
// A day covers every automated retry policy; the table stays small.
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
const KEY_SHAPE = /^[\x21-\x7e]{1,255}$/;
// Headers of the first answer that a replay repeats.
const KEPT_HEADERS = ['location', 'content-type', 'retry-after'];

const IdempotencyHeaders = Type.Object({
  [IDEMPOTENCY_HEADER]: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 255,
      description: 'a retry with the same key and request replays the first answer for 24 hours',
    }),
  ),
});

const claims = new WeakMap<FastifyRequest, { principal: string; key: string }>();

function requestHash(request: FastifyRequest): string {
  return createHash('sha256')
    .update(`${request.method} ${request.routeOptions.url ?? ''}\n${canonicalJson(request.params ?? {})}\n${canonicalJson(request.body ?? null)}`)
    .digest('hex');
}

function withheld(body: string, fields: string[] | undefined): string {
  if (!fields?.length) return body;
  try {
    const parsed = JSON.parse(body) as Record<string, unknown>;
    for (const field of fields) delete parsed[field];
    return JSON.stringify(parsed);
  } catch {
    return body;
  }
}

async function replayOrClaim(db: Database, clock: () => Date, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const header = request.headers[IDEMPOTENCY_HEADER];
  if (header === undefined) return;
  const key = Array.isArray(header) ? header[0] ?? '' : header;
  if (!KEY_SHAPE.test(key)) {
    throw invalidInput([{ path: `/${IDEMPOTENCY_HEADER}`, in: 'headers', message: 'must be 1 to 255 visible ASCII characters' }]);
  }
  const principal = request.principal?.sub ?? 'anonymous';
  const hash = requestHash(request);
  const claim = await claimIdempotencyKey(db, { principal, key, requestHash: hash, now: clock(), ttlMs: IDEMPOTENCY_TTL_MS });
  if (claim.claimed) {
    claims.set(request, { principal, key });
    return;
  }
  const { existing } = claim;
  if (existing.request_hash !== hash) {
    throw new AppError('idempotency_key_reused', {
      detail: 'this Idempotency-Key was used for a different request; use a new key for a new request',
    });
  }
  if (existing.status === null || existing.body === null) {
    throw new AppError('idempotency_in_progress', {
      detail: 'a request with this Idempotency-Key is still running; retry shortly',
      headers: { 'retry-after': '1' },
    });
  }
  await reply
    .code(existing.status)
    .headers({ ...(existing.headers ?? {}), 'idempotent-replayed': 'true' })
    .send(existing.body);
}

export function registerIdempotency(app: FastifyInstance, db: Database, clock: () => Date): void {
  // Registered after the access rules, so these hooks run after authentication and authorization.
  app.addHook('onRoute', (route) => {
    const rule = route.config?.idempotent;
    if (!rule) return;
    // The header belongs in the route's contract (and openapi.yaml); its answers are declared
    // by declared-problems.ts for every idempotent route.
    route.schema = { ...route.schema, headers: IdempotencyHeaders };
    const preHandler = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
      replayOrClaim(db, clock, request, reply).then(() => {
        if (!reply.sent) done();
      }, done);
    };
    const onSend = async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
      const claim = claims.get(request);
      if (!claim) return payload;
      claims.delete(request);
      if (reply.statusCode >= 500 || typeof payload !== 'string') {
        await releaseIdempotencyKey(db, claim.principal, claim.key);
        return payload;
      }
      const headers: Record<string, string> = {};
      for (const name of KEPT_HEADERS) {
        const value = reply.getHeader(name);
        if (typeof value === 'string') headers[name] = value;
      }
      await storeIdempotentAnswer(db, { ...claim, status: reply.statusCode, headers, body: withheld(payload, rule.withhold) });
      return payload;
    };
    route.preHandler = [...asArray(route.preHandler), preHandler];
    route.onSend = [...asArray(route.onSend), onSend];
  });
}

const asArray = <T>(value: T | T[] | undefined): T[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);
