// The catalogue of problems: every `code` the API answers with, its HTTP status and what it
// means, declared once. Clients switch on `code` (it is an enum in openapi.yaml); routes declare
// which codes they answer (config.problems) and a test fails when one answers another.
// AppError is the one error type: whatever goes wrong ends as one, and http/error-handler.ts
// renders it as RFC 9457 application/problem+json. It lives below http/ because services and
// jobs refuse with it too; `detail` is for humans and never carries internals or secrets.

export const PROBLEMS = {
  // 400: the request itself is wrong.
  validation_failed: { status: 400, meaning: 'the body, query or path breaks its schema; `errors` names the fields' },
  malformed_json: { status: 400, meaning: 'the body is not JSON' },
  malformed_request: { status: 400, meaning: 'the request could not be read as HTTP, or its path does not percent-decode' },
  invalid_cursor: { status: 400, meaning: 'the cursor is not one this service issued' },
  reserved_action: { status: 400, meaning: "an audit action in a namespace reserved for the registry's own events" },
  bad_request: { status: 400, meaning: 'another malformed request the framework refused' },
  slug_immutable: { status: 400, meaning: "a tenant's slug cannot change: it is its Keycloak organization's alias and part of URLs" },
  webhook_url_refused: {
    status: 400,
    meaning: 'the webhook URL is or resolves to a loopback, private, link-local or otherwise internal address (WEBHOOK_ALLOW_PRIVATE allows some), or does not resolve',
  },
  // 401, 403: who is calling.
  unauthorized: { status: 401, meaning: 'no bearer token, or one that was refused (WWW-Authenticate: Bearer)' },
  forbidden: { status: 403, meaning: "the token's roles do not allow this" },
  // 404, 405: what does not exist (for a tenant-scoped caller, another tenant's does not either).
  not_found: { status: 404, meaning: 'the resource does not exist, or belongs to another tenant' },
  unknown_product: { status: 404, meaning: 'the catalog has no such product' },
  route_not_found: { status: 404, meaning: 'no route answers this method and path' },
  method_not_allowed: { status: 405, meaning: 'the path exists under other methods (Allow)' },
  request_timeout: { status: 408, meaning: 'headers or body were not received in time' },
  // 409: the current state does not allow it.
  conflict: { status: 409, meaning: 'conflicts with an existing resource' },
  slug_taken: { status: 409, meaning: 'a tenant with this slug exists' },
  invalid_transition: { status: 409, meaning: "the tenant's status does not allow this transition (current_status)" },
  tenant_inactive: { status: 409, meaning: 'a frozen or archived tenant cannot do this (current_status)' },
  already_entitled: { status: 409, meaning: 'the tenant already has the product' },
  not_requestable: { status: 409, meaning: 'the product cannot be requested from sales' },
  trial_not_offered: { status: 409, meaning: 'the product has no self-serve trial' },
  trial_used: { status: 409, meaning: 'the tenant has had its trial of the product' },
  product_revoked: { status: 409, meaning: 'an operator revoked the product; only a grant brings it back' },
  request_closed: { status: 409, meaning: 'the sales request is closed already (closed_reason); the tenant may ask again' },
  key_revoked: { status: 409, meaning: 'the key is revoked' },
  key_expired: { status: 409, meaning: 'the key has expired' },
  key_rotated: { status: 409, meaning: 'the key was rotated already; rotate its successor (rotated_to)' },
  key_widening: { status: 409, meaning: "a key's scopes and products can only be narrowed; create a new key for more (field)" },
  no_admin_email: { status: 409, meaning: 'the tenant has no IT admin to invite' },
  keycloak_provisioning_off: { status: 409, meaning: 'Keycloak provisioning is turned off (KEYCLOAK_PROVISIONING=off)' },
  webhook_limit: { status: 409, meaning: 'the registry has as many webhooks as it keeps (100); delete one first' },
  idempotency_in_progress: { status: 409, meaning: 'a request with this Idempotency-Key is still running' },
  cursor_expired: { status: 410, meaning: "the events after this cursor are past the feed's retention (EVENT_RETENTION_DAYS); read from the oldest kept (no cursor)" },
  // 412 and 428: optimistic concurrency (ETag, If-Match).
  precondition_failed: { status: 412, meaning: 'the resource changed since the read whose ETag If-Match carries (ETag: the current one)' },
  // 413-431: size and shape limits.
  payload_too_large: { status: 413, meaning: 'the body is over BODY_LIMIT_BYTES' },
  event_too_large: { status: 413, meaning: 'the audit event is over 32 KiB in its canonical form' },
  uri_too_long: { status: 414, meaning: 'a path segment is longer than any identifier this service uses' },
  unsupported_media_type: { status: 415, meaning: 'the body is not application/json' },
  idempotency_key_reused: { status: 422, meaning: 'the Idempotency-Key was used for a different request' },
  precondition_required: { status: 428, meaning: 'this change needs If-Match with the ETag of a read (or *)' },
  rate_limited: { status: 429, meaning: "over the caller's rate limit (Retry-After)" },
  too_many_heavy_reads: { status: 429, meaning: "over the caller's share of exports or verifications at once (Retry-After)" },
  headers_too_large: { status: 431, meaning: 'the request headers are too large' },
  // 5xx: this service or what it depends on.
  internal_error: { status: 500, meaning: 'an unexpected failure; the body carries no internals' },
  keycloak_failed: { status: 502, meaning: 'Keycloak failed; what failed is recorded and can be retried (error_type, step)' },
  unavailable: { status: 503, meaning: 'a dependency (the database, the token issuer) is unavailable (Retry-After)' },
  contention: { status: 503, meaning: 'the change met a concurrent one (a deadlock) and was rolled back whole; retry it (Retry-After)' },
  timeout: { status: 503, meaning: 'a query outran DB_STATEMENT_TIMEOUT_MS; nothing was changed (Retry-After)' },
  busy: { status: 503, meaning: 'the replica runs as many exports or verifications as it takes (Retry-After)' },
  draining: { status: 503, meaning: 'the replica is shutting down' },
} as const satisfies Record<string, { status: number; meaning: string }>;

