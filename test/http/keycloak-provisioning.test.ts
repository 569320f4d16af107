// Keycloak provisioning end to end: the registry's HTTP API with an HttpAdapter pointed at the
// Keycloak stub. A tenant is created whatever Keycloak does, within the budget; a failure is
// recorded on the tenant and in the audit log and the retry endpoint completes it without
// duplicates. The mock adapter's invite link is answered in dev only; with provisioning turned off
// nothing is claimed sent; /readyz reports Keycloak.
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AuditEvent } from '../../src/http/schemas/audit.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { DisabledAdapter } from '../../src/keycloak/disabled-adapter.js';
import { HttpAdapter } from '../../src/keycloak/http-adapter.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant, randomSlug } from '../support/factories.js';
import { problemOf, type Answer, type Client } from '../support/http.js';
import { startKeycloakStub, type FaultPattern, type KeycloakStub, type StubFault } from '../support/keycloak-stub.js';
import { startServer, startServerOn, type StartedApp, type TestServer } from '../support/server.js';

// The budget is smaller than one call's timeout, so a hang is cut by the budget.
const BUDGET_MS = 1_500;
const CALL_TIMEOUT_MS = 5_000;
// What a failed provisioning may add to a tenant creation beyond the budget.
const MARGIN_MS = 1_000;
const REALM_PATH = '/admin/realms/breakpilot-dev';

interface Created {
  tenant: Tenant;
  invite_url?: string;
}

const adapterFor = (stub: KeycloakStub, callTimeoutMs = CALL_TIMEOUT_MS) =>
  new HttpAdapter({
    baseUrl: stub.url,
    realm: stub.realm,
    clientId: stub.clientId,
    clientSecret: stub.clientSecret,
    itAdminRole: 'IT_ADMIN',
    inviteLifespanSeconds: 3 * 24 * 60 * 60,
    callTimeoutMs,
  });

const problemIn = (answer: Answer<unknown>) => problemOf(answer as Answer);

const newTenantBody = () => {
  const slug = randomSlug('kc');
  return { slug, name: `Keycloak ${slug}`, admin_email: `admin.${slug}@customer.example.com`, admin_name: 'Grace Hopper' };
};

