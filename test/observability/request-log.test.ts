// The log line of each request, and what never appears in any line, with the service's own logger
// writing into memory at trace level (the most it ever writes).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import { createTenant } from '../support/factories.js';
import type { Client } from '../support/http.js';
import { identities } from '../support/identities.js';
import { startServer, type TestServer } from '../support/server.js';

interface Line {
  level: number;
  msg: string;
  [field: string]: unknown;
}

describe('the request log', () => {
  let output = '';
  let server: TestServer;
  let api: Client;
  const lines = (): Line[] =>
    output
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Line);

  beforeAll(async () => {
    const logger = createLogger({ appEnv: 'prod', logLevel: 'trace' }, { destination: { write: (line: string) => void (output += line) } });
    server = await startServer('pglite', { logger });
    api = server.api;
  });
  afterAll(() => server.close());

  it('writes one line per request: method, route, status, duration, request id, tenant, principal', async () => {
    const tenant = await createTenant(api);
    const member = await server.as(identities.member(tenant.id));
    output = '';
    const answer = await member.get(`/v1/tenants/${tenant.id}`, { headers: { 'x-request-id': 'log-test-1' } });
    expect(answer.status).toBe(200);
    const requestLines = lines().filter((line) => line.request_id === 'log-test-1');
    expect(requestLines).toHaveLength(1);
    expect(requestLines[0]).toMatchObject({
      level: 30,
      msg: 'request',
      method: 'GET',
      route: '/v1/tenants/:id',
      status: 200,
      tenant_id: tenant.id,
      principal: `member-${tenant.id}`,
      principal_name: 'mia.member',
    });
    expect(typeof requestLines[0]!.duration_ms).toBe('number');
    // The raw URL is not logged: it may carry identifiers the route pattern leaves out.
    expect(JSON.stringify(requestLines[0])).not.toContain('"url"');
  });

  it('names the tenant a request is about, from its path, query or body', async () => {
    const tenant = await createTenant(api);
    output = '';
    await api.get(`/v1/entitlements?tenant_id=${tenant.id}`, { headers: { 'x-request-id': 'log-test-2' } });
    await api.post('/v1/catalog/trial-request', { body: { tenant_id: tenant.id, product: 'risk' }, headers: { 'x-request-id': 'log-test-3' } });
    for (const id of ['log-test-2', 'log-test-3']) {
      expect(lines().find((line) => line.request_id === id)).toMatchObject({ tenant_id: tenant.id, principal: 'operator-1' });
    }
  });

  it('never writes a bearer token, an API key or its hash, whatever the request did', async () => {
    const tenant = await createTenant(api);
    output = '';
    const created = await api.post<{ key: string; id: string }>('/v1/api-keys', { body: { tenant_id: tenant.id, name: 'ci' } });
    const key = created.body.key;
    const service = await server.as(identities.service());
    await service.post('/v1/internal/api-keys/verify', { body: { key } });
    await service.post('/v1/internal/api-keys/verify', { body: { key, extra: key } });
    await service.post('/v1/internal/api-keys/verify', { body: { [key]: true } });
    await service.post('/v1/internal/api-keys/verify', { raw: `{"key": "${key}"`, headers: { 'content-type': 'application/json' } });
    await api.get(`/v1/tenants/${key}`);
    await api.request('DELETE', `/v1/api-keys/${created.body.id}`);
    await service.get('/v1/tenants/by-slug/acme', { headers: { authorization: `Bearer ${key}` } });
    const hashes = [...(await server.db.query<{ hex: string; b64: string }>(
      `SELECT encode(key_hash, 'hex') AS hex, encode(key_hash, 'base64') AS b64 FROM api_keys WHERE id = $1`,
      [created.body.id],
    ))];
    expect(output.length).toBeGreaterThan(500);
    for (const secret of [key, key.slice(3, 30), api.token!, service.token!, hashes[0]!.hex, hashes[0]!.b64]) {
      expect(output).not.toContain(secret);
    }
  });
});
