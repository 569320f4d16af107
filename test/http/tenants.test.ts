import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant, randomSlug } from '../support/factories.js';
import { problemOf, type Client } from '../support/http.js';
import { startServer, type TestServer } from '../support/server.js';
import { DAY_MS, START } from '../support/time.js';

const NOW = new Date(START);

eachDriver('tenants', (driver) => {
  let server: TestServer;
  let api: Client;
  beforeAll(async () => {
    server = await startServer(driver, { clock: () => NOW });
    api = server.api;
  });
  afterAll(() => server.close());

  it('creates a customer tenant in a 14-day trial, with Location and every field', async () => {
    const slug = randomSlug();
    const answer = await api.post<{ tenant: Tenant; invite_url?: string }>('/v1/tenants', {
      body: {
        slug,
        name: '  Globex Corporation ',
        plan: 'business',
        erp_id: 'ERP-1001',
        stripe_id: 'cus_Q1w2E3r4',
        sales_owner: 'dana@sales.example.com',
        admin_email: 'it@globex.example.com',
        admin_name: 'Hank Scorpio',
      },
    });
    expect(answer.status).toBe(201);
    const { tenant } = answer.body;
    expect(answer.headers.get('location')).toBe(`/v1/tenants/${tenant.id}`);
    expect(tenant).toMatchObject({
      slug,
      name: 'Globex Corporation',
      status: 'trial',
      kind: 'customer',
      plan: 'business',
      erp_id: 'ERP-1001',
      stripe_id: 'cus_Q1w2E3r4',
      sales_owner: 'dana@sales.example.com',
      trial_ends_at: new Date(NOW.getTime() + 14 * DAY_MS).toISOString(),
      // The admin was invited through the (mock) Keycloak adapter; dev answers its link.
      keycloak_provisioning: 'done',
    });
    expect(tenant.keycloak_org_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(answer.body.invite_url).toMatch(/^http:\/\/keycloak\.test\/realms\/test\//);
    expect(tenant.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(tenant.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(Object.keys(tenant).sort()).toEqual(
      [
        'contract_ends_on', 'contract_starts_on', 'created_at', 'erp_id', 'id', 'keycloak_org_id', 'keycloak_provisioning',
        'kind', 'name', 'plan', 'sales_owner', 'slug', 'status', 'stripe_id', 'trial_ends_at', 'updated_at',
      ],
    );
  });

  it('creates a demo tenant in demo, without a trial end', async () => {
    const tenant = await createTenant(api, { kind: 'demo' });
    expect(tenant.status).toBe('demo');
    expect(tenant.kind).toBe('demo');
    expect(tenant.trial_ends_at).toBeNull();
    expect(tenant.plan).toBeNull();
  });

  it('reads a tenant by id and by slug, the same as created', async () => {
    const created = await createTenant(api);
    const byId = await api.get<Tenant>(`/v1/tenants/${created.id}`);
    expect(byId.status).toBe(200);
    expect(byId.body).toEqual(created);
    const bySlug = await api.get<Tenant>(`/v1/tenants/by-slug/${created.slug}`);
    expect(bySlug.status).toBe(200);
    expect(bySlug.body).toEqual(created);
  });

  it('answers 404 not_found for an unknown id or slug', async () => {
    for (const path of ['/v1/tenants/7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11', '/v1/tenants/by-slug/no-such-tenant']) {
      const answer = await api.get(path);
      expect(answer.status).toBe(404);
      expect(problemOf(answer).code).toBe('not_found');
    }
  });

  it('answers 400 with the field path for an id that is not a UUID', async () => {
    for (const id of ['not-a-uuid', 'urn:uuid:7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11']) {
      const answer = await api.get(`/v1/tenants/${encodeURIComponent(id)}`);
      expect(answer.status).toBe(400);
      const problem = problemOf(answer);
      expect(problem.code).toBe('validation_failed');
      expect(problem.errors).toContainEqual(expect.objectContaining({ path: '/id', in: 'params' }));
    }
  });

  it('answers 409 slug_taken for a duplicate slug, and keeps the first tenant', async () => {
    const first = await createTenant(api);
    const again = await api.post('/v1/tenants', { body: { slug: first.slug, name: 'Impostor' } });
    expect(again.status).toBe(409);
    expect(problemOf(again).code).toBe('slug_taken');
    expect((await api.get<Tenant>(`/v1/tenants/by-slug/${first.slug}`)).body.name).toBe(first.name);
  });

  it('lets exactly one of many concurrent creates with one slug win', async () => {
    const slug = randomSlug();
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => api.post('/v1/tenants', { body: { slug, name: `Racer ${i}` } })),
    );
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses).toEqual([201, 409, 409, 409, 409, 409, 409, 409]);
    expect(answers.filter((a) => a.status === 409).every((a) => problemOf(a).code === 'slug_taken')).toBe(true);
  });

  it.each([
    ['too short', 'ab'],
    ['leading dash', '-acme'],
    ['trailing dash', 'acme-'],
    ['uppercase', 'Acme'],
    ['underscore', 'ac_me'],
    ['too long', 'a'.repeat(41)],
    ['a space', 'ac me'],
  ])('refuses a slug with %s: 400 naming /slug', async (_case, slug) => {
    const answer = await api.post('/v1/tenants', { body: { slug, name: 'Bad Slug' } });
    expect(answer.status).toBe(400);
    const problem = problemOf(answer);
    expect(problem.code).toBe('validation_failed');
    expect(problem.errors).toContainEqual(expect.objectContaining({ path: '/slug', in: 'body' }));
  });

  it.each([
    ['a missing name', { slug: 'ok-slug' }, '/name'],
    ['a blank name', { slug: 'ok-slug', name: '   ' }, '/name'],
    ['a control character in the name', { slug: 'ok-slug', name: 'Evil\u0000Corp' }, '/name'],
    ['a name over 200 characters', { slug: 'ok-slug', name: 'n'.repeat(201) }, '/name'],
    ['an unknown kind', { slug: 'ok-slug', name: 'X', kind: 'partner' }, '/kind'],
    ['a number where a string belongs', { slug: 'ok-slug', name: 12345 }, '/name'],
    ['an invalid admin email', { slug: 'ok-slug', name: 'X', admin_email: 'not-an-email' }, '/admin_email'],
    ['an unknown field', { slug: 'ok-slug', name: 'X', owner: 'me' }, '/owner'],
    ['a status set by the client', { slug: 'ok-slug', name: 'X', status: 'active' }, '/status'],
  ])('refuses %s: 400 naming the field, nothing created', async (_case, body, path) => {
    const answer = await api.post('/v1/tenants', { body });
    expect(answer.status).toBe(400);
    const problem = problemOf(answer);
    expect(problem.code).toBe('validation_failed');
    expect(problem.errors).toContainEqual(expect.objectContaining({ path, in: 'body' }));
    expect((await api.get('/v1/tenants/by-slug/ok-slug')).status).toBe(404);
  });

  it('activates a trial, and refuses to activate it twice naming the current status', async () => {
    const tenant = await createTenant(api);
    const activated = await api.post<Tenant>(`/v1/tenants/${tenant.id}/activate`);
    expect(activated.status).toBe(200);
    expect(activated.body).toMatchObject({ id: tenant.id, status: 'active', trial_ends_at: null });

    const again = await api.post(`/v1/tenants/${tenant.id}/activate`);
    expect(again.status).toBe(409);
    const problem = problemOf(again);
    expect(problem.code).toBe('invalid_transition');
    expect(problem.current_status).toBe('active');
    expect(problem.detail).toContain('active');
  });

  it('cancels an active tenant to frozen, and re-activates a frozen one', async () => {
    const tenant = await createTenant(api);
    await api.post(`/v1/tenants/${tenant.id}/activate`);
    const frozen = await api.post<Tenant>(`/v1/tenants/${tenant.id}/cancel`);
    expect(frozen.status).toBe(200);
    expect(frozen.body.status).toBe('frozen');
    const cancelledAgain = await api.post(`/v1/tenants/${tenant.id}/cancel`);
    expect(cancelledAgain.status).toBe(409);
    expect(problemOf(cancelledAgain).current_status).toBe('frozen');
    const back = await api.post<Tenant>(`/v1/tenants/${tenant.id}/activate`);
    expect(back.body.status).toBe('active');
    expect((await api.get<Tenant>(`/v1/tenants/${tenant.id}`)).body.status).toBe('active');
  });

  it('cancels a trial to frozen and clears its trial end', async () => {
    const tenant = await createTenant(api);
    const frozen = await api.post<Tenant>(`/v1/tenants/${tenant.id}/cancel`);
    expect(frozen.body).toMatchObject({ status: 'frozen', trial_ends_at: null });
  });

  it('refuses every action on a demo tenant', async () => {
    const demo = await createTenant(api, { kind: 'demo' });
    for (const action of ['activate', 'cancel']) {
      const answer = await api.post(`/v1/tenants/${demo.id}/${action}`);
      expect(answer.status).toBe(409);
      expect(problemOf(answer)).toMatchObject({ code: 'invalid_transition', current_status: 'demo' });
    }
  });

  it('accepts an action with an empty JSON body, as many clients send', async () => {
    const tenant = await createTenant(api);
    const answer = await api.post<Tenant>(`/v1/tenants/${tenant.id}/activate`, {
      raw: '',
      headers: { 'content-type': 'application/json' },
    });
    expect(answer.status).toBe(200);
    expect(answer.body.status).toBe('active');
  });

  it('answers 404 for an action on an unknown tenant', async () => {
    const answer = await api.post('/v1/tenants/7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11/cancel');
    expect(answer.status).toBe(404);
    expect(problemOf(answer).code).toBe('not_found');
  });

  it('serializes concurrent transitions: one activate wins, the others see it', async () => {
    const tenant = await createTenant(api);
    const answers = await Promise.all(Array.from({ length: 5 }, () => api.post(`/v1/tenants/${tenant.id}/activate`)));
    expect(answers.map((a) => a.status).sort()).toEqual([200, 409, 409, 409, 409]);
  });

  it('bumps updated_at on a transition and keeps created_at', async () => {
    const tenant = await createTenant(api);
    await new Promise((resolve) => setTimeout(resolve, 5));
    const activated = (await api.post<Tenant>(`/v1/tenants/${tenant.id}/activate`)).body;
    expect(activated.created_at).toBe(tenant.created_at);
    expect(Date.parse(activated.updated_at)).toBeGreaterThan(Date.parse(tenant.updated_at));
  });
});
