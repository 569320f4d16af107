// createRegistryClient: openapi-fetch over the registry's paths, with what every caller of the
// registry needs and would otherwise write again: the bearer token from a provider, an
// Idempotency-Key on each call the contract lets be replayed, and retries of the calls that are
// safe to send twice (src/retry.ts).
import createClient, { type Client, type ClientOptions, type Middleware } from 'openapi-fetch';
import { IDEMPOTENT_OPERATIONS } from './generated/spec.js';
import { retrying, type RetryOptions } from './retry.js';
import type { paths } from './types.js';

/**
 * A bearer token, or a function returning one (called before every try, so it may rotate). A
 * function with an `invalidate()` (clientCredentials() returns one) is told when the registry
 * refuses its token with a 401, and the request is sent once more with a new token.
 */
export type TokenSource = string | ((() => string | Promise<string>) & { invalidate?: () => void });

export interface RegistryClientOptions {
  /** The registry's origin (and path prefix, if it is served under one): https://registry.example.com */
  baseUrl: string;
  /** Omit for the public routes only (/healthz, /readyz, /openapi.yaml). */
  token?: TokenSource;
  /** The fetch to send with (a test's, an instrumented one); globalThis.fetch by default. */
  fetch?: (request: Request) => Promise<Response>;
  /** Retry settings, or a number of retries; 0 or false turns retrying off. */
  retries?: number | false | RetryOptions;
  /** Headers sent on every request (a User-Agent naming the product, say). */
  headers?: ClientOptions['headers'];
}

export type RegistryClient = Client<paths> & {
  /**
   * fetch with the client's token and retries, for what the typed methods do not fit (reading an
   * export as it streams). Relative URLs resolve against baseUrl.
   */
  fetch(input: string | URL | Request, init?: RequestInit): Promise<Response>;
};

const idempotent = new Set(IDEMPOTENT_OPERATIONS.map(({ method, path }) => `${method} ${path}`));

/** Whether the contract lets this operation be replayed with an Idempotency-Key. */
export function takesIdempotencyKey(method: string, schemaPath: string): boolean {
  return idempotent.has(`${method.toUpperCase()} ${schemaPath}`);
}

/**
 * Gives each call of an idempotent operation a key of its own, unless the caller set one (to
 * carry a key across a restart of its own, say). Every retry of that call then sends the same key,
 * so the registry does the work once and answers the copies from the first answer.
 */
const idempotencyKeys: Middleware = {
  onRequest({ request, schemaPath }) {
    if (!takesIdempotencyKey(request.method, schemaPath) || request.headers.has('idempotency-key')) return undefined;
    request.headers.set('idempotency-key', crypto.randomUUID());
    return request;
  },
};

function retryOptions(retries: RegistryClientOptions['retries']): RetryOptions {
  if (retries === false) return { retries: 0 };
  if (typeof retries === 'number') return { retries };
  return retries ?? {};
}

export function createRegistryClient(options: RegistryClientOptions): RegistryClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, '');
  const send = options.fetch ?? ((request: Request) => fetch(request));
  const { token } = options;

  /** The request with the current token, unless the caller chose an Authorization of its own. */
  async function authorize(request: Request): Promise<Request> {
    if (token === undefined || request.headers.has('authorization')) return request;
    const value = typeof token === 'string' ? token : await token();
    const headers = new Headers(request.headers);
    headers.set('authorization', `Bearer ${value}`);
    return new Request(request, { headers });
  }

  const retried = retrying(send, retryOptions(options.retries), authorize);
  const invalidate = typeof token === 'function' ? token.invalidate : undefined;
  /**
   * A 401 was refused before any work was done, so any request may be sent again: once, with a
   * new token, when the provider can forget the one it kept (the issuer rotated its keys, or the
   * token was revoked before its expiry).
   */
  const resilient = !invalidate
    ? retried
    : async (request: Request): Promise<Response> => {
        const copy = request.headers.has('authorization') ? null : request.clone();
        const response = await retried(request);
        if (response.status !== 401 || !copy) return response;
        invalidate.call(token);
        await response.body?.cancel().catch(() => {});
        return retried(copy);
      };
  const client = createClient<paths>({ baseUrl, fetch: resilient, ...(options.headers ? { headers: options.headers } : {}) });
  client.use(idempotencyKeys);

  return Object.assign(client, {
    fetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
      const target = typeof input === 'string' && !/^[a-z][a-z0-9+.-]*:/i.test(input) ? `${baseUrl}${input}` : input;
      return resilient(new Request(target, init));
    },
  });
}
