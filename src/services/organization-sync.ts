// Keeping each tenant's Keycloak organization in step with the registry: enabled while the tenant
// may be used, named as the tenant is, and carrying the attributes Keycloak's organization mapper
// puts into tokens (tenant_id, status, plan, products). A change queues its tenant in the change's
// own transaction (audit-trail.ts recordChange); syncQueuedOrganizations works the queue off, and
// a periodic reconcile queues every tenant so that an edit made in Keycloak by hand is repaired
// and reported as drift. Each sync is idempotent and retried with backoff until it succeeds.
import { usableProducts, USABLE_TENANT_STATUSES } from '../domain/entitlements.js';
import { tenantAt } from '../domain/lifecycle.js';
import { KeycloakError, TENANT_ATTRIBUTE, type KeycloakAdapter, type OrganizationState } from '../keycloak/adapter.js';
import type { Database } from '../store/database.js';
import { completeSync, failSync, leaseDueSyncs, type SyncRequest } from '../store/keycloak-sync.js';
import { loadTenantFacts, type TenantFacts } from '../store/tenant-facts.js';
import { lockTenantForKeyShare } from '../store/tenants.js';
import { recordChange, SYSTEM_ORIGIN } from './audit-trail.js';

/** What the tenant's organization should be right now. */
export function desiredOrganization(facts: TenantFacts, now: Date): OrganizationState {
  const tenant = tenantAt(facts.tenant, now);
  const { entitlements } = facts;
  const attributes: Record<string, string[]> = {
    [TENANT_ATTRIBUTE]: [tenant.id],
    status: [tenant.status],
    products: usableProducts(tenant.status, entitlements, now),
  };
  if (tenant.plan !== null) attributes.plan = [tenant.plan];
  return { name: tenant.name, enabled: USABLE_TENANT_STATUSES.includes(tenant.status), attributes };
}

// A round leases at most ROUND_SIZE rows for LEASE_MS, and works them one after another, each
// within SYNC_TIMEOUT_MS: the lease outlasts the round, so no row is re-leased while in hand. A
// replica that dies mid-round frees its rows by the lease's end.
const ROUND_SIZE = 5;
const LEASE_MS = 2 * ROUND_SIZE * 10_000;
// Retries back off from 2 s to at most 15 minutes, and go on until Keycloak takes the change.
const RETRY_FIRST_MS = 2_000;
const RETRY_MAX_MS = 15 * 60_000;
// One Keycloak round trip per step should take milliseconds; ten seconds is a hung Keycloak.
const SYNC_TIMEOUT_MS = 10_000;

export const retryDelayMs = (attempts: number) => Math.min(RETRY_FIRST_MS * 2 ** Math.min(attempts, 20), RETRY_MAX_MS);

export interface SyncDeps {
  db: Database;
  keycloak: KeycloakAdapter;
  clock: () => Date;
  /** A reconcile found the organization out of step (someone edited it in Keycloak). */
  onDrift: (tenantId: string, changed: string[]) => void;
}

async function syncOne(deps: SyncDeps, request: SyncRequest): Promise<void> {
  const facts = await loadTenantFacts(deps.db, { id: request.tenant_id });
  const organizationId = facts?.tenant.keycloak_org_id;
  let changed: string[] = [];
  if (facts && organizationId) {
    try {
      ({ changed } = await deps.keycloak.syncOrganization(organizationId, desiredOrganization(facts, deps.clock()), AbortSignal.timeout(SYNC_TIMEOUT_MS)));
    } catch (error) {
      const reason = error instanceof KeycloakError ? `${error.type} at ${error.step}: ${error.message}` : 'unexpected failure';
      await failSync(deps.db, request, reason, new Date(deps.clock().getTime() + retryDelayMs(request.attempts)));
      if (!(error instanceof KeycloakError)) throw error;
      return;
    }
  }
  const now = deps.clock();
  await deps.db.transaction(async (tx) => {
    // The tenant first, then its queue row: the order every change takes (its row lock, then
    // requestSync), so the two never wait on each other in opposite orders.
    const tenant = await lockTenantForKeyShare(tx, request.tenant_id);
    await completeSync(tx, request, now);
    if (changed.length === 0 || !tenant) return;
    await recordChange(
      tx,
      SYSTEM_ORIGIN,
      {
        action: 'keycloak.organization_synced',
        crud: 'u',
        tenant,
        target: { id: organizationId!, type: 'keycloak_organization', name: tenant.slug },
        fields: { changed: changed.join(','), reason: request.reason },
      },
      now,
    );
  });
  if (request.reason === 'reconcile' && changed.length > 0) deps.onDrift(request.tenant_id, changed);
}

/** One round: syncs up to `limit` (at most ROUND_SIZE) due organizations, one after another; returns how many. */
export async function syncQueuedOrganizations(deps: SyncDeps, limit = ROUND_SIZE): Promise<number> {
  const now = deps.clock();
  const due = await leaseDueSyncs(deps.db, now, new Date(now.getTime() + LEASE_MS), Math.min(limit, ROUND_SIZE));
  for (const request of due) await syncOne(deps, request);
  return due.length;
}
