// Change events (issue 19, point 1): every change the registry makes writes exactly one change
// event in its transaction, under the id of its audit event and with its action as the type;
// external audit events are not change events; key material never reaches an event; the global
// sequence counts 1..N with no gap (a rolled-back change included) and tenant_prev_seq chains
// each tenant's events.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ChangeEvent } from '../../src/domain/change-event.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { recordExpiredTrials } from '../../src/jobs/trial-expiry.js';
import { MockAdapter } from '../../src/keycloak/mock-adapter.js';
import { recordChange, SYSTEM_ORIGIN } from '../../src/services/audit-trail.js';
import { syncQueuedOrganizations } from '../../src/services/organization-sync.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import type { Client } from '../support/http.js';
import { startServer, type TestServer } from '../support/server.js';
import { DAY_MS, START, TestClock } from '../support/time.js';
import { expectChained, readWholeFeed } from '../support/feed.js';

eachDriver('change events', (driver) => {
  let server: TestServer;
  let api: Client;
  const clock = new TestClock();
  const keycloak = new MockAdapter('http://keycloak.test/realms/test');
  beforeAll(async () => {
    server = await startServer(driver, { clock: clock.now, keycloak: { adapter: keycloak, budgetMs: 5_000 } });
    api = server.api;
  });
  afterAll(() => server?.close());
  beforeEach(() => clock.reset());

  const auditRows = () => server.db.query<{ id: string; action: string }>('SELECT id::text AS id, action FROM audit_log');
  const changeRows = () =>
    server.db.query<{ id: string; type: string; seq: number | null }>('SELECT id::text AS id, type, seq FROM change_events');

  /**
   * Runs `act` and checks what it wrote: one change event per audit event it appended, under the
   * same id and with the audit action as its type, and those types are `types` (in any order).
   * Answers the new events as the feed serves them.
   */
  async function expectChanges(types: string[], act: () => Promise<unknown>): Promise<ChangeEvent[]> {
    const auditBefore = new Set((await auditRows()).map((row) => row.id));
    const changesBefore = new Set((await changeRows()).map((row) => row.id));
    await act();
    const audits = (await auditRows()).filter((row) => !auditBefore.has(row.id));
    const changes = (await changeRows()).filter((row) => !changesBefore.has(row.id));
    const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : 1);
    expect(changes.map((row) => ({ id: row.id, action: row.type })).sort(byId)).toEqual(
      audits.map((row) => ({ id: row.id, action: row.action })).sort(byId),
    );
    expect(changes.map((row) => row.type).sort()).toEqual([...types].sort());
    // Committed, so numbered.
    expect(changes.every((row) => row.seq !== null)).toBe(true);
    const ids = new Set(changes.map((row) => row.id));
    return (await readWholeFeed(api)).filter((event) => ids.has(event.id));
  }

  const ok = (answer: { status: number; text: string }, status: number) => {
    if (answer.status !== status) throw new Error(`expected ${status}, got ${answer.status}: ${answer.text}`);
  };

  describe('one change event per change', () => {
    it('tenant: created, updated, activated, cancelled, archived', async () => {
      let tenant!: Tenant;
      const [created] = await expectChanges(['tenant.created'], async () => {
        tenant = await createTenant(api);
      });
      expect(created).toMatchObject({
        type: 'tenant.created',
        tenant_id: tenant.id,
        tenant_prev_seq: null,
        occurred_at: new Date(START).toISOString(),
        data: {
          actor: { id: 'operator-1', name: 'olga.operator' },
          target: { id: tenant.id, type: 'tenant', name: tenant.slug },
          product: null,
          fields: { status: 'trial', kind: 'customer' },
        },
      });
      const [updated] = await expectChanges(['tenant.updated'], async () =>
        ok(await api.request('PATCH', `/v1/tenants/${tenant.id}`, { body: { plan: 'gold' }, headers: { 'if-match': '*' } }), 200),
      );
      expect(updated).toMatchObject({ tenant_id: tenant.id, tenant_prev_seq: created!.seq });
      await expectChanges(['tenant.activated'], async () => ok(await api.post(`/v1/tenants/${tenant.id}/activate`), 200));
      await expectChanges(['tenant.cancelled'], async () => ok(await api.post(`/v1/tenants/${tenant.id}/cancel`), 200));
      const [archived] = await expectChanges(['tenant.archived'], async () =>
        ok(await api.post(`/v1/tenants/${tenant.id}/archive`, { body: { reason: 'moved to a competitor' } }), 200),
      );
      expect(archived!.data.fields).toMatchObject({ reason: 'moved to a competitor' });
    });

    it('archiving a tenant with a key and a product: the archive, and each revocation it makes', async () => {
      const tenant = await createTenant(api);
      ok(await api.request('PUT', `/v1/entitlements/${tenant.id}/compliance`, { body: {} }), 200);
      ok(await api.post('/v1/api-keys', { body: { tenant_id: tenant.id, name: 'ci' } }), 201);
      ok(await api.post(`/v1/tenants/${tenant.id}/cancel`), 200);
      const events = await expectChanges(['tenant.archived', 'api_key.revoked', 'entitlement.revoked'], async () =>
        ok(await api.post(`/v1/tenants/${tenant.id}/archive`, { body: { reason: 'closed' } }), 200),
      );
      expect(events.every((event) => event.tenant_id === tenant.id)).toBe(true);
    });

    it('entitlement: granted, revoked, trial started, trial expired; tenant trial ended', async () => {
      const tenant = await createTenant(api);
      const [granted] = await expectChanges(['entitlement.granted'], async () =>
        ok(await api.request('PUT', `/v1/entitlements/${tenant.id}/compliance`, { body: {} }), 200),
      );
      expect(granted).toMatchObject({ tenant_id: tenant.id, data: { product: 'compliance' } });
      await expectChanges(['entitlement.revoked'], async () =>
        ok(await api.request('DELETE', `/v1/entitlements/${tenant.id}/compliance`), 204),
      );
      await expectChanges(['entitlement.trial_started'], async () =>
        ok(await api.post('/v1/catalog/trial-request', { body: { tenant_id: tenant.id, product: 'risk' } }), 201),
      );
      // The job writes down both trials, each in the transaction that marks it.
      await expectChanges(['tenant.trial_ended', 'entitlement.trial_expired'], async () => {
        await recordExpiredTrials(server.db, new Date(START + 60 * DAY_MS));
      });
    });

    it('catalog: product requested, request declined, request assigned', async () => {
      const tenant = await createTenant(api);
      let requestId = '';
      await expectChanges(['catalog.product_requested'], async () => {
        const answer = await api.post<{ id: string }>('/v1/catalog/request', { body: { tenant_id: tenant.id, product: 'training' } });
        ok(answer, 202);
        requestId = answer.body.id;
      });
      await expectChanges(['catalog.request_declined'], async () =>
        ok(await api.post(`/v1/catalog/requests/${requestId}/decline`, { body: { reason: 'No budget' } }), 200),
      );
      const again = await api.post<{ id: string }>('/v1/catalog/request', { body: { tenant_id: tenant.id, product: 'training' } });
      ok(again, 202);
      await expectChanges(['catalog.request_assigned'], async () =>
        ok(await api.post(`/v1/catalog/requests/${again.body.id}/assign`, { body: { sales_owner: 'sam.sales' } }), 200),
      );
    });

    it('api key: created, updated, rotated, revoked', async () => {
      const tenant = await createTenant(api);
      let keyId = '';
      await expectChanges(['api_key.created'], async () => {
        const answer = await api.post<{ id: string }>('/v1/api-keys', { body: { tenant_id: tenant.id, name: 'build' } });
        ok(answer, 201);
        keyId = answer.body.id;
      });
      await expectChanges(['api_key.updated'], async () =>
        ok(await api.request('PATCH', `/v1/api-keys/${keyId}`, { body: { name: 'build, renamed' } }), 200),
      );
      let rotatedId = '';
      await expectChanges(['api_key.rotated'], async () => {
        const answer = await api.post<{ id: string }>(`/v1/api-keys/${keyId}/rotate`, { body: {} });
        ok(answer, 201);
        rotatedId = answer.body.id;
      });
      await expectChanges(['api_key.revoked'], async () => ok(await api.request('DELETE', `/v1/api-keys/${rotatedId}`), 204));
    });

    it('keycloak: invite sent, provisioning failed, organization synced', async () => {
      let tenant!: Tenant;
      await expectChanges(['tenant.created', 'keycloak.invite_sent'], async () => {
        tenant = await createTenant(api, { admin_email: `it-${randomBytes(3).toString('hex')}@example.com` });
      });
      // The organization syncs once for the invite: the first sync changes it.
      await expectChanges(['keycloak.organization_synced'], async () => {
        while ((await syncQueuedOrganizations({ db: server.db, keycloak, clock: clock.now, onDrift: () => {} })) > 0);
      });
      // Another tenant holds the alias: the mock refuses, as Keycloak would, with a conflict.
      const other = await createTenant(api);
      keycloak.organizations.set(other.slug, { id: 'org-of-someone-else', tenantId: tenant.id });
      const [failed] = await expectChanges(['keycloak.provision_failed'], async () =>
        ok(await api.post(`/v1/tenants/${other.id}/keycloak/provision`, { body: { admin_email: 'it@other.example.com' } }), 502),
      );
      expect(failed).toMatchObject({ tenant_id: other.id, data: { fields: { error_type: 'conflict' } } });
    });

    it('events published through POST /v1/audit are not change events', async () => {
      const tenant = await createTenant(api);
      const changesBefore = await changeRows();
      const auditBefore = (await auditRows()).length;
      for (const action of ['invoice.sent', 'login.succeeded', 'report.exported']) {
        ok(await api.post('/v1/audit', { body: { action, crud: 'r', tenant_id: tenant.id, actor: { id: 'someone' } } }), 201);
      }
      // The audit log took them, and the feed did not.
      expect(await auditRows()).toHaveLength(auditBefore + 3);
      expect(await changeRows()).toEqual(changesBefore);
    });
  });

  it('never puts a key, nor its secret part, into an event', async () => {
    const tenant = await createTenant(api);
    const created = await api.post<{ id: string; key: string }>('/v1/api-keys', { body: { tenant_id: tenant.id, name: 'secret-holder' } });
    ok(created, 201);
    const rotated = await api.post<{ id: string; key: string }>(`/v1/api-keys/${created.body.id}/rotate`, { body: {} });
    ok(rotated, 201);
    const feed = JSON.stringify(await readWholeFeed(api));
    const stored = JSON.stringify(await server.db.query('SELECT * FROM change_events'));
    expect(feed).toContain(created.body.id);
    for (const key of [created.body.key, rotated.body.key]) {
      expect(key).toMatch(/^bp_/);
      // The whole key, the key without its prefix, and the part no display shows.
      for (const secret of [key, key.slice(3), key.slice(7, -4)]) {
        expect(feed).not.toContain(secret);
        expect(stored).not.toContain(secret);
      }
    }
  });

  it('numbers the feed 1..N without a gap, and chains each tenant through tenant_prev_seq', async () => {
    // Interleave a few tenants' changes so that chains cross.
    const tenants = [await createTenant(api), await createTenant(api), await createTenant(api)];
    for (const [index, tenant] of [...tenants, ...tenants.reverse()].entries()) {
      ok(await api.request('PATCH', `/v1/tenants/${tenant.id}`, { body: { plan: `p${index}` }, headers: { 'if-match': '*' } }), 200);
    }
    const events = await readWholeFeed(api);
    expect(events.length).toBeGreaterThan(30);
    expect(events.map((event) => event.seq)).toEqual(events.map((_, index) => index + 1));
    expectChained(events);
  });

  it('leaves no gap for a change that rolled back after writing its event', async () => {
    const [tenant, bystander] = [await createTenant(api), await createTenant(api)];
    const row = { id: tenant.id, name: tenant.name, slug: tenant.slug };
    const before = await readWholeFeed(api);
    const head = before.at(-1)!.seq;
    const lastOfTenant = before.filter((event) => event.tenant_id === tenant.id).at(-1)!.seq;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      await expect(
        server.db.transaction(async (tx) => {
          await recordChange(tx, SYSTEM_ORIGIN, { action: 'tenant.updated', crud: 'u', tenant: row, fields: { plan: 'never' } }, clock.now());
          throw new Error('rolled back on purpose');
        }),
      ).rejects.toThrow('rolled back on purpose');
    }
    ok(await api.request('PATCH', `/v1/tenants/${bystander.id}`, { body: { plan: 'next' }, headers: { 'if-match': '*' } }), 200);
    ok(await api.request('PATCH', `/v1/tenants/${tenant.id}`, { body: { plan: 'after' }, headers: { 'if-match': '*' } }), 200);
    const after = (await readWholeFeed(api)).filter((event) => event.seq > head);
    expect(after.map((event) => [event.seq, event.tenant_id])).toEqual([
      [head + 1, bystander.id],
      [head + 2, tenant.id],
    ]);
    // The tenant's chain skips nothing either: its next event names its last committed one.
    expect(after[1]!.tenant_prev_seq).toBe(lastOfTenant);
    expect(after[1]!.data.fields).toMatchObject({ 'plan.new': 'after' });
    // Nothing of the rolled-back changes stayed behind, numbered or not.
    expect(await server.db.query('SELECT 1 FROM change_events WHERE seq IS NULL')).toEqual([]);
    expect(await server.db.query("SELECT 1 FROM change_events WHERE data->'fields'->>'plan' = 'never'")).toEqual([]);
  });
});
