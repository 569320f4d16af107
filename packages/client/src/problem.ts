// Error answers as values a caller can switch on. openapi-fetch already gives each operation's
// `error` as the union of the problems the contract declares for it (its `code` narrowed to that
// operation's codes); this file adds an Error for callers who prefer throwing (unwrap) and a guard
// that narrows whatever was caught to one code.
import { PROBLEM_CODES } from './generated/spec.js';
import type { Problem, ProblemCode } from './types.js';

const KNOWN_CODES: ReadonlySet<string> = new Set(PROBLEM_CODES);

/** An answer that was not a success and not a problem of the registry (a proxy's 502 page, say). */
export class RegistryError extends Error {
  override name = 'RegistryError';
  constructor(
    message: string,
    readonly status: number,
    /** The X-Request-Id of the answer, when there was one: what the registry's logs are searched by. */
    readonly requestId: string | null,
  ) {
    super(message);
  }
}

/** A problem+json answer of the registry; `code` is one of the contract's codes. */
export class RegistryProblem<C extends ProblemCode = ProblemCode> extends RegistryError {
  override name = 'RegistryProblem';
  readonly code: C;
  readonly title: string;
  readonly detail: string;
  /** Which fields were refused, for validation_failed. */
  readonly errors: Problem['errors'];
  /** The whole body, with the fields some codes add (current_status, rotated_to, step). */
  readonly problem: Problem & { code: C };

  constructor(problem: Problem & { code: C }) {
    // The detail is the registry's own sentence; it never repeats the request's body or path.
    super(`${problem.code}: ${problem.detail}`, problem.status, problem.request_id);
    this.problem = problem;
    this.code = problem.code;
    this.title = problem.title;
    this.detail = problem.detail;
    this.errors = problem.errors;
  }
}

/** Whether `body` has the shape of the registry's problems, with a code the contract declares. */
export function isProblemBody(body: unknown): body is Problem {
  if (typeof body !== 'object' || body === null) return false;
  const candidate = body as Record<string, unknown>;
  return typeof candidate.code === 'string' && KNOWN_CODES.has(candidate.code) && typeof candidate.status === 'number';
}

/**
 * Whether `error` (an openapi-fetch `error`, or whatever a catch block holds) is a problem with one
 * of `codes`; narrows it to that code.
 */
export function isProblem<C extends ProblemCode>(error: unknown, ...codes: C[]): error is (Problem | RegistryProblem) & { code: C } {
  const code: ProblemCode | undefined = error instanceof RegistryProblem ? (error as RegistryProblem).code : isProblemBody(error) ? error.code : undefined;
  return code !== undefined && (codes.length === 0 || (codes as string[]).includes(code));
}

/** The error to throw for a failed answer: a RegistryProblem when the body is one. */
export function errorFor(response: Response, body: unknown): RegistryError {
  if (isProblemBody(body)) return new RegistryProblem(body);
  return new RegistryError(`the registry answered ${response.status} ${response.statusText}`.trim(), response.status, response.headers.get('x-request-id'));
}

interface Answer {
  data?: unknown;
  error?: unknown;
  response: Response;
}

/** What unwrap() returns: the success body, or undefined for an answer without one (204). */
export type Unwrapped<R extends Answer> = [NonNullable<R['data']>] extends [never] ? undefined : NonNullable<R['data']>;

/**
 * The success body of an openapi-fetch call, or a thrown RegistryProblem (RegistryError for an
 * answer that is not a problem): `const { tenant } = await unwrap(client.POST('/v1/tenants', ...))`.
 */
export async function unwrap<R extends Answer>(call: Promise<R> | R): Promise<Unwrapped<R>> {
  const { data, error, response } = await call;
  if (!response.ok) throw errorFor(response, error);
  return data as Unwrapped<R>;
}
