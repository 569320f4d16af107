import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { ChainReport } from '../../src/domain/audit-chain.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant, randomSlug } from '../support/factories.js';
import { problemOf, type Answer, type Client } from '../support/http.js';
import { startServer, type TestServer } from '../support/server.js';
import { START } from '../support/time.js';

const NOW = new Date(START);

eachDriver('audit events commit with their change', (driver) => {
  let server: TestServer;
  let api: Client;
  // What the operator sees: the cause of a 500 must be logged, while the client gets none of it.
  const logLines: string[] = [];
  beforeAll(async () => {
    const logger = pino({ level: 'error' }, { write: (line: string) => void logLines.push(line) });
    server = await startServer(driver, { clock: () => NOW, logger });
    api = server.api;
  });
  afterAll(() => server.close());

  // Every fault a test installs is removed after it, pass or fail, so no other test meets it.
  const cleanups: string[] = [];
  afterEach(async () => {
    while (cleanups.length > 0) await server.db.exec(cleanups.pop()!);
  });

  /** Installs a plpgsql function that raises, and a trigger (of `create`) that calls it. */
  async function installFault(name: string, create: string, table: 'audit_log' | 'tenants') {
    await server.db.exec(`
      CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'injected fault % (secret internals)', TG_NAME;
      END;
      $$;
      ${create};
    `);
    cleanups.push(`DROP TRIGGER IF EXISTS ${name} ON ${table}; DROP FUNCTION IF EXISTS ${name}();`);
  }

  const verify = async (tenantId: string) => (await api.get<ChainReport>(`/v1/audit/verify?tenant_id=${tenantId}`)).body;

  const count = async (sql: string, params: unknown[]) =>
    (await server.db.query<{ n: number }>(`SELECT count(*) AS n FROM ${sql}`, params))[0]!.n;

  const actionsOf = async (tenantId: string) =>
    (
      await server.db.query<{ action: string }>('SELECT action FROM audit_log WHERE chain_key = $1 ORDER BY chain_seq', [tenantId])
    ).map((row) => row.action);

  /** Heads of tenant chains whose tenant does not exist: what a half-rolled-back append would leave. */
  const orphanHeads = () =>
    count("audit_chains WHERE chain_key <> 'platform' AND chain_key NOT IN (SELECT id::text FROM tenants)", []);

  function expectOpaque500(answer: Answer) {
    expect(answer.status).toBe(500);
    const problem = problemOf(answer);
    expect(problem).toMatchObject({ status: 500, code: 'internal_error', detail: 'an unexpected error occurred' });
    expect(Object.keys(problem).sort()).toEqual(['code', 'detail', 'request_id', 'status', 'title', 'type']);
    expect(answer.text).not.toMatch(/injected|secret|audit_log|tenants|trigger|plpgsql|P0001|at \w+ \(/i);
    const logged = logLines.filter((line) => line.includes(String(problem.request_id)));
    expect(logged.some((line) => line.includes('injected fault'))).toBe(true);
  }

  it('creates no tenant when its tenant.created event cannot be written', async () => {
    const slug = randomSlug('fault');
    await installFault(
      'fail_created_event',
      `CREATE TRIGGER fail_created_event BEFORE INSERT ON audit_log FOR EACH ROW
         WHEN (NEW.action = 'tenant.created' AND NEW.target_name = '${slug}') EXECUTE FUNCTION fail_created_event()`,
      'audit_log',
    );
    const answer = await api.post('/v1/tenants', { body: { slug, name: 'Doomed Inc' } });
    expectOpaque500(answer);

    expect((await api.get(`/v1/tenants/by-slug/${slug}`)).status).toBe(404);
    expect(await count('tenants WHERE slug = $1', [slug])).toBe(0);
    expect(await count('audit_log WHERE target_name = $1', [slug])).toBe(0);
    expect(await orphanHeads()).toBe(0);

    // The trigger only matches that slug: other tenants are created as usual meanwhile.
    const bystander = await createTenant(api);
    expect(await verify(bystander.id)).toEqual({ ok: true, checked: 1 });
  });

  it('creates the tenant with a clean chain on the first attempt after the fault is gone', async () => {
    const slug = randomSlug('fault');
    await installFault(
      'fail_created_once',
      `CREATE TRIGGER fail_created_once BEFORE INSERT ON audit_log FOR EACH ROW
         WHEN (NEW.action = 'tenant.created' AND NEW.target_name = '${slug}') EXECUTE FUNCTION fail_created_once()`,
      'audit_log',
    );
    expect((await api.post('/v1/tenants', { body: { slug, name: 'Retry Inc' } })).status).toBe(500);
    await server.db.exec(cleanups.pop()!);

    const answer = await api.post<{ tenant: Tenant }>('/v1/tenants', { body: { slug, name: 'Retry Inc' } });
    expect(answer.status).toBe(201);
    const rows = await server.db.query('SELECT chain_seq, action FROM audit_log WHERE chain_key = $1', [answer.body.tenant.id]);
    expect(rows).toEqual([{ chain_seq: 1, action: 'tenant.created' }]);
    expect(await verify(answer.body.tenant.id)).toEqual({ ok: true, checked: 1 });
  });

  it('keeps neither the tenant nor its event when the tenant fails at commit, after the event was written', async () => {
    const slug = randomSlug('fault');
    // Deferred: the row and the event are both written; the failure comes only at COMMIT.
    await installFault(
      'fail_tenant_at_commit',
      `CREATE CONSTRAINT TRIGGER fail_tenant_at_commit AFTER INSERT ON tenants
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
         WHEN (NEW.slug = '${slug}') EXECUTE FUNCTION fail_tenant_at_commit()`,
      'tenants',
    );
    const answer = await api.post('/v1/tenants', { body: { slug, name: 'Late Failure Ltd' } });
    expectOpaque500(answer);

    expect((await api.get(`/v1/tenants/by-slug/${slug}`)).status).toBe(404);
    expect(await count('tenants WHERE slug = $1', [slug])).toBe(0);
    expect(await count('audit_log WHERE target_name = $1', [slug])).toBe(0);
    expect(await orphanHeads()).toBe(0);
    // The connection that failed to commit serves the next request normally.
    const next = await Promise.all(Array.from({ length: 6 }, () => createTenant(api)));
    for (const tenant of next) expect(await verify(tenant.id)).toEqual({ ok: true, checked: 1 });
  });

  it('leaves the tenant in trial when its tenant.activated event cannot be written', async () => {
    const tenant = await createTenant(api);
    await installFault(
      'fail_activated_event',
      `CREATE TRIGGER fail_activated_event BEFORE INSERT ON audit_log FOR EACH ROW
         WHEN (NEW.action = 'tenant.activated' AND NEW.tenant_id = '${tenant.id}'::uuid)
         EXECUTE FUNCTION fail_activated_event()`,
      'audit_log',
    );
    const answer = await api.post(`/v1/tenants/${tenant.id}/activate`);
    expectOpaque500(answer);

    const after = await api.get<Tenant>(`/v1/tenants/${tenant.id}`);
    expect(after.body).toMatchObject({ status: 'trial', trial_ends_at: tenant.trial_ends_at, updated_at: tenant.updated_at });
    expect(await actionsOf(tenant.id)).toEqual(['tenant.created']);
    expect(await verify(tenant.id)).toEqual({ ok: true, checked: 1 });

    // Another tenant's activation is untouched by the fault.
    const other = await createTenant(api);
    expect((await api.post<Tenant>(`/v1/tenants/${other.id}/activate`)).body.status).toBe('active');

    await server.db.exec(cleanups.pop()!);
    const retried = await api.post<Tenant>(`/v1/tenants/${tenant.id}/activate`);
    expect(retried.status).toBe(200);
    expect(retried.body.status).toBe('active');
    expect(await actionsOf(tenant.id)).toEqual(['tenant.created', 'tenant.activated']);
    expect(await verify(tenant.id)).toEqual({ ok: true, checked: 2 });
  });

  it('leaves the tenant active when its tenant.cancelled event fails at commit', async () => {
    const tenant = await createTenant(api);
    expect((await api.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(200);
    await installFault(
      'fail_cancelled_at_commit',
      `CREATE CONSTRAINT TRIGGER fail_cancelled_at_commit AFTER INSERT ON audit_log
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
         WHEN (NEW.action = 'tenant.cancelled' AND NEW.tenant_id = '${tenant.id}'::uuid)
         EXECUTE FUNCTION fail_cancelled_at_commit()`,
      'audit_log',
    );
    expectOpaque500(await api.post(`/v1/tenants/${tenant.id}/cancel`));
    expect((await api.get<Tenant>(`/v1/tenants/${tenant.id}`)).body.status).toBe('active');
    expect(await actionsOf(tenant.id)).toEqual(['tenant.created', 'tenant.activated']);
    expect(await verify(tenant.id)).toEqual({ ok: true, checked: 2 });
  });

  it('writes no event for a refused transition, and the chain stays valid', async () => {
    const tenant = await createTenant(api);
    expect((await api.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(200);
    const again = await api.post(`/v1/tenants/${tenant.id}/activate`);
    expect(again.status).toBe(409);
    expect(problemOf(again).code).toBe('invalid_transition');
    expect(await actionsOf(tenant.id)).toEqual(['tenant.created', 'tenant.activated']);
    expect(await verify(tenant.id)).toEqual({ ok: true, checked: 2 });

    const demo = await createTenant(api, { kind: 'demo' });
    for (const action of ['activate', 'cancel']) expect((await api.post(`/v1/tenants/${demo.id}/${action}`)).status).toBe(409);
    expect(await actionsOf(demo.id)).toEqual(['tenant.created']);
    expect(await verify(demo.id)).toEqual({ ok: true, checked: 1 });
  });

  it('writes nothing, not even a chain head, for an action or an event on an unknown tenant', async () => {
    const unknown = '7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11';
    expect((await api.post(`/v1/tenants/${unknown}/activate`)).status).toBe(404);
    const event = await api.post('/v1/audit', { body: { action: 'x.done', crud: 'c', tenant_id: unknown, actor: { id: 'u' } } });
    expect(event.status).toBe(404);
    expect(await count('audit_log WHERE chain_key = $1', [unknown])).toBe(0);
    expect(await count('audit_chains WHERE chain_key = $1', [unknown])).toBe(0);
  });

  it('keeps the chain whole under concurrent transitions and published events on one tenant', async () => {
    const tenant = await createTenant(api);
    const transitions = Array.from({ length: 4 }, (_, i) => api.post(`/v1/tenants/${tenant.id}/${i % 2 === 0 ? 'activate' : 'cancel'}`));
    const events = Array.from({ length: 12 }, (_, i) =>
      api.post('/v1/audit', { body: { action: 'document.edited', crud: 'u', tenant_id: tenant.id, actor: { id: `u${i}` } } }),
    );
    const answers = await Promise.all([...transitions, ...events]);
    const transitionStatuses = answers.slice(0, 4).map((answer) => answer.status);
    expect(transitionStatuses.every((status) => status === 200 || status === 409)).toBe(true);
    expect(answers.slice(4).every((answer) => answer.status === 201)).toBe(true);

    const succeeded = transitionStatuses.filter((status) => status === 200).length;
    const actions = await actionsOf(tenant.id);
    expect(actions.filter((action) => action === 'tenant.activated' || action === 'tenant.cancelled')).toHaveLength(succeeded);
    expect(actions).toHaveLength(1 + succeeded + 12);
    expect(await verify(tenant.id)).toEqual({ ok: true, checked: actions.length });
    // The tenant's final status is the one the last recorded transition moved it to.
    const lastTransition = actions.filter((action) => action !== 'document.edited').at(-1);
    const statusAfter: Record<string, string> = { 'tenant.created': 'trial', 'tenant.activated': 'active', 'tenant.cancelled': 'frozen' };
    const expectedStatus = statusAfter[lastTransition!];
    expect((await api.get<Tenant>(`/v1/tenants/${tenant.id}`)).body.status).toBe(expectedStatus);
  });
});