eachDriver('Keycloak provisioning', (driver) => {
  let stub: KeycloakStub;
  let server: TestServer;
  let api: Client;

  beforeAll(async () => {
    // The user profile declares tenant_id, as keycloak/realm.json does.
    stub = await startKeycloakStub({ userProfileAttributes: ['tenant_id'] });
    const adapter = adapterFor(stub);
    server = await startServer(driver, { keycloak: { adapter, budgetMs: BUDGET_MS } });
    api = server.api;
    // The service-account token is fetched here, so every test sees only admin calls.
    expect(await adapter.health()).toBe('up');
  });
  afterEach(() => stub.clearFaults());
  afterAll(async () => {
    await server.close();
    await stub.close();
  });

  /** The tenant's audit actions in the order they were appended to its chain. */
  const actionsOf = async (tenantId: string) =>
    (await server.db.query<{ action: string }>('SELECT action FROM audit_log WHERE tenant_id = $1 ORDER BY chain_seq', [tenantId])).map(
      (row) => row.action,
    );
  const eventsOf = async (tenantId: string, action: string) => {
    const answer = await api.get<{ items: AuditEvent[] }>(`/v1/audit?tenant_id=${tenantId}&action=${action}`);
    expect(answer.status).toBe(200);
    return answer.body.items;
  };
  const retry = (tenantId: string, body: Record<string, string> = {}) =>
    api.post<Created>(`/v1/tenants/${tenantId}/keycloak/provision`, { body });
  const callsSince = (mark: number) => stub.requests.slice(mark).map((r) => `${r.method} ${r.path.replace(REALM_PATH, '~')}`);

  /** One organization with the slug as alias, one user with the email, a member with the role, one mail. */
  const expectProvisionedOnce = (slug: string, email: string) => {
    const organizations = stub.state.organizations.filter((o) => o.alias === slug);
    const users = stub.state.users.filter((u) => u.email === email);
    expect(organizations).toHaveLength(1);
    expect(users).toHaveLength(1);
    const [organization, user] = [organizations[0]!, users[0]!];
    expect(organization.members).toEqual([user.id]);
    expect(user.enabled).toBe(true);
    expect(stub.state.roleMappings[user.id]).toContain('IT_ADMIN');
    expect(stub.state.emails.filter((e) => e.to === email)).toHaveLength(1);
    return { organization, user };
  };

  it('provisions on creation: done, the stub organization id, invite_sent audited, no invite_url from Keycloak', async () => {
    const body = newTenantBody();
    const mark = stub.requests.length;
    const created = await api.post<Created>('/v1/tenants', { body });

    expect(created.status).toBe(201);
    const { tenant } = created.body;
    expect(tenant.keycloak_provisioning).toBe('done');
    const { organization, user } = expectProvisionedOnce(body.slug, body.admin_email);
    expect(tenant.keycloak_org_id).toBe(organization.id);
    expect(organization).toMatchObject({ alias: body.slug, name: body.name });
    // The organization names its tenant, so a later run can tell it from anyone else's.
    expect(organization.attributes).toEqual({ tenant_id: [tenant.id] });
    expect(user).toMatchObject({ firstName: 'Grace', lastName: 'Hopper' });
    // The app runs in dev, yet a real Keycloak never hands out the link.
    expect(created.body).not.toHaveProperty('invite_url');
    expect(callsSince(mark)).toEqual([
      'POST ~/organizations',
      'GET ~/users',
      'POST ~/users',
      `POST ~/organizations/${organization.id}/members`,
      `GET ~/users/${user.id}`,
      'GET ~/roles/IT_ADMIN',
      `POST ~/users/${user.id}/role-mappings/realm`,
      `PUT ~/users/${user.id}/execute-actions-email`,
    ]);

    expect(await actionsOf(tenant.id)).toEqual(['tenant.created', 'keycloak.invite_sent']);
    const [sent] = await eventsOf(tenant.id, 'keycloak.invite_sent');
    expect(sent).toMatchObject({
      crud: 'u',
      actor: { id: 'operator-1', name: 'olga.operator' },
      target: { id: user.id, type: 'keycloak_user', name: body.admin_email },
      fields: { organization_id: organization.id, user_id: user.id },
    });
    expect((await api.get<Tenant>(`/v1/tenants/${tenant.id}`)).body).toMatchObject({
      keycloak_provisioning: 'done',
      keycloak_org_id: organization.id,
    });
  });

  it('does not touch Keycloak for a tenant without admin_email', async () => {
    const mark = stub.requests.length;
    const tenant = await createTenant(api);
    expect(tenant).toMatchObject({ keycloak_provisioning: 'none', keycloak_org_id: null });
    expect(stub.requests.length).toBe(mark);
    expect(await actionsOf(tenant.id)).toEqual(['tenant.created']);
  });

  describe('with Keycloak failing', () => {
    const failures: Array<[string, FaultPattern, StubFault, { error_type: string; step: string; status?: string }]> = [
      ['500 everywhere', {}, '500', { error_type: 'unavailable', step: 'organization', status: '500' }],
      ['reset connections everywhere', {}, 'reset', { error_type: 'unavailable', step: 'organization' }],
      ['401 everywhere', {}, '401', { error_type: 'unauthorized', step: 'token', status: '401' }],
      ['malformed JSON everywhere', {}, 'malformed-json', { error_type: 'unavailable', step: 'organization' }],
    ];

    /** Creates a tenant against the failing stub and checks what was recorded. */
    const createWhileFailing = async (expected: { error_type: string; step: string; status?: string }) => {
      const body = newTenantBody();
      const started = performance.now();
      const created = await api.post<Created>('/v1/tenants', { body });
      const elapsed = performance.now() - started;

      expect(created.status).toBe(201);
      expect(elapsed).toBeLessThan(BUDGET_MS + MARGIN_MS);
      const { tenant } = created.body;
      expect(tenant).toMatchObject({ slug: body.slug, keycloak_provisioning: 'failed', keycloak_org_id: null });
      expect(created.body).not.toHaveProperty('invite_url');
      const stored = await api.get<Tenant>(`/v1/tenants/${tenant.id}`);
      expect(stored.status).toBe(200);
      expect(stored.body.keycloak_provisioning).toBe('failed');

      expect(await actionsOf(tenant.id)).toEqual(['tenant.created', 'keycloak.provision_failed']);
      const [failed] = await eventsOf(tenant.id, 'keycloak.provision_failed');
      expect(failed).toMatchObject({ crud: 'u', actor: { id: 'operator-1' }, target: { id: tenant.id, type: 'tenant' } });
      const { reason, ...fields } = failed!.fields ?? {};
      expect(fields).toEqual(expected);
      expect(reason).toEqual(expect.any(String));
      expect(JSON.stringify(failed)).not.toContain(stub.clientSecret);
      return { body, tenant, elapsed };
    };

    /** Clears the faults, retries, and checks Keycloak holds everything exactly once. */
    const retryAndComplete = async (tenantId: string, body: ReturnType<typeof newTenantBody>) => {
      stub.clearFaults();
      const retried = await retry(tenantId);
      expect(retried.status).toBe(200);
      const { organization } = expectProvisionedOnce(body.slug, body.admin_email);
      expect(retried.body.tenant).toMatchObject({ id: tenantId, keycloak_provisioning: 'done', keycloak_org_id: organization.id });
      expect((await actionsOf(tenantId)).at(-1)).toBe('keycloak.invite_sent');
      // Running it again only resends the invitation: still one organization, one user.
      expect((await retry(tenantId)).status).toBe(200);
      expect(stub.state.organizations.filter((o) => o.alias === body.slug)).toHaveLength(1);
      expect(stub.state.users.filter((u) => u.email === body.admin_email)).toHaveLength(1);
      expect(stub.state.emails.filter((e) => e.to === body.admin_email)).toHaveLength(2);
    };

    it('a hang on creating the organization: 201 once the budget is spent, then a retry completes', async () => {
      stub.fail({ method: 'POST', path: /\/organizations$/ }, 'hang');
      const { body, tenant, elapsed } = await createWhileFailing({ error_type: 'unavailable', step: 'organization' });
      expect(elapsed).toBeGreaterThanOrEqual(BUDGET_MS - 50);
      await retryAndComplete(tenant.id, body);
    });

    it.each(failures)('%s: 201 with provisioning failed, 502 while failing, then a retry completes', async (...row) => {
      const [, pattern, fault, expected] = row;
      stub.fail(pattern, fault);
      const { body, tenant } = await createWhileFailing(expected);

      const stillFailing = await retry(tenant.id);
      expect(stillFailing.status).toBe(502);
      const problem = problemIn(stillFailing);
      expect(problem.code).toBe('keycloak_failed');
      expect(problem.detail).toContain(`(${expected.error_type} at ${expected.step})`);
      expect(await actionsOf(tenant.id)).toEqual(['tenant.created', 'keycloak.provision_failed', 'keycloak.provision_failed']);

      await retryAndComplete(tenant.id, body);
    });

    // The Problem response schema must declare what the route adds, or the serializer drops it.
    it('the 502 problem carries error_type and step as members, as the route sets them', async () => {
      stub.fail({}, '500');
      const tenant = await createTenant(api, { admin_email: `bug.${randomSlug()}@customer.example.com` });
      const stillFailing = await retry(tenant.id);
      expect(stillFailing.status).toBe(502);
      expect(problemIn(stillFailing)).toMatchObject({ code: 'keycloak_failed', error_type: 'unavailable', step: 'organization' });
    });

    it('a failure after the organization was made: the retry reuses it and the user', async () => {
      stub.fail({ method: 'PUT', path: /execute-actions-email$/ }, 'mail-failure');
      const { body, tenant } = await createWhileFailing({ error_type: 'unavailable', step: 'invite', status: '500' });
      expect(stub.state.organizations.filter((o) => o.alias === body.slug)).toHaveLength(1);
      await retryAndComplete(tenant.id, body);
    });
  });

  // An organization with the tenant's alias is adopted only when it carries the tenant's id;
  // anything else is a conflict at the organization step, recorded and retriable, and nothing
  // of the other organization is touched (no member added to it, no mail sent for it).
  describe("an organization with the alias that is not this tenant's", () => {
    it.each<[string, Record<string, string[]>]>([
      ["another tenant's id", { tenant_id: [randomUUID()] }],
      ['no tenant id (made by hand)', {}],
    ])('carrying %s: 201, provisioning failed as a conflict at organization, the organization untouched', async (_case, attributes) => {
      const body = newTenantBody();
      const squatter = stub.addOrganization({ name: `Squatter ${body.slug}`, alias: body.slug, attributes });
      const before = structuredClone(squatter);

      const created = await api.post<Created>('/v1/tenants', { body });
      expect(created.status).toBe(201);
      const { tenant } = created.body;
      expect(tenant).toMatchObject({ keycloak_provisioning: 'failed', keycloak_org_id: null });
      expect(await actionsOf(tenant.id)).toEqual(['tenant.created', 'keycloak.provision_failed']);
      const [failed] = await eventsOf(tenant.id, 'keycloak.provision_failed');
      expect(failed?.fields).toMatchObject({ error_type: 'conflict', step: 'organization', status: '409' });
      expect(failed?.fields?.reason).toMatch(/tenant_id/);

      const stillFailing = await retry(tenant.id);
      expect(stillFailing.status).toBe(502);
      expect(problemIn(stillFailing)).toMatchObject({ code: 'keycloak_failed', error_type: 'conflict', step: 'organization' });
      expect(await actionsOf(tenant.id)).toEqual(['tenant.created', 'keycloak.provision_failed', 'keycloak.provision_failed']);
      expect(stub.state.organizations.filter((o) => o.alias === body.slug)).toEqual([before]);
      expect(stub.state.users.filter((u) => u.email === body.admin_email)).toEqual([]);
      expect(stub.state.emails.filter((e) => e.to === body.admin_email)).toEqual([]);
      expect((await api.get<Tenant>(`/v1/tenants/${tenant.id}`)).body).toMatchObject({ keycloak_provisioning: 'failed', keycloak_org_id: null });
    });

    it('is retriable: once the organization carries the tenant id, the retry adopts it', async () => {
      const body = newTenantBody();
      const manual = stub.addOrganization({ name: body.name, alias: body.slug });
      const created = await api.post<Created>('/v1/tenants', { body });
      expect(created.body.tenant.keycloak_provisioning).toBe('failed');

      // What an operator does after checking the organization really is this tenant's.
      manual.attributes = { tenant_id: [created.body.tenant.id] };
      const retried = await retry(created.body.tenant.id);
      expect(retried.status).toBe(200);
      expect(retried.body.tenant).toMatchObject({ keycloak_provisioning: 'done', keycloak_org_id: manual.id });
      expectProvisionedOnce(body.slug, body.admin_email);
      expect((await actionsOf(created.body.tenant.id)).at(-1)).toBe('keycloak.invite_sent');
    });
  });

  describe('POST /v1/tenants/{id}/keycloak/provision', () => {
    it('answers 409 no_admin_email for a tenant created without one', async () => {
      const tenant = await createTenant(api);
      const mark = stub.requests.length;
      const answer = await retry(tenant.id);
      expect(answer.status).toBe(409);
      expect(problemIn(answer).code).toBe('no_admin_email');
      expect(stub.requests.length).toBe(mark);
      expect(await actionsOf(tenant.id)).toEqual(['tenant.created']);
    });

    it('provisions with the admin_email given in the body, and remembers it', async () => {
      const tenant = await createTenant(api);
      const email = `late.${tenant.slug}@customer.example.com`;
      const answer = await retry(tenant.id, { admin_email: email, admin_name: 'Late Admin' });
      expect(answer.status).toBe(200);
      const { organization, user } = expectProvisionedOnce(tenant.slug, email);
      expect(answer.body.tenant).toMatchObject({ keycloak_provisioning: 'done', keycloak_org_id: organization.id });
      expect(answer.body).not.toHaveProperty('invite_url');
      expect(user).toMatchObject({ firstName: 'Late', lastName: 'Admin' });
      // The admin given once is the default of the next retry.
      expect((await retry(tenant.id)).status).toBe(200);
      expect(stub.state.emails.filter((e) => e.to === email)).toHaveLength(2);
    });

    // Every field of the body is optional, and so is the body.
    it('retries without a body, and with an empty JSON body, as operators and many clients send it', async () => {
      const tenant = await createTenant(api, { admin_email: `bare.${randomSlug()}@customer.example.com` });
      const bare = await api.post<Created>(`/v1/tenants/${tenant.id}/keycloak/provision`);
      expect(bare.status).toBe(200);
      const empty = await api.post<Created>(`/v1/tenants/${tenant.id}/keycloak/provision`, {
        raw: '',
        headers: { 'content-type': 'application/json' },
      });
      expect(empty.status).toBe(200);
    });

    it('answers 404 for an unknown tenant', async () => {
      const answer = await retry('7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11', { admin_email: 'x@example.com' });
      expect(answer.status).toBe(404);
      expect(problemIn(answer).code).toBe('not_found');
    });
  });

  describe('the mock adapter', () => {
    let dev: StartedApp;
    let stage: StartedApp;
    beforeAll(async () => {
      dev = await startServerOn(server.db);
      stage = await startServerOn(server.db, { config: { appEnv: 'stage', bodyLimitBytes: 65536 } });
    });
    afterAll(async () => {
      await dev.close();
      await stage.close();
    });

    it('answers invite_url in dev, on creation and on retry', async () => {
      const created = await dev.api.post<Created>('/v1/tenants', { body: newTenantBody() });
      expect(created.status).toBe(201);
      expect(created.body.tenant.keycloak_provisioning).toBe('done');
      expect(created.body.invite_url).toMatch(/^http:\/\/keycloak\.test\/realms\/test\/login-actions\/action-token\?mock=/);
      const retried = await dev.api.post<Created>(`/v1/tenants/${created.body.tenant.id}/keycloak/provision`, { body: {} });
      expect(retried.status).toBe(200);
      expect(retried.body.invite_url).toBe(created.body.invite_url);
    });

    it('answers no invite_url outside dev', async () => {
      const created = await stage.api.post<Created>('/v1/tenants', { body: newTenantBody() });
      expect(created.status).toBe(201);
      expect(created.body.tenant.keycloak_provisioning).toBe('done');
      expect(created.body).not.toHaveProperty('invite_url');
      const retried = await stage.api.post<Created>(`/v1/tenants/${created.body.tenant.id}/keycloak/provision`, { body: {} });
      expect(retried.status).toBe(200);
      expect(retried.body).not.toHaveProperty('invite_url');
    });
  });

  describe('provisioning turned off (KEYCLOAK_PROVISIONING=off)', () => {
    let off: StartedApp;
    beforeAll(async () => {
      off = await startServerOn(server.db, {
        keycloak: { adapter: new DisabledAdapter(), budgetMs: BUDGET_MS },
        config: { appEnv: 'prod', bodyLimitBytes: 65536 },
      });
    });
    afterAll(() => off.close());

    it('creates the tenant, records provisioning as failed with the reason, and claims no invitation', async () => {
      const body = newTenantBody();
      const created = await off.api.post<Created>('/v1/tenants', { body });
      expect(created.status).toBe(201);
      const { tenant } = created.body;
      expect(tenant).toMatchObject({ keycloak_provisioning: 'failed', keycloak_org_id: null });
      expect(created.body).not.toHaveProperty('invite_url');

      expect(await actionsOf(tenant.id)).toEqual(['tenant.created', 'keycloak.provision_failed']);
      const [failed] = await eventsOf(tenant.id, 'keycloak.provision_failed');
      expect(failed).toMatchObject({
        target: { id: tenant.id, type: 'tenant', name: body.slug },
        fields: { error_type: 'disabled', step: 'organization', reason: expect.stringContaining('turned off') as unknown },
      });
      const [row] = await server.db.query<{ keycloak_error: string; admin_email: string }>(
        'SELECT keycloak_error, admin_email FROM tenants WHERE id = $1',
        [tenant.id],
      );
      // The admin stays, so turning provisioning on and retrying completes it.
      expect(row).toEqual({ keycloak_error: 'disabled at organization', admin_email: body.admin_email });
    });

    it('answers a retry 409 keycloak_provisioning_off, not a Keycloak failure, and records the attempt', async () => {
      const body = newTenantBody();
      const created = await off.api.post<Created>('/v1/tenants', { body });
      const retried = await off.api.post(`/v1/tenants/${created.body.tenant.id}/keycloak/provision`, { body: {} });
      expect(retried.status).toBe(409);
      expect(problemIn(retried)).toMatchObject({ code: 'keycloak_provisioning_off' });
      expect(problemIn(retried)).not.toHaveProperty('error_type');
      expect(await actionsOf(created.body.tenant.id)).toEqual(['tenant.created', 'keycloak.provision_failed', 'keycloak.provision_failed']);
    });

    it("reports keycloak 'disabled' on /readyz, and stays ready", async () => {
      const ready = await off.api.get('/readyz');
      expect(ready.status).toBe(200);
      expect(ready.body).toEqual({ status: 'ready', checks: { database: 'up', keycloak: 'disabled' } });
    });
  });

  describe('/readyz', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it("reports keycloak 'up' with the stub", async () => {
      const ready = await api.get('/readyz');
      expect(ready.status).toBe(200);
      expect(ready.body).toEqual({ status: 'ready', checks: { database: 'up', keycloak: 'up' } });
    });

    it("reports keycloak 'down' once the stub is gone (after the 10 s cache), and stays ready", async () => {
      const doomed = await startKeycloakStub();
      const app = await startServerOn(server.db, { keycloak: { adapter: adapterFor(doomed, 500), budgetMs: BUDGET_MS } });
      try {
        expect((await app.api.get('/readyz')).body).toMatchObject({ checks: { keycloak: 'up' } });
        await doomed.close();
        // Within the interval the last answer is reused; Keycloak is not asked on every probe.
        expect((await app.api.get('/readyz')).body).toMatchObject({ checks: { keycloak: 'up' } });
        vi.useFakeTimers({ toFake: ['Date'] });
        vi.setSystemTime(Date.now() + 11_000);
        const ready = await app.api.get('/readyz');
        expect(ready.status).toBe(200);
        expect(ready.body).toEqual({ status: 'ready', checks: { database: 'up', keycloak: 'down' } });
      } finally {
        vi.useRealTimers();
        await app.close();
      }
    });

    it("reports keycloak 'down' from the first probe when nothing listens", async () => {
      const gone = await startKeycloakStub();
      await gone.close();
      const app = await startServerOn(server.db, { keycloak: { adapter: adapterFor(gone, 500), budgetMs: BUDGET_MS } });
      try {
        const ready = await app.api.get('/readyz');
        expect(ready.status).toBe(200);
        expect(ready.body).toEqual({ status: 'ready', checks: { database: 'up', keycloak: 'down' } });
      } finally {
        await app.close();
      }
    });
  });
});
