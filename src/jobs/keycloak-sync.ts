// Runs Keycloak organization synchronisation (services/organization-sync.ts): every second it
// works off the queued tenants, so a change reaches Keycloak within seconds of its commit; every
// reconcile interval it queues every tenant with an organization, so an organization edited in
// Keycloak by hand is put back and reported. Any number of replicas may run it: each leases the
// rows it works on (FOR UPDATE SKIP LOCKED), so no organization is synced by two at once.
import { keycloakDrift } from '../observability/metrics.js';
import { syncQueuedOrganizations, type SyncDeps } from '../services/organization-sync.js';
import { requestSyncOfAll } from '../store/keycloak-sync.js';
import type { Job } from './trial-expiry.js';

export const SYNC_INTERVAL_MS = 1_000;

export interface KeycloakSyncOptions extends Omit<SyncDeps, 'onDrift'> {
  /** How often every organization is checked; 0: never (changes are still synced). */
  reconcileIntervalMs: number;
  intervalMs?: number;
  onDrift: (tenantId: string, changed: string[]) => void;
  onError: (error: unknown) => void;
}

export function startKeycloakSyncJob(options: KeycloakSyncOptions): Job {
  const deps: SyncDeps = {
    ...options,
    onDrift: (tenantId, changed) => {
      keycloakDrift.inc();
      options.onDrift(tenantId, changed);
    },
  };
  let running: Promise<unknown> = Promise.resolve();
  let busy = false;
  const round = () => {
    // A round slower than the interval (Keycloak timing out) is not joined by another.
    if (busy) return;
    busy = true;
    running = syncQueuedOrganizations(deps)
      .catch(options.onError)
      .finally(() => (busy = false));
  };
  const timer = setInterval(round, options.intervalMs ?? SYNC_INTERVAL_MS);
  timer.unref();
  const reconcile =
    options.reconcileIntervalMs > 0
      ? setInterval(() => {
          requestSyncOfAll(options.db, options.clock()).catch(options.onError);
        }, options.reconcileIntervalMs)
      : null;
  reconcile?.unref();
  return {
    async stop() {
      clearInterval(timer);
      if (reconcile) clearInterval(reconcile);
      await running;
    },
  };
}
