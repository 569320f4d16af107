// A small fetch client for tests: JSON in, status + headers + parsed body out.
export interface Answer<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export interface RequestOptions {
  body?: unknown;
  /** Sent as-is instead of JSON.stringify(body). */
  raw?: string;
  headers?: Record<string, string>;
}

export async function call<T = Record<string, unknown>>(
  baseUrl: string,
  method: string,
  path: string,
  options: RequestOptions = {},
  token?: string,
): Promise<Answer<T>> {
  const headers: Record<string, string> = { ...(token ? { authorization: `Bearer ${token}` } : {}), ...options.headers };
  let payload: string | undefined = options.raw;
  if (options.body !== undefined) {
    payload = JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(new URL(path, baseUrl), { method, headers, body: payload });
  const text = await response.text();
  let body: unknown = text;
  if ((response.headers.get('content-type') ?? '').includes('json') && text !== '') body = JSON.parse(text);
  return { status: response.status, headers: response.headers, body: body as T, text };
}

/** Bound to one server and one token: api.get('/v1/...'), api.post('/v1/...', { body }). */
export function client(baseUrl: string, token?: string) {
  return {
    token,
    get: <T = Record<string, unknown>>(path: string, options?: RequestOptions) => call<T>(baseUrl, 'GET', path, options, token),
    post: <T = Record<string, unknown>>(path: string, options?: RequestOptions) =>
      call<T>(baseUrl, 'POST', path, options, token),
    request: <T = Record<string, unknown>>(method: string, path: string, options?: RequestOptions) =>
      call<T>(baseUrl, method, path, options, token),
  };
}
export type Client = ReturnType<typeof client>;

/** Asserts the RFC 9457 shape and returns the body for further checks. */
export function problemOf(answer: Answer): Record<string, unknown> {
  const type = answer.headers.get('content-type') ?? '';
  if (!type.startsWith('application/problem+json')) {
    throw new Error(`expected application/problem+json, got ${type} (${answer.status}): ${answer.text}`);
  }
  return answer.body;
}
