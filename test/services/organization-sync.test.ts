// The Keycloak organization sync queue, on both drivers, with the mock adapter standing in for
// Keycloak and a wrapper making it fail on demand (the real server is in test/keycloak-live): a
// change queues its tenant in its own transaction, a failure is retried with growing delays until
// it succeeds, a change made while a sync runs is synced too, and nothing is queued for a tenant
// without an organization.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { KeycloakError, type KeycloakAdapter, type OrganizationState } from '../../src/keycloak/adapter.js';
import { MockAdapter } from '../../src/keycloak/mock-adapter.js';
import { desiredOrganization, retryDelayMs, syncQueuedOrganizations } from '../../src/services/organization-sync.js';
import { completeSync, failSync, leaseDueSyncs, pendingSyncs } from '../../src/store/keycloak-sync.js';
import { loadTenantFacts } from '../../src/store/tenant-facts.js';
import { eachDriver } from '../support/drivers.js';
import { randomSlug } from '../support/factories.js';
import { startServer, type TestServer } from '../support/server.js';

eachDriver('Keycloak organization sync', (driver) => {
  let server: TestServer;
  const mock = new MockAdapter('http://keycloak.test/realms/test');
  let failuresLeft = 0;
  const calls: OrganizationState[] = [];
  // Keycloak that answers 503 `failuresLeft` times, then does what the mock does.
  const flaky: KeycloakAdapter = {
    kind: 'mock',
    provision: (request) => mock.provision(request),
    health: () => mock.health(),
    async syncOrganization(id, desired) {
      calls.push(desired);
      if (failuresLeft > 0) {
        failuresLeft -= 1;
        throw new KeycloakError('unavailable', 'sync', 'Keycloak answered 503', 503);
      }
      return mock.syncOrganization(id, desired);
    },
  };
  let now = new Date('2030-01-01T00:00:00Z');
  const deps = () => ({ db: server.db, keycloak: flaky, clock: () => now, onDrift: () => {} });
  const pendingOf = async (tenantId: string) => (await pendingSyncs(server.db)).find((row) => row.tenant_id === tenantId);

  beforeAll(async () => {
    server = await startServer(driver, { keycloak: { adapter: flaky, budgetMs: 5_000 }, clock: () => now });
  });
  afterAll(async () => {
    await server?.close();
  });

  const createTenant = async (withAdmin: boolean) => {
    const slug = randomSlug('sync');
    const created = await server.api.post<{ tenant: { id: string; keycloak_org_id: string | null } }>('/v1/tenants', {
      body: { slug, name: `Sync ${slug}`, ...(withAdmin ? { admin_email: `admin@${slug}.test` } : {}) },
    });
    expect(created.status).toBe(201);
    return created.body.tenant;
  };

  it('queues nothing for a tenant without an organization', async () => {
    const tenant = await createTenant(false);
    expect((await server.api.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(200);
    expect(await pendingOf(tenant.id)).toBeUndefined();
  });

  it('queues a provisioned tenant in the provisioning transaction, and syncs it', async () => {
    const tenant = await createTenant(true);
    expect(await pendingOf(tenant.id)).toMatchObject({ reason: 'change', attempts: 0 });
    await syncQueuedOrganizations(deps());
    expect(await pendingOf(tenant.id)).toBeUndefined();
    const desired = desiredOrganization((await loadTenantFacts(server.db, { id: tenant.id }))!, now);
    expect(desired).toMatchObject({ enabled: true, attributes: { tenant_id: [tenant.id], status: ['trial'], products: [] } });
    // Empty attributes are left off the organization rather than written as [].
    expect(mock.states.get(tenant.keycloak_org_id!)).toEqual({ name: desired.name, enabled: true, attributes: { tenant_id: [tenant.id], status: ['trial'] } });
  });

  it('retries a failure with growing delays until Keycloak takes it', async () => {
    const tenant = await createTenant(true);
    failuresLeft = 2;
    await syncQueuedOrganizations(deps());
    let pending = (await pendingOf(tenant.id))!;
    expect(pending).toMatchObject({ attempts: 1, last_error: 'unavailable at sync: Keycloak answered 503' });
    expect(pending.next_attempt_at.getTime() - now.getTime()).toBe(retryDelayMs(0));

    // Not due yet: nothing is tried.
    const tries = calls.length;
    await syncQueuedOrganizations(deps());
    expect(calls.length).toBe(tries);

    now = new Date(pending.next_attempt_at.getTime());
    await syncQueuedOrganizations(deps());
    pending = (await pendingOf(tenant.id))!;
    expect(pending.attempts).toBe(2);
    expect(pending.next_attempt_at.getTime() - now.getTime()).toBe(retryDelayMs(1));
    expect(retryDelayMs(1)).toBeGreaterThan(retryDelayMs(0));

    now = new Date(pending.next_attempt_at.getTime());
    await syncQueuedOrganizations(deps());
    expect(await pendingOf(tenant.id)).toBeUndefined();
    expect(mock.states.get(tenant.keycloak_org_id!)?.attributes.status).toEqual(['trial']);
  });

  it('a change committed while its tenant is being synced is synced after it', async () => {
    const tenant = await createTenant(true);
    // The change lands between the lease and the end of the sync.
    const racing: KeycloakAdapter = {
      ...flaky,
      async syncOrganization(id, desired) {
        // Same clock reading as the lease: only the version tells the change apart.
        if (desired.attributes.status?.[0] === 'trial') {
          expect((await server.api.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(200);
        }
        return mock.syncOrganization(id, desired);
      },
    };
    await syncQueuedOrganizations({ ...deps(), keycloak: racing });
    expect(await pendingOf(tenant.id)).toMatchObject({ reason: 'change' });
    await syncQueuedOrganizations({ ...deps(), keycloak: racing });
    expect(await pendingOf(tenant.id)).toBeUndefined();
    expect(mock.states.get(tenant.keycloak_org_id!)).toMatchObject({ enabled: true, attributes: { status: ['active'] } });
  });

  it('a row leased by one worker is not leased by another until its lease ends, even after a new change', async () => {
    const tenant = await createTenant(true);
    const [held] = await leaseDueSyncs(server.db, now, new Date(now.getTime() + 60_000), 100).then((rows) => rows.filter((row) => row.tenant_id === tenant.id));
    expect(held).toBeDefined();
    expect((await server.api.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(200);
    const other = await leaseDueSyncs(server.db, now, new Date(now.getTime() + 60_000), 100);
    expect(other.map((row) => row.tenant_id)).not.toContain(tenant.id);
    // The holder completes: the newer change keeps the row, released and due.
    expect(await server.db.transaction((tx) => completeSync(tx, held!, now))).toBe(false);
    const again = await leaseDueSyncs(server.db, now, new Date(now.getTime() + 60_000), 100);
    expect(again.map((row) => row.tenant_id)).toContain(tenant.id);
    // A stale holder can neither complete nor fail the new lease.
    expect(await server.db.transaction((tx) => completeSync(tx, held!, now))).toBe(false);
    await failSync(server.db, held!, 'stale', new Date(now.getTime() + 1_000_000));
    expect(await pendingOf(tenant.id)).toMatchObject({ attempts: 0, last_error: null });
    const mine = again.find((row) => row.tenant_id === tenant.id)!;
    expect(await server.db.transaction((tx) => completeSync(tx, mine, now))).toBe(true);
  });

  it('a cancelled tenant has its organization disabled, with no products', async () => {
    const tenant = await createTenant(true);
    expect((await server.api.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(200);
    expect((await server.api.post(`/v1/tenants/${tenant.id}/cancel`)).status).toBe(200);
    await syncQueuedOrganizations(deps());
    expect(mock.states.get(tenant.keycloak_org_id!)).toMatchObject({ enabled: false, attributes: { status: ['frozen'] } });
    expect(mock.states.get(tenant.keycloak_org_id!)?.attributes.products).toBeUndefined();
  });
});
