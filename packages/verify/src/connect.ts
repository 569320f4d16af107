// The Express/Connect middleware: `app.use(apiKeyMiddleware({ verifier, product }))`. A refusal
// answers problem+json (http.ts) and ends the request; an accepted one carries its verdict as
// req.apiKey and goes on. Written against node:http alone, so it needs neither Express nor
// Connect installed, and works with both (and with anything that calls (req, res, next)).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Answer } from './answer.js';
import { questionFor, refusalFor, verifyRequest } from './http.js';
import type { KeyVerifier } from './verifier.js';

export interface ApiKeyMiddlewareOptions {
  verifier: KeyVerifier;
  /** The product every request must be entitled to; the verifier's default when absent. */
  product?: string;
  /** The scope a request needs; none when absent. */
  scope?: string | ((request: IncomingMessage) => string | undefined);
}

export type RequestWithApiKey = IncomingMessage & { apiKey?: Answer };

type Next = (error?: unknown) => void;

/** Lets an accepted request on, or answers the refusal and ends it. */
function settle(request: RequestWithApiKey, response: ServerResponse, next: Next, answer: Answer | null): void {
  if (answer?.valid) {
    request.apiKey = answer;
    next();
    return;
  }
  const refusal = refusalFor(answer);
  response.writeHead(refusal.status, refusal.headers);
  response.end(JSON.stringify(refusal.body));
}

function fail(next: Next, error: Error): void {
  next(error);
}

export function apiKeyMiddleware(options: ApiKeyMiddlewareOptions) {
  const { verifier } = options;
  const questionOf = questionFor(options.product, options.scope);
  // A held verdict answers at once; only a first sight waits for the registry.
  return (request: RequestWithApiKey, response: ServerResponse, next: Next): void =>
    verifyRequest(verifier, questionOf, request, response, next, settle, fail);
}
