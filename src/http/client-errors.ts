// Errors Node's HTTP parser raises before a request exists (a client too slow to send its
// headers or body, malformed HTTP, headers too large). Fastify's default answers them with its
// own JSON shape; these answer with the same problem+json and stable codes as every other error,
// so a client or a balancer sees one error format whatever went wrong.
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import { AppError } from '../problems.js';
import { problemBody, titleOf } from './problem.js';
import { REQUEST_ID_HEADER } from './request-id.js';

function problemFor(error: NodeJS.ErrnoException): AppError {
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return new AppError('request_timeout', { detail: 'the request was not received in time' });
  }
  if (error.code === 'HPE_HEADER_OVERFLOW') {
    return new AppError('headers_too_large', { detail: 'the request headers are too large' });
  }
  return new AppError('malformed_request', { detail: 'the request is not valid HTTP/1.1' });
}

/** Fastify's clientErrorHandler: one problem+json answer, then the connection is closed. */
export function answerClientError(this: { log: FastifyBaseLogger }, error: NodeJS.ErrnoException, socket: Socket): void {
  // A reset connection has nobody to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const problem = problemFor(error);
  // Debug only: on the open internet these are scanners and broken clients, not incidents.
  this.log.debug({ code: problem.code, parser: error.code }, 'client error before a request');
  // Not into an answer already on its way (a pipelined request after it was malformed, a
  // timeout while an export streams): those bytes would land inside that answer's body.
  const answering = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  if (socket.writable && !answering?.headersSent) {
    const requestId = randomUUID();
    const body = JSON.stringify(problemBody(problem, requestId));
    socket.write(
      `HTTP/1.1 ${problem.status} ${titleOf(problem.status)}\r\n` +
        'Content-Type: application/problem+json; charset=utf-8\r\n' +
        `${REQUEST_ID_HEADER}: ${requestId}\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        'Connection: close\r\n\r\n' +
        body,
    );
  }
  socket.destroy();
}
