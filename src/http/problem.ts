// Rendering a problem: the RFC 9457 body every error answers with. What the problems are, and
// the AppError that carries one, is the catalogue in src/problems.ts.
import type { AppError } from '../problems.js';

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
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

export const titleOf = (status: number): string => TITLES[status] ?? 'Error';

/** The body of a problem response; `type` is a URN so it names the problem without a web page. */
export function problemBody(error: AppError, requestId: string): Record<string, unknown> {
  return {
    type: `urn:tenant-registry:problem:${error.code}`,
    title: titleOf(error.status),
    status: error.status,
    detail: error.detail ?? titleOf(error.status),
    code: error.code,
    request_id: requestId,
    ...(error.errors ? { errors: error.errors } : {}),
    ...error.extensions,
  };
}
