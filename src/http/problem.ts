// One error type for the whole service. Whatever goes wrong ends as an AppError and is rendered
// as RFC 9457 application/problem+json by the error handler; `code` is the stable word clients
// switch on, `detail` is for humans and never carries internals or secrets.

export interface FieldError {
  /** JSON pointer into the part named by `in`, e.g. "/slug". */
  path: string;
  in: 'body' | 'querystring' | 'params' | 'headers';
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

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Content Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export class AppError extends Error {
  readonly detail: string | undefined;
  readonly errors: FieldError[] | undefined;
  readonly headers: Record<string, string>;
  readonly extensions: Record<string, unknown>;

  constructor(
    readonly status: number,
    readonly code: string,
    options: AppErrorOptions = {},
  ) {
    super(options.detail ?? code, { cause: options.cause });
    this.name = 'AppError';
    this.detail = options.detail;
    this.errors = options.errors;
    this.headers = options.headers ?? {};
    this.extensions = options.extensions ?? {};
  }

  get title(): string {
    return TITLES[this.status] ?? 'Error';
  }
}

/** The body of a problem response; `type` is a URN so it names the problem without a web page. */
export function problemBody(error: AppError, requestId: string): Record<string, unknown> {
  return {
    type: `urn:tenant-registry:problem:${error.code}`,
    title: error.title,
    status: error.status,
    detail: error.detail ?? error.title,
    code: error.code,
    request_id: requestId,
    ...(error.errors ? { errors: error.errors } : {}),
    ...error.extensions,
  };
}

export const notFound = (what: string) => new AppError(404, 'not_found', { detail: `${what} not found` });
