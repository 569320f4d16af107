// GET /metrics: the Prometheus text format of observability/metrics.ts. Served here unless
// METRICS_ADDR puts it on its own listener (service.ts), out of reach of the public port.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { metricsRegistry } from '../observability/metrics.js';

export const metricsRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/metrics',
    {
      config: { access: { public: true } },
      schema: {
        operationId: 'metrics',
        tags: ['health'],
        summary: 'Prometheus metrics (here unless METRICS_ADDR gives them a listener of their own)',
        produces: ['text/plain'],
        response: { 200: Type.String({ description: 'Prometheus text exposition format 0.0.4' }) },
      },
    },
    async (_request, reply) => reply.type(metricsRegistry.contentType).send(await metricsRegistry.metrics()),
  );
};
