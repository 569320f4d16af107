// What both framework adapters share: where a request carries its key, and how a refusal is
// answered (RFC 9457 application/problem+json with a stable `code`, like the registry's own).
import type { Answer, Question, VerifyCode } from './answer.js';
import type { KeyVerifier } from './verifier.js';

export type HeaderBag = Record<string, string | string[] | undefined>;

/** The key of a request: `Authorization: Bearer <key>`, else `X-API-Key: <key>`; undefined when neither. */
export function keyFromHeaders(headers: HeaderBag): string | undefined {
  const authorization = single(headers.authorization);
  if (authorization !== undefined) {
    const match = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
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
 * The verdict on a request's key for the adapters: handed to `settle` at once when it is held
 * (no promise, no microtask turn), or once the registry has answered; null when the request
 * carries no key. `fail` gets what verify() would reject with (a bad product code).
 */
export function withVerdict(
  verifier: KeyVerifier,
  headers: HeaderBag,
  question: Question,
  settle: (answer: Answer | null) => void,
  fail: (error: unknown) => void,
): void {
  const key = keyFromHeaders(headers);
  if (key === undefined) return settle(null);
  let known: Answer | undefined;
  try {
    known = verifier.verifyNow(key, question);
  } catch (error) {
    return fail(error);
  }
  if (known !== undefined) return settle(known);
  verifier.verify(key, question).then(settle, fail);
}
