// Probes for the orchestrator. Liveness says the process answers at all and touches nothing, so
// a database outage never gets healthy replicas restarted; readiness says this replica can serve
// traffic right now, which needs the database.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { Database } from '../store/database.js';
import { isUnavailable } from '../store/errors.js';
import { AppError } from './problem.js';
import { problemResponses } from './schemas/problem.js';

const Status = (value: string, description: string) =>
  Type.Object({ status: Type.Literal(value) }, { additionalProperties: false, description });

export const healthRoutes: FastifyPluginAsyncTypebox<{ db: Database }> = async (app, { db }) => {
  app.get(
    '/healthz',
    {
      config: { access: { public: true } },
      schema: {
        operationId: 'liveness',
        tags: ['health'],
        summary: 'Liveness: the process answers',
        response: { 200: Status('ok', 'The process is alive') },
      },
    },
    () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      config: { access: { public: true } },
      schema: {
        operationId: 'readiness',
        tags: ['health'],
        summary: 'Readiness: the database answers a query',
        response: { 200: Status('ready', 'The database answered'), ...problemResponses(503) },
      },
    },
    async () => {
      try {
        await db.ping();
      } catch (error) {
        // Whatever the cause, a replica without its database is not ready; the cause is logged.
        throw isUnavailable(error)
          ? error
          : new AppError(503, 'unavailable', { detail: 'the database is unavailable', cause: error });
      }
      return { status: 'ready' as const };
    },
  );
};
