// One log line per request, written when the answer is sent: method, route pattern (not the raw
// URL, which may carry identifiers and has unbounded cardinality), status, duration, request id
// (bound by the child logger), the caller and the tenant concerned. Fastify's own pair of
// "incoming"/"completed" lines is replaced.
//
// The line is written for refused requests too, before or after validation, so nothing in it is
// taken from the request as sent: the tenant id only when it is a UUID as the routes accept it
// (written lowercase, the form the database returns), the caller's names cut to a bound. A
// request naming a megabyte of "tenant_id" must not become a megabyte of log.
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import { isUuid } from '../domain/ids.js';
import type { Principal } from '../auth/principal.js';
import { observeRequest } from '../observability/metrics.js';

/** The field that carries the request id on every line a request writes. */
export const REQUEST_ID_LOG_LABEL = 'request_id';

/**
 * The longest principal and principal_name written. Tokens are checked to hold no longer ones
 * (src/auth/principal.ts); this bound holds whatever the principal's source.
 */
export const LOGGED_NAME_MAX_LENGTH = 255;

/** The request part's own tenant_id, if it has one (a body may be any JSON value). */
function namedIn(part: unknown): { id: unknown } | undefined {
  return typeof part === 'object' && part !== null && Object.hasOwn(part, 'tenant_id')
    ? { id: (part as { tenant_id: unknown }).tenant_id }
    : undefined;
}

/**
 * The tenant a request names (path, query or body, as the routes call it): its id, lowercase;
 * null when it names one that is not a UUID; undefined when it names none.
 */
function tenantOf(request: FastifyRequest): string | null | undefined {
  const named = namedIn(request.params) ?? namedIn(request.query) ?? namedIn(request.body);
  if (named === undefined) return undefined;
  return typeof named.id === 'string' && isUuid(named.id) ? named.id.toLowerCase() : null;
}

/** The text cut to LOGGED_NAME_MAX_LENGTH code points (never inside a character). */
function bounded(text: string): string {
  return text.length <= LOGGED_NAME_MAX_LENGTH ? text : Array.from(text).slice(0, LOGGED_NAME_MAX_LENGTH).join('');
}

const QUIETER_THAN_INFO = new Set(['warn', 'error', 'fatal', 'silent']);

/** Whether a logger at `level` writes the per-request line at all. */
export const writesRequestLines = (level: string): boolean => !QUIETER_THAN_INFO.has(level);

/** A request as its log line tells it. */
export interface CompletedRequest {
  method: string;
  /** The route pattern, never the URL as sent. */
  route: string;
  status: number;
  durationMs: number;
  principal: Principal | null;
  /** The tenant the request names (tenantOf); undefined when it names none. */
  named: string | null | undefined;
}

/** The fields of the per-request line, the same wherever the request was served. */
export function requestLine(request: CompletedRequest): Record<string, unknown> {
  const { principal, named } = request;
  return {
    method: request.method,
    route: request.route,
    status: request.status,
    duration_ms: Math.round(request.durationMs * 10) / 10,
    // A request that names a tenant concerns that one, or (named badly) none: not the caller's.
    tenant_id: named === undefined ? (principal?.tenantId ?? null) : named,
    principal: principal ? bounded(principal.sub) : null,
    principal_name: principal ? bounded(principal.name) : null,
  };
}

export class RequestLog extends LogController {
  constructor() {
    super({ requestIdLogLabel: REQUEST_ID_LOG_LABEL });
  }

  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const route = request.routeOptions.url ?? 'unmatched';
    observeRequest(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
    // Below info, skip building the line at all: this runs on every request of the hot paths.
    if (!error && !writesRequestLines(reply.log.level)) return;
    const line = requestLine({
      method: request.method,
      route,
      status: reply.statusCode,
      durationMs: reply.elapsedTime,
      principal: request.principal,
      named: tenantOf(request),
    });
    if (error) reply.log.error({ ...line, err: error }, 'request failed');
    else reply.log.info(line, 'request');
  }
}
