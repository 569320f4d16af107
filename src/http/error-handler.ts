// The error mapper: every failure, wherever it starts (validation, body parsing, routing, the
// database, a bug), leaves as one problem+json answer. This is the only place that decides
// which status and code an error becomes.
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isStatementTimeout, isUnavailable, uniqueViolation } from '../store/errors.js';
import { AppError, problemBody } from './problem.js';
import { fieldErrors } from './validation.js';

/** Unique constraints whose violation is a conflict a client can act on, by constraint name. */
const UNIQUE_CONFLICTS: Record<string, { code: string; detail: string }> = {
  tenants_slug_key: { code: 'slug_taken', detail: 'a tenant with this slug already exists' },
};

// Seconds a client should wait before retrying while the database is away: long enough not to
// pile on during a restart, short enough that a failover is invisible to a patient client.
const UNAVAILABLE_RETRY_AFTER_SECONDS = '2';

function fromFastifyError(error: FastifyError): AppError | undefined {
  if (error.validation) {
    const part = error.validationContext ?? 'body';
    return new AppError(400, 'validation_failed', {
      detail: `the request ${part === 'body' ? 'body' : part} is invalid`,
      errors: fieldErrors(error.validation as Parameters<typeof fieldErrors>[0], part),
    });
  }
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError(413, 'payload_too_large', { detail: 'the request body is over the size limit' });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError(415, 'unsupported_media_type', { detail: 'send the body as application/json' });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new AppError(400, 'malformed_json', { detail: 'the request body is not valid JSON' });
  }
  if (error instanceof SyntaxError && error.statusCode === 400) {
    return new AppError(400, 'malformed_json', { detail: 'the request body is not valid JSON' });
  }
  // Any other error Fastify raised for a bad request (a bad URL, an invalid header, ...).
  if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    return new AppError(error.statusCode, 'bad_request', { detail: 'the request could not be processed' });
  }
  return undefined;
}

function fromDatabaseError(error: unknown): AppError | undefined {
  const constraint = uniqueViolation(error);
  if (constraint !== undefined) {
    const known = UNIQUE_CONFLICTS[constraint];
    return new AppError(409, known?.code ?? 'conflict', { detail: known?.detail ?? 'conflicts with an existing resource' });
  }
  if (isStatementTimeout(error)) {
    return new AppError(503, 'timeout', {
      detail: 'the database did not answer in time; retry shortly',
      headers: { 'retry-after': UNAVAILABLE_RETRY_AFTER_SECONDS },
      cause: error,
    });
  }
  if (isUnavailable(error)) {
    return new AppError(503, 'unavailable', {
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
    new AppError(500, 'internal_error', { detail: 'an unexpected error occurred', cause: error })
  );
}

export function sendProblem(reply: FastifyReply, request: FastifyRequest, error: AppError): FastifyReply {
  return reply
    .code(error.status)
    .headers(error.headers)
    .type('application/problem+json')
    .send(problemBody(error, request.id));
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
