// The Fastify plugin: every request of the context it is registered in must carry a key the
// verifier accepts; a refusal answers problem+json (http.ts) before any handler runs, and an
// accepted request carries its verdict as request.apiKey. Fastify is a type-only import here:
// the package depends on no framework, and the plugin is a plain function Fastify calls.
//
//   app.register(apiKeyPlugin, { verifier, product: 'compliance' });
//
// It opts out of encapsulation (as fastify-plugin does), so it protects the context that
// registers it: register it inside a child context to leave some routes (health) open.
import type { FastifyPluginCallback, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import type { Answer, Question } from './answer.js';
import { questionFor, refusalFor, verifyRequest } from './http.js';
import type { KeyVerifier } from './verifier.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verdict on the request's API key (always valid where a handler sees it). */
    apiKey: Answer | null;
  }
}

export interface ApiKeyPluginOptions {
  verifier: KeyVerifier;
  /** The product every request must be entitled to; the verifier's default when absent. */
  product?: string;
  /** The scope a request needs (a route's config can say it per route); none when absent. */
  scope?: string | ((request: FastifyRequest) => string | undefined);
}

/** Lets an accepted request on, or answers the refusal (the request then goes no further: no next()). */
function settle(request: FastifyRequest, reply: FastifyReply, next: HookHandlerDoneFunction, answer: Answer | null): void {
  if (answer?.valid) {
    request.apiKey = answer;
    return next();
  }
  const refusal = refusalFor(answer);
  void reply.code(refusal.status).headers(refusal.headers).send(refusal.body);
}

function fail(next: HookHandlerDoneFunction, error: Error): void {
  next(error);
}

const plugin: FastifyPluginCallback<ApiKeyPluginOptions> = (app, options, done) => {
  const { verifier } = options;
  let questionOf: (request: FastifyRequest) => Question;
  try {
    questionOf = questionFor(options.product, options.scope);
  } catch (error) {
    // A callback plugin reports through done(): a throw here would not reach register().
    return done(error as Error);
  }
  app.decorateRequest('apiKey', null);
  // Callback style, settling at once when the verdict is held: no promise and no closure on a hot request.
  app.addHook('onRequest', (request, reply, next) => verifyRequest(verifier, questionOf, request, reply, next, settle, fail));
  done();
};

// What fastify-plugin sets: no encapsulation, and a name in errors and the plugin tree.
Object.assign(plugin, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: '@tenant-registry/verify',
});

export const apiKeyPlugin = plugin;
export default apiKeyPlugin;
