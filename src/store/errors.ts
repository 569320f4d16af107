// What a database error means, independent of the driver: both pg and PGlite put the SQLSTATE
// in `code` and the violated constraint's name in `constraint`.

interface DriverError {
  code?: unknown;
  constraint?: unknown;
  message?: unknown;
}

/** The violated unique constraint (SQLSTATE 23505), or undefined for any other error. */
export function uniqueViolation(error: unknown): string | undefined {
  const e = error as DriverError | null;
  return e?.code === '23505' && typeof e.constraint === 'string' ? e.constraint : undefined;
}

// Socket errors and SQLSTATEs that say "the server is not there right now" rather than "this
// query is wrong": class 08 (connection exception), 57P01-03 (shutdown, crash, starting up),
// 53300 (too many connections).
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'EHOSTUNREACH']);
const UNAVAILABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);
// pg reports a dropped socket and an exhausted pool wait by message only.
const UNAVAILABLE_MESSAGES = [/Connection terminated/i, /timeout exceeded when trying to connect/i, /connection error/i, /PGlite is closed/i];

/** A statement cancelled by statement_timeout (SQLSTATE 57014): the database is too slow right now. */
export function isStatementTimeout(error: unknown): boolean {
  return (error as DriverError | null)?.code === '57014';
}

export function isUnavailable(error: unknown): boolean {
  const e = error as DriverError | null;
  if (typeof e?.code === 'string') {
    if (UNREACHABLE_CODES.has(e.code) || UNAVAILABLE_SQLSTATES.has(e.code) || e.code.startsWith('08')) return true;
  }
  if (error instanceof AggregateError) return error.errors.some(isUnavailable);
  return typeof e?.message === 'string' && UNAVAILABLE_MESSAGES.some((pattern) => pattern.test(e.message as string));
}
