// A headless product: its API answers only requests that carry an API key the registry accepts
// for this product, verified in this process (@tenant-registry/verify), and knows the tenant of
// each caller from the verdict. /healthz stays open, outside the protected context.
import Fastify, { type FastifyInstance } from 'fastify';
import type { KeyVerifier } from '@tenant-registry/verify';
import { apiKeyPlugin } from '@tenant-registry/verify/fastify';

export const PRODUCT = 'compliance';

export async function buildProduct(verifier: KeyVerifier): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  app.get('/healthz', async () => ({ ok: true }));
  await app.register(async (api) => {
    await api.register(apiKeyPlugin, { verifier, product: PRODUCT });
    api.get('/v1/documents', async (request) => ({
      tenant: request.apiKey?.slug,
      documents: [{ id: 'doc-1', title: 'Risk assessment' }],
    }));
    api.get('/v1/reports', async (request) => ({ tenant: request.apiKey?.slug, reports: [] }));
  });
  return app;
}
