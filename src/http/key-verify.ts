// POST /v1/internal/api-keys/verify: headless products ask this on every request they receive.
// It always answers 200 with a verdict; a database outage on a cache miss is the only error.
//
// Two doors lead to one verdict:
// - the verify lane (createVerifyLane) sits in front of Fastify's router and answers the requests
//   it can settle at once: a token proved before, whose roles allow the route outright; a small
//   JSON body the route's own schema accepts; a budget with room; a key whose facts are cached
//   (or a malformed key). That is nearly every request of a product in steady state;
// - the route, with the whole hook chain, answers everything else: the lane hands the request
//   over untouched, or with the body it has read (replayedBody gives it back to the parser),
//   so a refusal, a bad body or a cold key is answered exactly as before.
// The lane exists for a measured reason: Fastify's per-request work (routing, hooks, the parser,
// the child logger, the serializer) cost more CPU than the verdict itself, and the platform's
// hottest call answered at a third of a bare node:http server (BENCHMARKS.md). It decides
// nothing of its own: access (principalKnownNow, allowedOutright), the budget (internalBudget),
// the body's schema (the same compiled validator), the verdict (KeyVerifier.answerNow) and the
// log line (requestLine) are the route's rules, called from here. Tests talk to a listening
// app, so both doors are tested; test/http/verify-lane.test.ts holds them to the same answers.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyBaseLogger, preParsingHookHandler } from 'fastify';
import type { Principal } from '../auth/principal.js';
import type { TokenVerifier } from '../auth/verifier.js';
import type { VerifyAnswer, VerifyQuestion } from '../domain/key-verdict.js';
import type { KeyVerifier } from '../keys/key-verifier.js';
import { countVerifyLane, observeRequest } from '../observability/metrics.js';
import { allowedOutright, principalKnownNow, type Rule } from './access.js';
import { MAY_BE_UNSTORABLE } from './json-parser.js';
import { internalBudget, type RateLimiting } from './rate-limit.js';
import { REQUEST_ID_HEADER, requestIdFor } from './request-id.js';
import { REQUEST_ID_LOG_LABEL, requestLine, writesRequestLines } from './request-log.js';
import { VerifyAnswerSchema, VerifyBody } from './schemas/api-key.js';
import { RefTo } from './schemas/parts.js';
import { validatorCompiler } from './validation.js';

export const VERIFY_PATH = '/v1/internal/api-keys/verify';
const VERIFY_ACCESS: Rule = { allow: ['service'] };

/** The bodies the lane read before handing their request to the route. */
const readBodies = new WeakMap<IncomingMessage, Buffer>();

/** The route's preParsing hook: a handed-over request's body, as the lane read it. */
const replayedBody: preParsingHookHandler = (request, _reply, payload, done) => {
  const body = readBodies.get(request.raw);
  done(null, body === undefined ? payload : Readable.from([body], { objectMode: false }));
};

export const keyVerifyRoutes: FastifyPluginAsyncTypebox<{ verifier: KeyVerifier }> = async (app, { verifier }) => {
  app.post(
    VERIFY_PATH,
    {
      config: { access: VERIFY_ACCESS },
      schema: {
        operationId: 'verifyApiKey',
        tags: ['api-keys'],
        summary: 'Verify a key, optionally for a product and a scope',
        body: VerifyBody,
        response: { 200: RefTo(VerifyAnswerSchema) },
      },
      preParsing: replayedBody,
    },
    // Not an async handler: Fastify sends a value returned synchronously at once, so a cached
    // verdict costs no promise and no microtask turn; a cache miss returns the load's promise.
    (request) => verifier.verify(request.body.key, { product: request.body.product, scope: request.body.scope }),
  );
};

// The media types the lane takes as they are sent; any other spelling goes to the route's parser.
const JSON_TYPES = new Set(['application/json', 'application/json; charset=utf-8', 'application/json;charset=utf-8']);
/** The largest body the lane reads (within the app's body limit); the route takes larger ones (a verify body is about 120 bytes). */
const LANE_BODY_MAX = 2048;
const CONTENT_LENGTH = /^[1-9][0-9]{0,3}$/;

export interface VerifyLaneOptions {
  verifier: KeyVerifier;
  tokens: TokenVerifier;
  rateLimits: RateLimiting | null;
  /** The app's body limit (BODY_LIMIT_BYTES): a body past it is the route's to refuse (413). */
  bodyLimitBytes: number;
  logger: FastifyBaseLogger;
  /** True once the app is closing: the lane's answers then end their connection, as the route's do. */
  closing(): boolean;
}

