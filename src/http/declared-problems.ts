// Which problems each route answers with, declared where they can be checked. A route names the
// codes its own handler raises (`config.problems`); the codes every route of its kind can answer
// follow from how it is declared: a token-protected route can answer 401/403/429 and 503 (the
// issuer, the database), one with a body can answer 400/413/415, an idempotent one 409/422, a
// heavy read 429/503. openapi.yaml lists them per status, each status with its `code` enum, so a
// client can switch on them; and with `check` on (the tests), an answer whose status or code the
// route did not declare is turned into a 500 that names it, so no test passes over one.
import type { FastifyInstance, RouteOptions } from 'fastify';
import { PROBLEMS, type ProblemCode } from '../problems.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The problem codes this route's handler raises itself, beyond those its kind implies. */
    problems?: readonly ProblemCode[];
  }
}

type DeclaredRoute = Pick<RouteOptions, 'config' | 'schema' | 'method'>;

// Methods whose requests Fastify reads a body for, whether or not the route takes one: a body
// sent to them is parsed (or refused) before the route's own checks.
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** Every code the route may answer with: its own and those its declaration implies. */
export function problemsOf(route: DeclaredRoute): ProblemCode[] {
  const config = route.config ?? {};
  const schema = (route.schema ?? {}) as Record<string, unknown>;
  const codes = new Set<ProblemCode>(['internal_error', ...(config.problems ?? [])]);
  const add = (...more: ProblemCode[]) => more.forEach((code) => codes.add(code));
  const access = config.access;
  if (access && !('public' in access)) {
    // The token, the roles, the rate limits, and what a refused lookup or the database can say.
    add('unauthorized', 'forbidden', 'rate_limited', 'unavailable', 'timeout', 'contention');
    // A tenant-scoped caller asking about another tenant is told it does not exist.
    if (access.tenant) add('not_found');
  }
  if (schema.params || schema.querystring) add('validation_failed');
  if (schema.params) add('uri_too_long');
  if (schema.body || [route.method].flat().some((method) => BODY_METHODS.has(method))) {
    add('validation_failed', 'malformed_json', 'payload_too_large', 'unsupported_media_type', 'bad_request');
  }
  if (config.idempotent) add('validation_failed', 'idempotency_in_progress', 'idempotency_key_reused');
  if (config.heavyRead) add('busy', 'too_many_heavy_reads');
  return [...codes].sort();
}

/** The codes grouped by the status they answer with. */
export function byStatus(codes: readonly ProblemCode[]): Map<number, ProblemCode[]> {
  const statuses = new Map<number, ProblemCode[]>();
  for (const code of codes) statuses.set(PROBLEMS[code].status, [...(statuses.get(PROBLEMS[code].status) ?? []), code]);
  return new Map([...statuses].sort(([a], [b]) => a - b));
}

/**
 * Keeps each route's declared codes for the check; with `check`, answers that break the
 * declaration become 500 internal_error naming what was answered (and the route's path).
 */
export function registerDeclaredProblems(app: FastifyInstance, options: { check: boolean }): void {
  if (!options.check) return;
  const declared = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    const codes = new Set<string>(problemsOf(route));
    for (const method of [route.method].flat()) declared.set(`${method} ${route.url}`, codes);
  });
  app.addHook('onSend', (request, reply, payload, done) => {
    const codes = declared.get(`${request.method} ${request.routeOptions.url}`);
    if (!codes || reply.statusCode < 400 || typeof payload !== 'string') return done(null, payload);
    const body = JSON.parse(payload) as Record<string, unknown>;
    const code = typeof body.code === 'string' ? body.code : '';
    const status = reply.statusCode;
    if (codes.has(code) && code in PROBLEMS && PROBLEMS[code as ProblemCode].status === status) return done(null, payload);
    const answered = `${request.method} ${request.routeOptions.url ?? '?'} answered ${status} ${code || '(no code)'}`;
    reply.code(500);
    done(null, JSON.stringify({ ...body, status: 500, code: 'internal_error', detail: `${answered}, which it does not declare` }));
  });
}
