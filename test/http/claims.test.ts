// The claims Keycloak puts into tokens: which tenant a lookup names (body tenant_id, tenant_slug,
// then the user's attributes; the same as query parameters for remote-claim mappers), what the
// bundle says it may use right now, and that changes show although the answers come from the
// tenant cache.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant, randomSlug } from '../support/factories.js';
import { problemOf, type Answer, type Client } from '../support/http.js';
import { identities } from '../support/identities.js';
import { startServer, startServerOn, type TestServer } from '../support/server.js';
import { DAY_MS, START, TestClock } from '../support/time.js';

const CLAIMS = '/v1/internal/keycloak/claims';

interface Claims {
  tenant_id: string;
  slug: string;
  products: string[];
  plan: string | null;
  status: string;
}

const bundle = (tenant: Tenant, products: string[], status = tenant.status): Claims => ({
  tenant_id: tenant.id,
  slug: tenant.slug,
  products,
  plan: tenant.plan,
  status,
});

eachDriver('Keycloak claims', (driver) => {
  let server: TestServer;
  let api: Client;
  let service: Client;
  const clock = new TestClock();

  beforeAll(async () => {
    server = await startServer(driver, { clock: clock.now });
    api = server.api;
    service = await server.as(identities.service());
  });
  afterAll(() => server.close());
  beforeEach(() => clock.reset());

  const claims = async (body: unknown) => {
    const answer = await service.post<Claims>(CLAIMS, { body });
    expect(answer.status, answer.text).toBe(200);
    return answer.body;
  };
  const claimsByQuery = async (query: string) => {
    const answer = await service.get<Claims>(`${CLAIMS}?${query}`);
    expect(answer.status, answer.text).toBe(200);
    return answer.body;
  };
  const expectNotFound = (answer: Answer<unknown>) => {
    expect(answer.status).toBe(404);
    expect(problemOf(answer as Answer).code).toBe('not_found');
  };
  const grant = async (tenantId: string, product: string) =>
    expect((await api.request('PUT', `/v1/entitlements/${tenantId}/${product}`, { body: {} })).status).toBe(200);
  const revoke = async (tenantId: string, product: string) =>
    expect((await api.request('DELETE', `/v1/entitlements/${tenantId}/${product}`)).status).toBe(204);
  const startTrial = async (tenantId: string, product: string) =>
    expect((await api.post('/v1/catalog/trial-request', { body: { tenant_id: tenantId, product } })).status).toBe(201);
  const transition = async (tenantId: string, action: 'activate' | 'cancel') => {
    const answer = await api.post<Tenant>(`/v1/tenants/${tenantId}/${action}`);
    expect(answer.status).toBe(200);
    return answer.body;
  };

  describe('finding the tenant', () => {
    let tenant: Tenant;
    beforeAll(async () => {
      tenant = await createTenant(api, { plan: 'business' });
    });

    it('by tenant_id, answering exactly the documented bundle', async () => {
      const answer = await claims({ tenant_id: tenant.id });
      expect(answer).toEqual({ tenant_id: tenant.id, slug: tenant.slug, products: [], plan: 'business', status: 'trial' });
      expect(await claims({ tenant_id: tenant.id.toUpperCase() })).toEqual(answer);
    });

    it('by tenant_slug', async () => {
      expect(await claims({ tenant_slug: tenant.slug })).toEqual(bundle(tenant, []));
    });

    it('by the user attributes tenant_id, tenant_slug and organization', async () => {
      expect(await claims({ user_attrs: { tenant_id: [tenant.id] } })).toEqual(bundle(tenant, []));
      expect(await claims({ user_attrs: { tenant_slug: [tenant.slug] } })).toEqual(bundle(tenant, []));
      expect(await claims({ user_attrs: { organization: [tenant.slug, 'another-org'] } })).toEqual(bundle(tenant, []));
      // The first organization that names a known tenant counts.
      expect(await claims({ user_attrs: { organization: ['no-such-org', tenant.slug] } })).toEqual(bundle(tenant, []));
      // A mapper may send one string instead of a list.
      expect(await claims({ user_attrs: { tenant_slug: tenant.slug } })).toEqual(bundle(tenant, []));
    });

    it('ignores attributes it does not read', async () => {
      const answer = await claims({ user_attrs: { locale: ['de'], department: ['IT', 'Ops'], organization: [tenant.slug] } });
      expect(answer).toEqual(bundle(tenant, []));
    });

    it('skips garbage and unknown values and uses the next lookup', async () => {
      const body = {
        tenant_id: 'not-a-uuid',
        tenant_slug: 'Not A Slug!',
        user_attrs: {
          tenant_id: ['', '12345', randomUUID()],
          tenant_slug: ['-bad-', 'UPPER', "x'; DROP TABLE tenants; --"],
          organization: ['no-such-org', `${tenant.slug}`],
        },
      };
      expect(await claims(body)).toEqual(bundle(tenant, []));
      expect(await claims({ tenant_id: randomUUID(), tenant_slug: tenant.slug })).toEqual(bundle(tenant, []));
    });

    it('answers 404 problem when nothing names a known tenant', async () => {
      expectNotFound(await service.post(CLAIMS, { body: {} }));
      expectNotFound(
        await service.post(CLAIMS, {
          body: {
            tenant_id: randomUUID(),
            tenant_slug: randomSlug('gone'),
            user_attrs: { tenant_id: [randomUUID()], tenant_slug: [randomSlug('gone')], organization: [randomSlug('gone'), 'bad slug'] },
          },
        }),
      );
      expectNotFound(await service.get(CLAIMS));
      expectNotFound(await service.get(`${CLAIMS}?tenant_id=${randomUUID()}&tenant_slug=${randomSlug('gone')}&organization=nope-org`));
    });

    it('refuses callers other than services', async () => {
      expect((await api.post(CLAIMS, { body: { tenant_id: tenant.id } })).status).toBe(403);
      expect((await (await server.as(identities.member(tenant.id))).get(`${CLAIMS}?tenant_id=${tenant.id}`)).status).toBe(403);
    });
  });

  describe('precedence', () => {
    let byId: Tenant;
    let bySlug: Tenant;
    let byAttrId: Tenant;
    let byAttrSlug: Tenant;
    let byOrganization: Tenant;
    beforeAll(async () => {
      const created = await Promise.all(Array.from({ length: 5 }, () => createTenant(api)));
      [byId, bySlug, byAttrId, byAttrSlug, byOrganization] = created as [Tenant, Tenant, Tenant, Tenant, Tenant];
    });

    it('tenant_id, then tenant_slug, then user_attrs tenant_id, tenant_slug, organization', async () => {
      const attrs = { tenant_id: [byAttrId.id], tenant_slug: [byAttrSlug.slug], organization: [byOrganization.slug] };
      expect((await claims({ tenant_id: byId.id, tenant_slug: bySlug.slug, user_attrs: attrs })).tenant_id).toBe(byId.id);
      expect((await claims({ tenant_slug: bySlug.slug, user_attrs: attrs })).tenant_id).toBe(bySlug.id);
      expect((await claims({ user_attrs: attrs })).tenant_id).toBe(byAttrId.id);
      expect((await claims({ user_attrs: { ...attrs, tenant_id: [] } })).tenant_id).toBe(byAttrSlug.id);
      expect((await claims({ user_attrs: { organization: attrs.organization } })).tenant_id).toBe(byOrganization.id);
      // An unknown tenant_id does not hide a known slug behind it.
      expect((await claims({ tenant_id: randomUUID(), user_attrs: attrs })).tenant_id).toBe(byAttrId.id);
    });

    it('the same for query parameters: tenant_id, then tenant_slug, then organization', async () => {
      const all = `tenant_id=${byId.id}&tenant_slug=${bySlug.slug}&organization=${byOrganization.slug}`;
      expect((await claimsByQuery(all)).tenant_id).toBe(byId.id);
      expect((await claimsByQuery(`organization=${byOrganization.slug}&tenant_slug=${bySlug.slug}`)).tenant_id).toBe(bySlug.id);
      expect((await claimsByQuery(`organization=${byOrganization.slug}&tenant_id=not-a-uuid`)).tenant_id).toBe(byOrganization.id);
    });
  });

  describe('the products: what the tenant may use right now', () => {
    it('lists active and running trial entitlements, not revoked or expired ones', async () => {
      const tenant = await transition((await createTenant(api, { plan: 'enterprise' })).id, 'activate');
      await grant(tenant.id, 'portal');
      await startTrial(tenant.id, 'compliance');
      await startTrial(tenant.id, 'training');
      await grant(tenant.id, 'risk');
      await revoke(tenant.id, 'risk');
      expect(await claims({ tenant_id: tenant.id })).toEqual(bundle(tenant, ['compliance', 'portal', 'training'], 'active'));

      // compliance has a 14-day trial, training a 30-day one.
      clock.set(START + 14 * DAY_MS);
      expect((await claims({ tenant_id: tenant.id })).products).toEqual(['portal', 'training']);
      clock.set(START + 31 * DAY_MS);
      expect((await claims({ tenant_slug: tenant.slug })).products).toEqual(['portal']);
      expect((await claimsByQuery(`tenant_id=${tenant.id}`)).products).toEqual(['portal']);
    });

    it('lists nothing for a frozen tenant, and says so', async () => {
      const tenant = await createTenant(api);
      await grant(tenant.id, 'portal');
      await startTrial(tenant.id, 'risk');
      await transition(tenant.id, 'cancel');
      expect(await claims({ tenant_id: tenant.id })).toEqual(bundle(tenant, [], 'frozen'));
    });
  });

  describe('GET with query parameters', () => {
    let tenant: Tenant;
    let expected: Claims;
    beforeAll(async () => {
      tenant = await createTenant(api, { plan: 'starter' });
      await grant(tenant.id, 'portal');
      expected = bundle(tenant, ['portal']);
    });

    it('answers as POST does, by tenant_id, tenant_slug and organization', async () => {
      expect(await claims({ tenant_id: tenant.id })).toEqual(expected);
      expect(await claimsByQuery(`tenant_id=${tenant.id}`)).toEqual(expected);
      expect(await claimsByQuery(`tenant_slug=${tenant.slug}`)).toEqual(expected);
      expect(await claimsByQuery(`organization=${tenant.slug}`)).toEqual(expected);
    });

    it('reads repeated organization parameters in order', async () => {
      expect(await claimsByQuery(`organization=no-such-org&organization=${tenant.slug}`)).toEqual(expected);
      expect(await claimsByQuery(`organization=Bad%20Org&organization=${tenant.slug}&organization=other-org`)).toEqual(expected);
    });

    it('ignores what a remote-claim mapper sends besides (username, client_id, other attributes)', async () => {
      const extra = `username=ivan.itadmin&client_id=portal&locale=de&email=${encodeURIComponent('ivan@example.com')}`;
      expect(await claimsByQuery(`${extra}&tenant_slug=${tenant.slug}`)).toEqual(expected);
      expect(await claimsByQuery(`organization=${tenant.slug}&${extra}&username=again`)).toEqual(expected);
      expectNotFound(await service.get(`${CLAIMS}?${extra}`));
    });

    it('skips garbage values', async () => {
      expect(await claimsByQuery(`tenant_id=garbage&tenant_id=${tenant.id}`)).toEqual(expected);
      expect(await claimsByQuery(`tenant_slug=%27%3B--&organization=${tenant.slug}`)).toEqual(expected);
    });
  });

  describe('changes show through the tenant cache', () => {
    /**
     * Reads by POST and by GET until the bundle has the products (and status) wanted, for at most
     * the second the invalidation feed promises; the last answer.
     */
    const settle = async (tenantId: string, slug: string, wanted: Partial<Claims>) => {
      const deadline = performance.now() + 1_000;
      for (;;) {
        const byPost = await claims({ tenant_id: tenantId });
        const byQuery = await claimsByQuery(`tenant_slug=${slug}`);
        const fits = (answer: Claims) =>
          Object.entries(wanted).every(([key, value]) => JSON.stringify(answer[key as keyof Claims]) === JSON.stringify(value));
        if ((fits(byPost) && fits(byQuery)) || performance.now() > deadline) {
          expect(byQuery).toEqual(byPost);
          return byPost;
        }
        await sleep(10);
      }
    };

    it('a granted product appears, a revoked one goes, a cancelled tenant has none, a re-activated one has them again', async () => {
      const tenant = await createTenant(api);
      expect((await settle(tenant.id, tenant.slug, { products: [] })).products).toEqual([]);
      // Once loaded, the bundle is served from the cache: no database work.
      const queries = vi.spyOn(server.db, 'query');
      try {
        expect((await claims({ tenant_id: tenant.id })).products).toEqual([]);
        expect((await claimsByQuery(`organization=${tenant.slug}`)).products).toEqual([]);
        expect(queries).not.toHaveBeenCalled();
      } finally {
        queries.mockRestore();
      }

      await grant(tenant.id, 'portal');
      expect((await settle(tenant.id, tenant.slug, { products: ['portal'] })).products).toEqual(['portal']);
      await grant(tenant.id, 'api');
      expect((await settle(tenant.id, tenant.slug, { products: ['api', 'portal'] })).products).toEqual(['api', 'portal']);
      await revoke(tenant.id, 'api');
      expect((await settle(tenant.id, tenant.slug, { products: ['portal'] })).products).toEqual(['portal']);
      await transition(tenant.id, 'cancel');
      expect(await settle(tenant.id, tenant.slug, { products: [], status: 'frozen' })).toMatchObject({ products: [], status: 'frozen' });
      await transition(tenant.id, 'activate');
      expect(await settle(tenant.id, tenant.slug, { products: ['portal'], status: 'active' })).toMatchObject({
        products: ['portal'],
        status: 'active',
      });
    });

    // Other replicas learn of a change through NOTIFY, which can arrive after the answer to the
    // change; the replica that made it must not wait for it. A notification slowed to 200 ms makes
    // that race certain, with either driver.
    it('the very next call sees a change made through the same server, however slow its notification', async () => {
      const slow = await startServerOn({
        ...server.db,
        listen: (channel, onMessage, onState) =>
          server.db.listen(channel, (payload) => void sleep(200).then(() => onMessage(payload)), onState),
      });
      try {
        const slowService = await slow.as(identities.service());
        const tenant = await createTenant(slow.api);
        const next = async () => (await slowService.post<Claims>(CLAIMS, { body: { tenant_id: tenant.id } })).body;
        expect((await next()).products).toEqual([]);
        expect((await slow.api.request('PUT', `/v1/entitlements/${tenant.id}/portal`, { body: {} })).status).toBe(200);
        expect((await next()).products).toEqual(['portal']);
        expect((await slow.api.post(`/v1/tenants/${tenant.id}/cancel`)).status).toBe(200);
        expect(await next()).toMatchObject({ products: [], status: 'frozen' });
      } finally {
        await slow.close();
      }
    });

    it('a tenant created after an unknown lookup is found at once', async () => {
      const slug = randomSlug();
      expectNotFound(await service.get(`${CLAIMS}?tenant_slug=${slug}`));
      const tenant = await createTenant(api, { slug });
      expect((await claimsByQuery(`organization=${slug}`)).tenant_id).toBe(tenant.id);
    });
  });
});
