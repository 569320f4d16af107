// Probes for the orchestrator. Liveness says the process answers at all and touches nothing, so
// a database outage never gets healthy replicas restarted. Readiness says this replica can serve
// traffic right now, which needs the database; Keycloak is reported but does not decide it, since
// only provisioning needs Keycloak and provisioning failures are recorded and retried.
import { KEYCLOAK_HEALTH } from '../keycloak/adapter.js';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { KeycloakAdapter, KeycloakHealth } from '../keycloak/adapter.js';
import type { Database } from '../store/database.js';
import { isUnavailable } from '../store/errors.js';
import { AppError } from '../problems.js';

// Probes come every few seconds from every orchestrator node; Keycloak is asked at most this often.
const KEYCLOAK_CHECK_INTERVAL_MS = 10_000;

const Liveness = Type.Object({ status: Type.Literal('ok') }, { additionalProperties: false, description: 'The process is alive' });
const Readiness = Type.Object(
  {
    status: Type.Literal('ready'),
    checks: Type.Object(
      {
        database: Type.Literal('up'),
        keycloak: Type.Enum(KEYCLOAK_HEALTH, {
          description: 'down degrades provisioning only; mock: the dev stand-in; disabled: provisioning is turned off (KEYCLOAK_PROVISIONING=off)',
        }),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false, description: 'The database answered' },
);

export interface HealthOptions {
  db: Database;
  keycloak: KeycloakAdapter;
  shutdown: { draining: boolean };
}

export const healthRoutes: FastifyPluginAsyncTypebox<HealthOptions> = async (app, { db, keycloak, shutdown }) => {
  let keycloakHealth: { value: KeycloakHealth; checkedAt: number } | undefined;
  let checking: Promise<KeycloakHealth> | undefined;
  const keycloakStatus = async (): Promise<KeycloakHealth> => {
    if (keycloakHealth && Date.now() - keycloakHealth.checkedAt < KEYCLOAK_CHECK_INTERVAL_MS) return keycloakHealth.value;
    checking ??= keycloak.health().finally(() => (checking = undefined));
    const value = await checking;
    keycloakHealth = { value, checkedAt: Date.now() };
    return value;
  };

  app.get(
    '/healthz',
    {
      config: { access: { public: true } },
      schema: {
        operationId: 'liveness',
        tags: ['health'],
        summary: 'Liveness: the process answers',
        response: { 200: Liveness },
      },
    },
    () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      config: { access: { public: true }, problems: ['unavailable', 'draining'] },
      schema: {
        operationId: 'readiness',
        tags: ['health'],
        summary: 'Readiness: the database answers a query; Keycloak is reported, not required',
        response: { 200: Readiness },
      },
    },
    async () => {
      if (shutdown.draining) {
        throw new AppError('draining', { detail: 'this replica is shutting down; send requests elsewhere' });
      }
      try {
        await db.ping();
      } catch (error) {
        // Whatever the cause, a replica without its database is not ready; the cause is logged.
        throw isUnavailable(error)
          ? error
          : new AppError('unavailable', { detail: 'the database is unavailable', cause: error });
      }
      return { status: 'ready' as const, checks: { database: 'up' as const, keycloak: await keycloakStatus() } };
    },
  );
};
