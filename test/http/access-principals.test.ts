// Around the access matrix (access-matrix.test.ts), on the same audience-checked server: another
// tenant's resource answers exactly as one that does not exist; an IT_ADMIN must name the tenant
// to read the log; tenant ids are matched case-insensitively and only as UUIDs; the Authorization
// header is read strictly; a missing token is refused before the body is read; and the audit
// actor of a tenant change is the principal who made it.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/http/schemas/audit.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant, randomSlug } from '../support/factories.js';
import { call, client, problemOf, type Client } from '../support/http.js';
import { identities, ROLE_NAMES } from '../support/identities.js';
import { audienceCheckedServer, eventsIn, expectOnlyEventsOf, send } from './access-harness.js';

eachDriver('access around the matrix', (driver) => {
  const h = audienceCheckedServer(driver);
  const { mint } = h;

  describe('around the matrix', () => {
    it("answers another tenant's resource exactly as one that does not exist", async () => {
      const member = client(h.server.url, await mint(identities.member(h.tenantA.id)));
      const itAdmin = client(h.server.url, await mint(identities.itAdmin(h.tenantA.id)));
      const missing = randomUUID();
      const pairs: Array<[Client, string, string]> = [
        [member, `/v1/tenants/${h.tenantB.id}`, `/v1/tenants/${missing}`],
        [member, `/v1/tenants/by-slug/${h.tenantB.slug}`, `/v1/tenants/by-slug/${randomSlug('missing')}`],
        [itAdmin, `/v1/audit?tenant_id=${h.tenantB.id}`, `/v1/audit?tenant_id=${missing}`],
        [itAdmin, `/v1/audit/verify?tenant_id=${h.tenantB.id}`, `/v1/audit/verify?tenant_id=${missing}`],
      ];
      for (const [caller, other, absent] of pairs) {
        const [a, b] = await Promise.all([caller.get(other), caller.get(absent)]);
        const { request_id: _a, ...otherProblem } = problemOf(a);
        const { request_id: _b, ...absentProblem } = problemOf(b);
        expect(a.status, other).toBe(404);
        expect(otherProblem, other).toEqual(absentProblem);
      }
    });

    it('makes an IT_ADMIN name the tenant to read the log, which a platform admin need not', async () => {
      const itAdmin = client(h.server.url, await mint(identities.itAdmin(h.tenantA.id)));
      for (const path of ['/v1/audit', '/v1/audit/export', '/v1/audit/verify']) {
        const answer = await send(h.server.url, 'GET', path, itAdmin.token);
        expect(answer.status, path).toBe(403);
        expect(problemOf(answer).code).toBe('forbidden');
        expect((await send(h.server.url, 'GET', path, h.admin.token)).status, path).toBe(200);
      }
    });

    it('treats an upper-case tenant id, in the path or in the token, as the same tenant', async () => {
      const upper = h.tenantA.id.toUpperCase();
      const member = client(h.server.url, await mint(identities.member(h.tenantA.id)));
      expect((await member.get<Tenant>(`/v1/tenants/${upper}`)).body.id).toBe(h.tenantA.id);
      const itAdmin = client(h.server.url, await mint(identities.itAdmin(upper)));
      const events = await itAdmin.get(`/v1/audit?tenant_id=${h.tenantA.id}`);
      expect(events.status).toBe(200);
      expectOnlyEventsOf(eventsIn(events), h.tenantA);
      expect((await itAdmin.get(`/v1/audit?tenant_id=${h.tenantB.id}`)).status).toBe(404);
    });

    it('grants nothing tenant-scoped for a tenant_id that is not a UUID', async () => {
      const itAdmin = client(h.server.url, await mint({ ...identities.itAdmin(h.tenantA.id), tenant_id: h.tenantA.slug }));
      for (const path of [`/v1/tenants/${h.tenantA.id}`, `/v1/audit?tenant_id=${h.tenantA.id}`]) {
        const answer = await itAdmin.get(path);
        expect(answer.status, path).toBe(403);
        expect(problemOf(answer).code).toBe('forbidden');
      }
    });

    it.each<[string, (token: string) => string, number]>([
      ['another scheme', (token: string) => `Basic ${token}`, 401],
      ['the scheme alone', () => 'Bearer', 401],
      ['two tokens', (token: string) => `Bearer ${token} ${token}`, 401],
      ['a lower-case scheme', (token: string) => `bearer ${token}`, 200],
      ['surrounding spaces', (token: string) => `  Bearer ${token}  `, 200],
    ])('reads an Authorization header with %s: %i', async (_case, header, expected) => {
      const token = await mint(identities.platformAdmin());
      const answer = await call(h.server.url, 'GET', `/v1/tenants/${h.tenantA.id}`, { headers: { authorization: header(token) } });
      expect(answer.status).toBe(expected);
      if (expected === 401) {
        expect(problemOf(answer).code).toBe('unauthorized');
        expect(answer.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
      }
    });

    it('refuses a missing token before reading the body, whatever the body is', async () => {
      const anonymous = client(h.server.url);
      for (const options of [
        { raw: '{not json', headers: { 'content-type': 'application/json' } },
        { raw: 'x'.repeat(128 * 1024), headers: { 'content-type': 'application/json' } },
        { raw: 'slug=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      ]) {
        const answer = await anonymous.post('/v1/tenants', options);
        expect(answer.status).toBe(401);
        expect(problemOf(answer).code).toBe('unauthorized');
      }
    });
  });

  describe('the audit actor of a tenant change is the principal', () => {
    async function actorsOf(tenant: Tenant): Promise<Record<string, AuditEvent['actor']>> {
      const events = eventsIn(await h.admin.get(`/v1/audit?tenant_id=${tenant.id}`));
      return Object.fromEntries(events.map((event) => [event.action, event.actor]));
    }

    it('a platform admin (a user) creates and activates', async () => {
      const tenant = await createTenant(h.admin);
      expect((await h.admin.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(200);
      const actor = { id: 'operator-1', name: 'olga.operator', href: null, fields: { kind: 'user' } };
      expect(await actorsOf(tenant)).toEqual({ 'tenant.created': actor, 'tenant.activated': actor });
    });

    it('a service account holding the platform admin role is recorded as a service', async () => {
      const automation = client(
        h.server.url,
        await mint({
          sub: 'f3c1a2b4-service-ops',
          preferred_username: 'service-account-ops-automation',
          client_id: 'ops-automation',
          realm_access: { roles: [ROLE_NAMES.platformAdmin] },
        }),
      );
      const tenant = await createTenant(automation);
      expect((await automation.post(`/v1/tenants/${tenant.id}/cancel`)).status).toBe(200);
      const actor = { id: 'f3c1a2b4-service-ops', name: 'service-account-ops-automation', href: null, fields: { kind: 'service' } };
      expect(await actorsOf(tenant)).toEqual({ 'tenant.created': actor, 'tenant.cancelled': actor });
    });

    it("a platform h.admin who belongs to a tenant is recorded with that tenant", async () => {
      const operator = client(h.server.url, await mint({ ...identities.platformAdmin(), tenant_id: h.tenantA.id.toUpperCase() }));
      const tenant = await createTenant(operator);
      expect((await actorsOf(tenant))['tenant.created']).toEqual({
        id: 'operator-1',
        name: 'olga.operator',
        href: null,
        fields: { kind: 'user', tenant_id: h.tenantA.id },
      });
    });

    it('a refused caller leaves no event', async () => {
      const tenant = await createTenant(h.admin);
      const itAdmin = client(h.server.url, await mint(identities.itAdmin(tenant.id)));
      expect((await itAdmin.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(403);
      expect(Object.keys(await actorsOf(tenant))).toEqual(['tenant.created']);
    });
  });
});
