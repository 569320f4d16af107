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
// query is wrong": class 08 (connection exception), 57P01-03 (shutdown, crash, starting up).
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'EHOSTUNREACH']);
const UNREACHABLE_SQLSTATES = new Set(['57P01', '57P02', '57P03']);
// pg reports a dropped socket by message only.
const UNREACHABLE_MESSAGES = [/Connection terminated/i, /connection error/i, /PGlite is closed/i];
// Up but unable to take this query now: too many connections (53300), or every pooled connection
// busy past the pool's wait (pg says so by message only).
const BUSY_SQLSTATES = new Set(['53300']);
const BUSY_MESSAGES = [/timeout exceeded when trying to connect/i];

/**
 * The transaction met a concurrent one and the database rolled it back whole: a deadlock (40P01)
 * or a serialization failure (40001). Nothing it did was kept; running it again will do.
 */
export function isTransactionConflict(error: unknown): boolean {
  const code = (error as DriverError | null)?.code;
  return code === '40P01' || code === '40001';
}

/** A statement cancelled by statement_timeout (SQLSTATE 57014): the database is too slow right now. */
export function isStatementTimeout(error: unknown): boolean {
  return (error as DriverError | null)?.code === '57014';
}

function matches(error: unknown, codes: Set<string>, sqlstates: Set<string>, messages: RegExp[], classes: string[]): boolean {
  const e = error as DriverError | null;
  if (typeof e?.code === 'string') {
    if (codes.has(e.code) || sqlstates.has(e.code) || classes.some((prefix) => (e.code as string).startsWith(prefix))) return true;
  }
  if (error instanceof AggregateError) return error.errors.some((inner) => matches(inner, codes, sqlstates, messages, classes));
  return typeof e?.message === 'string' && messages.some((pattern) => pattern.test(e.message as string));
}

/** The server cannot be reached at all (refused, reset, shut down), as opposed to merely busy. */
export function isUnreachable(error: unknown): boolean {
  return matches(error, UNREACHABLE_CODES, UNREACHABLE_SQLSTATES, UNREACHABLE_MESSAGES, ['08']);
}

/** Unreachable or too busy: either way the request is worth retrying shortly (503). */
export function isUnavailable(error: unknown): boolean {
  return isUnreachable(error) || matches(error, new Set(), BUSY_SQLSTATES, BUSY_MESSAGES, []);
}
