// The error mapper: every failure, wherever it starts (validation, body parsing, routing, the
// database, a bug), leaves as one problem+json answer. This is the only place that decides
// which status and code an error becomes.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isStatementTimeout, isTransactionConflict, isUnavailable, uniqueViolation } from '../store/errors.js';
import { AppError, invalidInput, type ProblemCode } from '../problems.js';
import { problemBody } from './problem.js';
import { REQUEST_ID_HEADER } from './request-id.js';
import { fieldErrors, MAX_FIELD_ERRORS } from './validation.js';

/** Unique constraints whose violation is a conflict a client can act on, by constraint name. */
const UNIQUE_CONFLICTS: Record<string, { code: ProblemCode; detail: string }> = {
  tenants_slug_key: { code: 'slug_taken', detail: 'a tenant with this slug already exists' },
};

// Seconds a client should wait before retrying while the database is away: long enough not to
// pile on during a restart, short enough that a failover is invisible to a patient client.
const UNAVAILABLE_RETRY_AFTER_SECONDS = '2';

function fromFastifyError(error: FastifyError): AppError | undefined {
  if (error.validation) {
    const part = error.validationContext ?? 'body';
    const count = error.validation.length;
    const listed = count > MAX_FIELD_ERRORS ? ` (${count} problems; the first ${MAX_FIELD_ERRORS} are listed)` : '';
    return invalidInput(fieldErrors(error.validation as Parameters<typeof fieldErrors>[0], part), `the request ${part} is invalid${listed}`);
  }
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('payload_too_large', { detail: 'the request body is over the size limit' });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError('unsupported_media_type', { detail: 'send the body as application/json' });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new AppError('malformed_json', { detail: 'the request body is not valid JSON' });
  }
  if (error instanceof SyntaxError && error.statusCode === 400) {
    return new AppError('malformed_json', { detail: 'the request body is not valid JSON' });
  }
  // Any other error Fastify raised for a bad request (a bad URL, an invalid header, ...).
  if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    return new AppError('bad_request', { detail: 'the request could not be processed' });
  }
  return undefined;
}

function fromDatabaseError(error: unknown): AppError | undefined {
  const constraint = uniqueViolation(error);
  if (constraint !== undefined) {
    const known = UNIQUE_CONFLICTS[constraint];
    return new AppError(known?.code ?? 'conflict', { detail: known?.detail ?? 'conflicts with an existing resource' });
  }
  if (isTransactionConflict(error)) {
    return new AppError('contention', {
      detail: 'the change met a concurrent one and was rolled back whole; nothing was written, retry it',
      headers: { 'retry-after': '1' },
      cause: error,
    });
  }
  if (isStatementTimeout(error)) {
    return new AppError('timeout', {
      detail: 'the database did not answer in time; retry shortly',
      headers: { 'retry-after': UNAVAILABLE_RETRY_AFTER_SECONDS },
      cause: error,
    });
  }
  if (isUnavailable(error)) {
    return new AppError('unavailable', {
      detail: 'the database is unavailable; retry shortly',
      headers: { 'retry-after': UNAVAILABLE_RETRY_AFTER_SECONDS },
      cause: error,
    });
  }
  return undefined;
}

export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  return (
    fromFastifyError(error as FastifyError) ??
    fromDatabaseError(error) ??
    new AppError('internal_error', { detail: 'an unexpected error occurred', cause: error })
  );
}

export function sendProblem(reply: FastifyReply, request: FastifyRequest, error: AppError): FastifyReply {
  return reply
    .code(error.status)
    .headers(error.headers)
    .type('application/problem+json')
    .send(problemBody(error, request.id));
}

/**
 * Fastify's `frameworkErrors`: what its router refuses before any route, hook or error handler
 * runs (a path segment over maxParamLength, one that does not percent-decode). Left to Fastify,
 * these answer with its own JSON shape, and that body echoes the whole path, which may carry a
 * key or a token; the hostile-input test found both (test/reliability/fuzz.test.ts).
 */
export function answerFrameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const problem =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new AppError('uri_too_long', { detail: 'a path segment is longer than any identifier this service uses' })
      : error.code === 'FST_ERR_BAD_URL'
        ? new AppError('malformed_request', { detail: 'the path is not valid percent-encoding' })
        : toAppError(error);
  // The app's onSend hooks do not run on these early answers, so the request id is set here.
  void sendProblem(reply.header(REQUEST_ID_HEADER, request.id), request, problem);
}

export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => {
    const problem = toAppError(error);
    if (problem.status === 500) {
      // A bug: the client gets a request id, the operator the cause under the same id.
      request.log.error({ err: error, code: problem.code }, 'unexpected failure');
    } else if (problem.status >= 502) {
      // A dependency (or this replica's own shutdown): expected, worth a warning, not a stack.
      const cause = problem.cause instanceof Error ? problem.cause.message : undefined;
      request.log.warn({ code: problem.code, ...(cause ? { cause } : {}) }, problem.detail ?? problem.code);
    }
    return sendProblem(reply, request, problem);
  });
}
