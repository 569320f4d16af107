// A second reference for the verify benchmark, run as its own process: Fastify 5 with nothing of
// the service around it. One route at the verify path, with a body schema and a response schema
// of the same shape as the real ones (so it pays for Ajv validation and fast-json-stringify), no
// logger, no hooks, no authentication, answering the object in BARE_BODY. Between the bare
// node:http server and the service, it shows what the framework alone costs.
import Fastify from 'fastify';

const answer = JSON.parse(process.env.BARE_BODY ?? '{"valid":true,"code":"VALID"}') as Record<string, unknown>;
const text = { type: 'string' };

const app = Fastify({ logger: false });
app.post(
  '/v1/internal/api-keys/verify',
  {
    schema: {
      body: {
        type: 'object',
        properties: { key: { type: 'string', maxLength: 200 }, product: text, scope: text },
        required: ['key'],
        additionalProperties: false,
      },
      response: {
        200: {
          type: 'object',
          properties: {
            valid: { type: 'boolean' },
            code: text,
            key_id: text,
            tenant_id: text,
            slug: text,
            tenant_status: text,
            plan: { type: ['string', 'null'] },
            scopes: { type: 'array', items: text },
            products: { type: 'array', items: text },
            expires_at: { type: ['string', 'null'] },
          },
        },
      },
    },
  },
  async () => answer,
);

const address = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`${JSON.stringify({ port: Number(new URL(address).port) })}\n`);

process.once('SIGTERM', () => process.exit(0));
