// What both framework adapters share: where a request carries its key, and how a refusal is
// answered (RFC 9457 application/problem+json with a stable `code`, like the registry's own).
import type { Answer, Question, VerifyCode } from './answer.js';
import { checkProduct, type KeyVerifier } from './verifier.js';

export type HeaderBag = Record<string, string | string[] | undefined>;

const BEARER = /^bearer[ \t]+(\S+)[ \t]*$/i;
const WHITESPACE = /\s/;
const BEARER_PREFIX = 'Bearer ';

/** The key of a request: `Authorization: Bearer <key>`, else `X-API-Key: <key>`; undefined when neither. */
export function keyFromHeaders(headers: HeaderBag): string | undefined {
  const authorization = single(headers.authorization);
  if (authorization !== undefined) {
    // The usual spelling, one space and the key alone, is read without a match object (every
    // request carries it); any other goes through the whole rule, which gives the same key here.
    if (typeof authorization === 'string' && authorization.startsWith(BEARER_PREFIX)) {
      const key = authorization.slice(BEARER_PREFIX.length);
      if (key !== '' && !WHITESPACE.test(key)) return key;
    }
    const match = BEARER.exec(authorization);
    if (match) return match[1];
  }
  const header = single(headers['x-api-key'])?.trim();
  return header === undefined || header === '' ? undefined : header;
}

const single = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value[0] : value);

export interface Refusal {
  status: 401 | 403 | 503;
  headers: Record<string, string>;
  body: { type: 'about:blank'; title: string; status: number; code: string; detail: string };
}

type RefusedCode = Exclude<VerifyCode, 'VALID'> | 'MISSING';

// The key's own faults are 401 (another key may do), the tenant's or the key's reach 403 (this
// key will not, however often it is sent), and the registry's absence 503 (try again soon).
const REFUSALS: Record<RefusedCode, { status: Refusal['status']; code: string; detail: string }> = {
  MISSING: { status: 401, code: 'api_key_missing', detail: 'send an API key as Authorization: Bearer <key> or X-API-Key' },
  MALFORMED: { status: 401, code: 'api_key_invalid', detail: 'the API key is not valid' },
  NOT_FOUND: { status: 401, code: 'api_key_invalid', detail: 'the API key is not valid' },
  REVOKED: { status: 401, code: 'api_key_revoked', detail: 'the API key has been revoked' },
  EXPIRED: { status: 401, code: 'api_key_expired', detail: 'the API key has expired' },
  TENANT_INACTIVE: { status: 403, code: 'tenant_inactive', detail: 'the tenant of this API key is not active' },
  NOT_ENTITLED: { status: 403, code: 'not_entitled', detail: 'this API key does not reach this product' },
  INSUFFICIENT_SCOPE: { status: 403, code: 'insufficient_scope', detail: 'this API key lacks the scope this call needs' },
  REGISTRY_UNAVAILABLE: { status: 503, code: 'verification_unavailable', detail: 'the API key cannot be verified now; try again shortly' },
};

const TITLES: Record<Refusal['status'], string> = { 401: 'Unauthorized', 403: 'Forbidden', 503: 'Service Unavailable' };

/** The answer to a request refused for `answer` (null: no key was sent). */
export function refusalFor(answer: Answer | null): Refusal {
  const refusal = REFUSALS[answer === null ? 'MISSING' : (answer.code as RefusedCode)] ?? REFUSALS.MALFORMED;
  const headers: Record<string, string> = { 'content-type': 'application/problem+json; charset=utf-8' };
  if (refusal.status === 401) headers['www-authenticate'] = 'Bearer';
  // The registry's verify budget; a product's client retries after it.
  if (refusal.status === 503) headers['retry-after'] = '2';
  return {
    status: refusal.status,
    headers,
    body: { type: 'about:blank', title: TITLES[refusal.status], status: refusal.status, code: refusal.code, detail: refusal.detail },
  };
}

/**
 * The verdict on a request's key for the adapters: the answer itself when memory holds it (no
 * promise, no microtask turn on a hot request), null when the request carries no key, else the
 * registry's answer to come. Throws, or rejects, what verify() rejects with (a bad product code).
 */
function verdictFor(verifier: KeyVerifier, headers: HeaderBag, question: Question): Answer | null | PromiseLike<Answer> {
  const key = keyFromHeaders(headers);
  if (key === undefined) return null;
  return verifier.verifyNow(key, question) ?? verifier.verify(key, question);
}

/**
 * One request through the verifier, for the adapters: `settle` gets the verdict, at once when
 * memory holds it (no promise, no closure), else once the registry has answered; `fail` gets an
 * Error when the question could not be put (a scope function that threw) or verify() failed.
 */
export function verifyRequest<R extends { headers: HeaderBag }, S, N>(
  verifier: KeyVerifier,
  questionOf: (request: R) => Question,
  request: R,
  response: S,
  next: N,
  settle: (request: R, response: S, next: N, answer: Answer | null) => void,
  fail: (next: N, error: Error) => void,
): void {
  let verdict: Answer | null | PromiseLike<Answer>;
  try {
    verdict = verdictFor(verifier, request.headers, questionOf(request));
  } catch (error) {
    return fail(next, failureOf(error));
  }
  if (isPending(verdict)) {
    verdict.then(
      (answer) => settle(request, response, next, answer),
      (error: unknown) => fail(next, failureOf(error)),
    );
  } else {
    settle(request, response, next, verdict);
  }
}

/** Whether a verdict is still to come: any thenable, not only this realm's Promise (a verifier of the product's own may return one). */
function isPending(verdict: Answer | null | PromiseLike<Answer>): verdict is PromiseLike<Answer> {
  return verdict !== null && typeof (verdict as { then?: unknown }).then === 'function';
}

/**
 * What an adapter hands its framework when verification fails: always an Error, so that even a
 * rejection with nothing in it stops the request instead of reading as "go on".
 */
function failureOf(error: unknown): Error {
  return error instanceof Error ? error : new Error('the API key could not be verified');
}

/**
 * What an adapter asks of every request: the options' product and scope, in one object made once
 * when the scope is fixed; a scope read from the request makes one per request. A product code
 * that is not one fails here, when the adapter is made, rather than on every request.
 */
export function questionFor<R>(product: string | undefined, scope: string | ((request: R) => string | undefined) | undefined): (request: R) => Question {
  checkProduct(product);
  if (typeof scope === 'function') return (request) => ({ product, scope: scope(request) });
  const fixed: Question = Object.freeze({ product, scope });
  return () => fixed;
}
