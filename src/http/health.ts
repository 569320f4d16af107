// Probes for the orchestrator. Liveness says the process answers at all and touches nothing, so
// a database outage never gets healthy replicas restarted. Readiness says this replica can serve
// traffic right now, which needs the database; Keycloak is reported but does not decide it, since
// only provisioning needs Keycloak and provisioning failures are recorded and retried.
//
// The token issuer is reported and does not decide readiness either. It is one for every
// replica: down or misconfigured, it is so for all of them at once, and taking them all out of
// the load balancer would turn a 503 that names the reason (and /readyz saying it) into a
// connection nobody answers, and stall the very rollout that fixes the configuration. API key
// verification and the probes need no token and keep working meanwhile.
import { setTimeout as delay } from 'node:timers/promises';
import type { IssuerDiscovery, IssuerStatus } from '../auth/discovery.js';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { KeycloakAdapter, KeycloakHealth } from '../keycloak/adapter.js';
import type { Database } from '../store/database.js';
import { isUnavailable } from '../store/errors.js';
import { AppError } from '../problems.js';
import { LivenessSchema, ReadinessSchema, type IssuerHealth } from './schemas/health.js';
import { RefTo } from './schemas/parts.js';

// Probes come every few seconds from every orchestrator node; Keycloak is asked at most this often.
const KEYCLOAK_CHECK_INTERVAL_MS = 10_000;
// A probe waits this long at most for a discovery of the issuer that is due (its own timeout is
// longer); past it the status known so far is reported. Kubernetes gives a probe 1 s by default.
const ISSUER_CHECK_WAIT_MS = 500;

export interface HealthOptions {
  db: Database;
  keycloak: KeycloakAdapter;
  shutdown: { draining: boolean };
  /** The token issuer to report: its discovery, 'dev' for the development issuer, null for none to report. */
  issuer: IssuerDiscovery | 'dev' | null;
}

/** The issuer's status for readiness, waiting a moment for a discovery that is due. */
async function issuerStatus(issuer: IssuerDiscovery): Promise<IssuerStatus> {
  const abort = new AbortController();
  const waited = delay(ISSUER_CHECK_WAIT_MS, undefined, { signal: abort.signal }).catch(() => undefined);
  await Promise.race([issuer.check(), waited]);
  abort.abort();
  return issuer.status();
}

interface IssuerReport {
  check: IssuerHealth;
  detail?: string;
}

const DEV_ISSUER_REPORT: IssuerReport = { check: 'dev' };

function issuerReport(status: IssuerStatus): IssuerReport {
  switch (status.state) {
    case 'up':
      return { check: 'up' };
    case 'unknown':
      return { check: 'down', detail: 'the first discovery of the issuer has not finished yet' };
    default:
      return { check: status.state, detail: status.reason };
  }
}

export const healthRoutes: FastifyPluginAsyncTypebox<HealthOptions> = async (app, { db, keycloak, shutdown, issuer }) => {
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
        response: { 200: RefTo(LivenessSchema) },
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
        summary: 'Readiness: the database answers a query; Keycloak and the token issuer are reported, not required',
        response: { 200: RefTo(ReadinessSchema) },
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
      const [keycloakCheck, issuerCheck] = await Promise.all([
        keycloakStatus(),
        issuer === null ? undefined : issuer === 'dev' ? DEV_ISSUER_REPORT : issuerStatus(issuer).then(issuerReport),
      ]);
      return {
        status: 'ready' as const,
        checks: { database: 'up' as const, keycloak: keycloakCheck, ...(issuerCheck ? { issuer: issuerCheck.check } : {}) },
        ...(issuerCheck?.detail ? { details: { issuer: issuerCheck.detail } } : {}),
      };
    },
  );
};
