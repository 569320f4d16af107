// POST /v1/internal/api-keys/verify: headless products ask this on every request they receive.
// It always answers 200 with a verdict; a database outage on a cache miss is the only error.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { KeyVerifier } from '../keys/key-verifier.js';
import { VerifyAnswerSchema, VerifyBody } from './schemas/api-key.js';
import { RefTo } from './schemas/parts.js';

export const keyVerifyRoutes: FastifyPluginAsyncTypebox<{ verifier: KeyVerifier }> = async (app, { verifier }) => {
  app.post(
    '/v1/internal/api-keys/verify',
    {
      config: { access: { allow: ['service'] } },
      schema: {
        operationId: 'verifyApiKey',
        tags: ['api-keys'],
        summary: 'Verify a key, optionally for a product and a scope',
        body: VerifyBody,
        response: { 200: RefTo(VerifyAnswerSchema) },
      },
    },
    // Not an async handler: Fastify sends a value returned synchronously at once, so a cached
    // verdict costs no promise and no microtask turn (measurable on the platform's hottest
    // call); a cache miss returns the load's promise.
    (request) => verifier.verify(request.body.key, { product: request.body.product, scope: request.body.scope }),
  );
};
