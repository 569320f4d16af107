// The organization follows its tenant, against a real Keycloak: the sync job (as service.ts runs it)
// writes status, plan and usable products onto the organization within seconds of a change, so
// the next token Keycloak issues carries them through its own organization mapper; cancelling
// disables the organization (Keycloak then leaves it out of tokens) and activating enables it;
// an organization edited by hand in Keycloak is put back by the reconcile and reported as drift.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKeycloakSyncJob } from '../../src/jobs/keycloak-sync.js';
import type { Job } from '../../src/jobs/trial-expiry.js';
import { requestSyncOfAll } from '../../src/store/keycloak-sync.js';
import { recordFigures } from '../reliability/figures.js';
import { startRegistryWithKeycloak, type LiveTenant, type RegistryWithKeycloak } from '../support/keycloak-registry.js';
import { claimsOf, KEYCLOAK_BOOT_WAIT_MS } from '../support/keycloak-server.js';

interface Organization {
  id: string;
  name: string;
  enabled: boolean;
  attributes?: Record<string, string[]>;
}

let live: RegistryWithKeycloak;
let job: Job;
const drift: Array<{ tenantId: string; changed: string[] }> = [];
const errors: unknown[] = [];
const syncMs: Record<string, number> = {};

beforeAll(async () => {
  live = await startRegistryWithKeycloak();
  job = startKeycloakSyncJob({
    db: live.server.db,
    keycloak: live.adapter,
    clock: () => new Date(),
    // The test asks for reconciles itself.
    reconcileIntervalMs: 0,
    intervalMs: 250,
    onDrift: (tenantId, changed) => drift.push({ tenantId, changed }),
    onError: (error) => errors.push(error),
  });
}, KEYCLOAK_BOOT_WAIT_MS + 60_000);

afterAll(async () => {
  await job?.stop();
  await live?.close();
  recordFigures('Keycloak organization sync against the real server', 'changed tenants through the API with the sync job running, and timed until Keycloak held the change', [
    ...Object.entries(syncMs).map(([label, ms]) => ({ label: `${label} (ms)`, value: Math.round(ms) })),
  ]);
});

const organizationOf = async (tenant: LiveTenant) => (await live.realm.admin('GET', `/organizations/${tenant.keycloak_org_id}`)).body as Organization;

/** Polls Keycloak until `done` holds of the organization; returns how long it took. */
async function until(tenant: LiveTenant, done: (organization: Organization) => boolean, timeoutMs = 15_000): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (done(await organizationOf(tenant))) return performance.now() - started;
    if (performance.now() - started > timeoutMs) throw new Error(`Keycloak did not get there within ${timeoutMs} ms: ${JSON.stringify(await organizationOf(tenant))}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('the organization follows its tenant', () => {
  let tenant: LiveTenant;
  const email = `it.${randomBytes(4).toString('hex')}@sync.test`;
  const token = () => live.realm.userToken(email, live.password, 'organization');

  beforeAll(async () => {
    ({ tenant } = await live.createTenant(email));
    await live.acceptInvitation(email);
  });

  it('carries the tenant id, status and usable products right after provisioning', async () => {
    syncMs.provisioned = await until(tenant, (o) => o.attributes?.status?.[0] === tenant.status);
    expect(await organizationOf(tenant)).toMatchObject({
      enabled: true,
      attributes: { tenant_id: [tenant.id], status: [tenant.status] },
    });
    expect(claimsOf(await token()).organization).toMatchObject({ [tenant.slug]: { id: tenant.keycloak_org_id, status: [tenant.status] } });
  });

  it('a grant changes the products of the next token, within seconds', async () => {
    const before = (claimsOf(await token()).organization as Record<string, { products?: string[] }>)[tenant.slug]!.products ?? [];
    expect(before).not.toContain('risk');
    expect((await live.operator.request('PUT', `/v1/entitlements/${tenant.id}/risk`, { body: {} })).status).toBe(200);
    syncMs.grant = await until(tenant, (o) => o.attributes?.products?.includes('risk') === true);
    const after = claimsOf(await token()).organization as Record<string, { products: string[] }>;
    expect(after[tenant.slug]!.products).toContain('risk');
  });

  it('a revoke takes the product out again', async () => {
    expect((await live.operator.request('DELETE', `/v1/entitlements/${tenant.id}/risk`)).status).toBe(204);
    syncMs.revoke = await until(tenant, (o) => !(o.attributes?.products ?? []).includes('risk'));
    const claim = claimsOf(await token()).organization as Record<string, { products?: string[] }>;
    expect(claim[tenant.slug]!.products ?? []).not.toContain('risk');
  });

  it('cancel disables the organization: the next token carries it no more', async () => {
    expect((await live.operator.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(200);
    await until(tenant, (o) => o.attributes?.status?.[0] === 'active');
    expect((await live.operator.post(`/v1/tenants/${tenant.id}/cancel`)).status).toBe(200);
    syncMs.cancel = await until(tenant, (o) => o.enabled === false);
    expect((await organizationOf(tenant)).attributes).toMatchObject({ status: ['frozen'] });
    expect((await organizationOf(tenant)).attributes?.products).toBeUndefined();
    expect(claimsOf(await token()).organization).toBeUndefined();
  });

  it('activate enables it again, and the token carries it again', async () => {
    expect((await live.operator.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(200);
    syncMs.activate = await until(tenant, (o) => o.enabled && o.attributes?.status?.[0] === 'active');
    expect(claimsOf(await token()).organization).toMatchObject({ [tenant.slug]: { id: tenant.keycloak_org_id, status: ['active'] } });
  });

  it('each sync that changed something is audited as the system, with what it changed', async () => {
    const page = await live.operator.get<{ items: Array<{ action: string; actor: { id: string }; fields: Record<string, string> }> }>(
      `/v1/audit?tenant_id=${tenant.id}&action=keycloak.organization_synced`,
    );
    expect(page.status).toBe(200);
    expect(page.body.items.length).toBeGreaterThanOrEqual(5);
    for (const event of page.body.items) {
      expect(event.actor.id).toBe('system');
      expect(event.fields.reason).toBe('change');
      expect(event.fields.changed).toMatch(/^(name|enabled|attributes\.\w+)(,(name|enabled|attributes\.\w+))*$/);
    }
  });

  it('an organization edited by hand is put back by the reconcile and reported as drift', async () => {
    const organization = await organizationOf(tenant);
    const edited = { ...organization, enabled: false, attributes: { ...organization.attributes, status: ['active'], products: ['everything'], note: ['kept'] } };
    expect((await live.realm.admin('PUT', `/organizations/${tenant.keycloak_org_id}`, edited)).status).toBe(204);

    expect(await requestSyncOfAll(live.server.db, new Date())).toBeGreaterThanOrEqual(1);
    syncMs.reconcile = await until(tenant, (o) => o.enabled && !(o.attributes?.products ?? []).includes('everything'));
    const repaired = await organizationOf(tenant);
    // What the registry does not own is left as it was.
    expect(repaired.attributes?.note).toEqual(['kept']);
    expect(drift).toContainEqual({ tenantId: tenant.id, changed: expect.arrayContaining(['enabled', 'attributes.products']) as string[] });
    expect(errors).toEqual([]);
  });
});