export type ProblemCode = keyof typeof PROBLEMS;
export const PROBLEM_CODES = Object.keys(PROBLEMS) as ProblemCode[];

/** The parts of a request a field error can point into. */
export const REQUEST_PARTS = ['body', 'querystring', 'params', 'headers'] as const;

export interface FieldError {
  /** JSON pointer into the part named by `in`, e.g. "/slug". */
  path: string;
  in: (typeof REQUEST_PARTS)[number];
  message: string;
}

export interface AppErrorOptions {
  detail?: string;
  errors?: FieldError[];
  /** Response headers that belong to this error (Allow, Retry-After, WWW-Authenticate). */
  headers?: Record<string, string>;
  /** Extra, documented members of the problem body, e.g. current_status. */
  extensions?: Record<string, unknown>;
  cause?: unknown;
}

export class AppError extends Error {
  readonly status: number;
  readonly detail: string | undefined;
  readonly errors: FieldError[] | undefined;
  readonly headers: Record<string, string>;
  readonly extensions: Record<string, unknown>;

  constructor(
    readonly code: ProblemCode,
    options: AppErrorOptions = {},
  ) {
    super(options.detail ?? code, { cause: options.cause });
    this.name = 'AppError';
    this.status = PROBLEMS[code].status;
    this.detail = options.detail;
    this.errors = options.errors;
    this.headers = options.headers ?? {};
    this.extensions = options.extensions ?? {};
  }
}

// The constructors of problems raised in more than one place.

export const notFound = (what: string) => new AppError('not_found', { detail: `${what} not found` });

/** An archived tenant has ended for good: it takes no new keys, products or requests. */
export function refuseIfArchived(tenant: { status: string }): void {
  if (tenant.status === 'archived') {
    throw new AppError('tenant_inactive', {
      detail: 'the tenant is archived: it takes no new keys, products or requests',
      extensions: { current_status: tenant.status },
    });
  }
}

/** The request breaks its schema (or a rule beyond it) at the fields named. */
export const invalidInput = (errors: FieldError[], detail?: string) =>
  new AppError('validation_failed', { detail: detail ?? `the request ${errors[0]?.in ?? 'body'} is invalid`, errors });

/** One field of the body is wrong. */
export const invalidBody = (path: string, message: string) => invalidInput([{ path, in: 'body', message }]);
