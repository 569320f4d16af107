// The response headers a client can rely on, described in openapi.yaml where the service sends
// them. Most follow from how a route is declared, as its problems do (declared-problems.ts):
// every answer carries X-Request-Id; a 401 WWW-Authenticate; a status whose codes say "come back
// later" Retry-After; the answers an idempotent route keeps Idempotent-Replayed; an export
// Content-Disposition; a tenant answer its ETag. A route names the rest itself in
// `config.answerHeaders` (the Location of what a 201 created, where it has a URL to give).
import type { RouteOptions } from 'fastify';
import { PROBLEMS, type ProblemCode } from '../problems.js';
import { byStatus, problemsOf } from './declared-problems.js';
import { TenantSchema } from './schemas/tenant.js';

type HeaderSchema = { type: 'string' | 'integer'; maxLength?: number; format?: string; enum?: string[]; minimum?: number };

/** Each header once, as openapi.yaml lists it under components/headers. */
export const ANSWER_HEADERS = {
  'X-Request-Id': {
    description: "The request's id, for support and the logs: the caller's own X-Request-Id when it is 1-128 of A-Z a-z 0-9 . _ : -, a new UUID otherwise",
    schema: { type: 'string', maxLength: 128 },
  },
  Location: {
    description: 'Where the created resource is read',
    schema: { type: 'string', format: 'uri-reference' },
  },
  'Idempotent-Replayed': {
    description: 'Present (true) when this is the first answer again, replayed for a retry: the same Idempotency-Key, or on POST /v1/audit the same external_id',
    schema: { type: 'string', enum: ['true'] },
  },
  'Retry-After': {
    description: 'Seconds to wait before trying again',
    schema: { type: 'integer', minimum: 0 },
  },
  'WWW-Authenticate': {
    description: 'Bearer; Bearer error="invalid_token" when a token was sent and refused (RFC 6750)',
    schema: { type: 'string' },
  },
  'Content-Disposition': {
    description: 'attachment, with the file name the export suggests (its kind and the date)',
    schema: { type: 'string' },
  },
  ETag: {
    description: "The tenant's version (a strong ETag): send it back in If-Match to edit the tenant",
    schema: { type: 'string' },
  },
} satisfies Record<string, { description: string; schema: HeaderSchema }>;

export type AnswerHeader = keyof typeof ANSWER_HEADERS;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Headers the route's handler sets on the answers of a status, beyond those its declaration implies. */
    answerHeaders?: Partial<Record<number, readonly AnswerHeader[]>>;
  }
}

// The problems that tell the client when to come back (error-handler.ts, rate-limit.ts,
// heavy-reads.ts, idempotency.ts, access.ts set it); each may also come without it (a readiness
// probe that finds no database says unavailable and no more).
const WITH_RETRY_AFTER: ReadonlySet<ProblemCode> = new Set([
  'rate_limited',
  'too_many_heavy_reads',
  'unavailable',
  'contention',
  'timeout',
  'busy',
  'idempotency_in_progress',
]);

type DeclaredRoute = Pick<RouteOptions, 'config' | 'schema' | 'method'>;

const TENANT_ID = (TenantSchema as { $id?: string }).$id;
const isRefTo = (schema: unknown, id: string | undefined) => (schema as { $ref?: unknown } | undefined)?.$ref === id;

/** The headers each of `statuses` answers with on this route, in the order ANSWER_HEADERS lists them. */
export function answerHeadersOf(route: DeclaredRoute, statuses: readonly number[]): Map<number, AnswerHeader[]> {
  const config = route.config ?? {};
  const responses = ((route.schema ?? {}) as { response?: Record<string, unknown> }).response ?? {};
  const codes = byStatus(problemsOf(route));
  // An idempotent route keeps every answer its handler gives and replays it, refusals included.
  const kept = new Set<number>((config.problems ?? []).map((code) => PROBLEMS[code].status).filter((status) => status < 500));
  const headers = new Map<number, AnswerHeader[]>();
  for (const status of statuses) {
    const at = new Set<AnswerHeader>(['X-Request-Id', ...(config.answerHeaders?.[status] ?? [])]);
    const problems = codes.get(status) ?? [];
    if (status === 401) at.add('WWW-Authenticate');
    if (problems.some((code) => WITH_RETRY_AFTER.has(code))) at.add('Retry-After');
    if (config.idempotent && ((status >= 200 && status < 300) || kept.has(status))) at.add('Idempotent-Replayed');
    if (config.heavyRead === 'export' && status === 200) at.add('Content-Disposition');
    // A tenant is answered with its version (tenants.ts, sendTenant); a stale If-Match with the current one.
    if ((status === 200 && isRefTo(responses[status], TENANT_ID)) || problems.includes('precondition_failed')) at.add('ETag');
    headers.set(status, (Object.keys(ANSWER_HEADERS) as AnswerHeader[]).filter((name) => at.has(name)));
  }
  return headers;
}
