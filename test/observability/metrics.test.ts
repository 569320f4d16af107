// The Prometheus metrics, read back the way a scraper reads them: GET /metrics, text format.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpAdapter } from '../../src/keycloak/http-adapter.js';
import { observeKeyCache, observePool } from '../../src/observability/metrics.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { identities } from '../support/identities.js';
import { startKeycloakStub } from '../support/keycloak-stub.js';
import { startServer, type TestServer } from '../support/server.js';

/** The value of one series, e.g. value(text, 'x_total', { code: 'VALID' }); 0 when absent. */
function value(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (wanted.every((pair) => line.includes(pair))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

eachDriver('metrics', (driver) => {
  let server: TestServer;
  const scrape = async () => {
    const answer = await fetch(`${server.url}/metrics`);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^text\/plain/);
    return answer.text();
  };
  beforeAll(async () => {
    server = await startServer(driver);
  });
  afterAll(() => server.close());

  it('serves process metrics without a token', async () => {
    const text = await scrape();
    expect(text).toContain('tenant_registry_process_cpu_user_seconds_total');
    expect(text).toContain('tenant_registry_nodejs_eventloop_lag_seconds');
  });

  it('counts requests and their latency per route pattern and status, never per raw URL', async () => {
    const before = await scrape();
    const labels = { method: 'POST', route: '/v1/tenants', status: '201' };
    const tenant = await createTenant(server.api);
    await server.api.get(`/v1/tenants/${tenant.id}`);
    await server.api.get('/v1/tenants/7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11');
    const after = await scrape();
    expect(value(after, 'tenant_registry_http_request_duration_seconds_count', labels)).toBe(
      value(before, 'tenant_registry_http_request_duration_seconds_count', labels) + 1,
    );
    expect(value(after, 'tenant_registry_http_request_duration_seconds_count', { route: '/v1/tenants/:id', status: '404' })).toBeGreaterThan(0);
    expect(value(after, 'tenant_registry_http_request_duration_seconds_bucket', { ...labels, le: '+Inf' })).toBeGreaterThan(0);
    expect(after).not.toContain(tenant.id);
  });

  it('counts audit appends', async () => {
    const before = value(await scrape(), 'tenant_registry_audit_appends_total');
    await createTenant(server.api);
    await server.api.post('/v1/audit', { body: { action: 'metrics.probe', crud: 'r', actor: { id: 'm' } } });
    expect(value(await scrape(), 'tenant_registry_audit_appends_total')).toBe(before + 2);
  });

  it('counts verify verdicts by code, and reports the verify cache lookups', async () => {
    observeKeyCache(server.keys.verifier.cache);
    const tenant = await createTenant(server.api);
    const created = await server.api.post<{ key: string }>('/v1/api-keys', { body: { tenant_id: tenant.id, name: 'm' } });
    const service = await server.as(identities.service());
    const before = await scrape();
    const key = created.body.key;
    // Its last character changed (to one it is not), so the checksum fails.
    const mistyped = `${key.slice(0, -1)}${key.endsWith('x') ? 'y' : 'x'}`;
    for (const candidate of [key, key, 'bp_malformed', mistyped]) {
      await service.post('/v1/internal/api-keys/verify', { body: { key: candidate } });
    }
    const after = await scrape();
    const delta = (code: string) =>
      value(after, 'tenant_registry_key_verifications_total', { code }) - value(before, 'tenant_registry_key_verifications_total', { code });
    expect(delta('VALID')).toBe(2);
    expect(delta('MALFORMED')).toBe(2);
    expect(value(after, 'tenant_registry_key_cache_lookups', { result: 'hit' })).toBeGreaterThan(value(before, 'tenant_registry_key_cache_lookups', { result: 'hit' }));
  });

  it.runIf(driver === 'pg')('reports the PostgreSQL pool', async () => {
    observePool(server.db.poolState!());
    const text = await scrape();
    expect(value(text, 'tenant_registry_db_pool_connections', { state: 'total' })).toBeGreaterThan(0);
    expect(text).toContain('tenant_registry_db_pool_connections{state="waiting"}');
  });
});

describe('Keycloak call metrics', () => {
  it('counts Admin API calls by step and outcome', async () => {
    const stub = await startKeycloakStub({ userProfileAttributes: ['tenant_id'] });
    const { metricsRegistry } = await import('../../src/observability/metrics.js');
    try {
      const adapter = new HttpAdapter({
        baseUrl: stub.url,
        realm: stub.realm,
        clientId: stub.clientId,
        clientSecret: stub.clientSecret,
        itAdminRole: 'IT_ADMIN',
        inviteLifespanSeconds: 60,
        callTimeoutMs: 2000,
      });
      const before = await metricsRegistry.metrics();
      await adapter.provision(
        { tenantId: 't', slug: 'metrics-org', name: 'Metrics Org', adminEmail: 'it@metrics.example.com', adminName: null, knownOrganizationId: null },
        AbortSignal.timeout(5000),
      );
      stub.fail({ method: 'PUT' }, '500');
      await expect(
        adapter.provision(
          { tenantId: 't', slug: 'metrics-org', name: 'Metrics Org', adminEmail: 'it@metrics.example.com', adminName: null, knownOrganizationId: null },
          AbortSignal.timeout(5000),
        ),
      ).rejects.toMatchObject({ step: 'invite' });
      const after = await metricsRegistry.metrics();
      const delta = (labels: Record<string, string>) =>
        value(after, 'tenant_registry_keycloak_calls_total', labels) - value(before, 'tenant_registry_keycloak_calls_total', labels);
      expect(delta({ step: 'organization', outcome: 'ok' })).toBeGreaterThanOrEqual(1);
      // The first run's mail, and the second run's look at the user's credentials before its mail.
      expect(delta({ step: 'invite', outcome: 'ok' })).toBe(2);
      expect(delta({ step: 'invite', outcome: 'unavailable' })).toBe(1);
    } finally {
      await stub.close();
    }
  });
});