/** The request listener of the server: the lane first, then `router` (Fastify's) for what the lane does not answer. */
export function createVerifyLane(options: VerifyLaneOptions, router: RequestListener): RequestListener {
  const { verifier, tokens, logger } = options;
  const validBody = validatorCompiler({ schema: VerifyBody, method: 'POST', url: VERIFY_PATH, httpPart: 'body' }) as (
    body: unknown,
  ) => body is { key: string } & VerifyQuestion;
  const budget = internalBudget(options.rateLimits);
  const bodyMax = Math.min(LANE_BODY_MAX, options.bodyLimitBytes);

  // The bytes of each answer object given (the verifier hands out the same object for as long as
  // it holds), so a hot key's answer is serialized and encoded once.
  const encoded = new WeakMap<VerifyAnswer, { bytes: Buffer; length: string }>();
  const encode = (verdict: VerifyAnswer) => {
    let found = encoded.get(verdict);
    if (found === undefined) {
      const bytes = Buffer.from(JSON.stringify(verdict));
      encoded.set(verdict, (found = { bytes, length: String(bytes.length) }));
    }
    return found;
  };

  const handed = new WeakSet<IncomingMessage>();

  /** To the route; `counted`: the lane has counted it against the caller's budget, and it was allowed. */
  const handOver = (request: IncomingMessage, response: ServerResponse, body?: Buffer, counted = false) => {
    if (body !== undefined) readBodies.set(request, body);
    if (counted) budget!.handedOver(request);
    handed.add(request);
    countVerifyLane('handed_over');
    router(request, response);
  };

  // Code here runs outside Fastify's error handling, where a throw would end the process. A
  // request the lane failed is handed to the route, whose error handler answers and logs it if
  // it fails there too; one already answered or handed over is only logged.
  // `counted`: the lane counted it against the budget (and allowed it), so the route does not again.
  const failed = (request: IncomingMessage, response: ServerResponse, body: Buffer, error: unknown, counted = false) => {
    if (!response.headersSent && !handed.has(request)) return handOver(request, response, body, counted);
    logger.error({ err: error }, 'verify request failed outside the route');
  };

  // `principal` is the caller as found when the headers came: the one the route would have
  // authenticated and counted then, even if its token expires while the body arrives.
  const answer = (request: IncomingMessage, response: ServerResponse, body: Buffer, principal: Principal, started: number) => {
    const text = body.toString();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return handOver(request, response, body);
    }
    if (MAY_BE_UNSTORABLE.test(text) || !validBody(parsed)) return handOver(request, response, body);
    const respond = (counted: boolean) => {
      try {
        give(counted);
      } catch (error) {
        failed(request, response, body, error, counted);
      }
    };
    const give = (counted: boolean) => {
      const verdict = verifier.answerNow(parsed.key, { product: parsed.product, scope: parsed.scope });
      // The key's facts must be loaded: the route does that (one query however many wait for it).
      if (verdict === undefined) return handOver(request, response, body, counted);
      const payload = encode(verdict);
      const id = requestIdFor(request);
      const headers = ['content-type', 'application/json; charset=utf-8', 'content-length', payload.length, REQUEST_ID_HEADER, id];
      if (options.closing()) headers.push('connection', 'close');
      response.writeHead(200, headers).end(payload.bytes);
      countVerifyLane('answered');
      const durationMs = performance.now() - started;
      observeRequest('POST', VERIFY_PATH, 200, durationMs / 1000);
      if (writesRequestLines(logger.level)) {
        const line = requestLine({ method: 'POST', route: VERIFY_PATH, status: 200, durationMs, principal, named: undefined });
        logger.info({ [REQUEST_ID_LOG_LABEL]: id, ...line }, 'request');
      }
    };
    if (budget === null) return respond(false);
    // Past the budget, or a counter that cannot count: the route's own hook counts and answers.
    const outcome = budget.count(principal);
    if (!(outcome instanceof Promise)) return outcome.allowed ? respond(true) : handOver(request, response, body);
    outcome.then(
      (result) => (result.allowed ? respond(true) : handOver(request, response, body)),
      () => handOver(request, response, body),
    ).catch((error: unknown) => failed(request, response, body, error));
  };

  return (request, response) => {
    if (request.url !== VERIFY_PATH || request.method !== 'POST') return router(request, response);
    const started = performance.now();
    const { headers } = request;
    const length = headers['content-length'];
    const principal = principalKnownNow(request, tokens);
    if (
      principal === undefined ||
      !allowedOutright(principal, VERIFY_ACCESS) ||
      !JSON_TYPES.has(headers['content-type'] ?? '') ||
      headers['transfer-encoding'] !== undefined ||
      length === undefined ||
      !CONTENT_LENGTH.test(length) ||
      Number(length) > bodyMax
    ) {
      return handOver(request, response);
    }
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      try {
        answer(request, response, body, principal, started);
      } catch (error) {
        failed(request, response, body, error);
      }
    });
  };
}
