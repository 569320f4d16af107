// The log line of each request, and what never appears in any line, with the service's own logger
// writing into memory at trace level (the most it ever writes).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from '../../src/auth/principal.js';
import { LOGGED_NAME_MAX_LENGTH, RequestLog } from '../../src/http/request-log.js';
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

  it('writes a named tenant id lowercase, as the routes accept it in any case', async () => {
    const tenant = await createTenant(api);
    output = '';
    const answer = await api.get(`/v1/entitlements?tenant_id=${tenant.id.toUpperCase()}`, { headers: { 'x-request-id': 'log-test-4' } });
    expect(answer.status).toBe(200);
    expect(lines().find((line) => line.request_id === 'log-test-4')).toMatchObject({ tenant_id: tenant.id });
  });

  // The line is written for refused requests too: a tenant_id that is not a UUID is not the
  // caller's tenant either, and none of it reaches the log.
  it.each<[string, unknown]>([
    ['60,000 characters', 'x'.repeat(60_000)],
    ['a UUID with text around it', `${'7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11'}${'y'.repeat(5_000)}`],
    ['a urn:uuid: UUID', 'urn:uuid:7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11'],
    ['a number', 12],
    ['an object', { id: 'z'.repeat(5_000) }],
    ['a list', ['q'.repeat(5_000)]],
    ['null', null],
  ])('writes tenant_id null for a body naming %s, and nothing of it', async (_case, tenantId) => {
    const tenant = await createTenant(api);
    const itAdmin = await server.as(identities.itAdmin(tenant.id));
    output = '';
    const answer = await itAdmin.post('/v1/catalog/trial-request', {
      body: { tenant_id: tenantId, product: 'risk' },
      headers: { 'x-request-id': 'log-test-5' },
    });
    expect(answer.status).toBe(400);
    expect(lines().find((line) => line.request_id === 'log-test-5')).toMatchObject({
      msg: 'request',
      status: 400,
      tenant_id: null,
      principal: `it-admin-${tenant.id}`,
    });
    for (const filler of ['xxxxxxxxxxxxxxxx', 'yyyyyyyyyyyyyyyy', 'zzzzzzzzzzzzzzzz', 'qqqqqqqqqqqqqqqq', 'urn:uuid']) {
      expect(output).not.toContain(filler);
    }
    expect(Math.max(...output.split('\n').map((line) => line.length))).toBeLessThan(2_000);
  });

  it('writes tenant_id null for a query naming a tenant id that is not one, or naming it twice', async () => {
    output = '';
    const long = 'w'.repeat(3_000);
    expect((await api.get(`/v1/entitlements?tenant_id=${long}`, { headers: { 'x-request-id': 'log-test-6' } })).status).toBe(400);
    const id = '7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11';
    await api.get(`/v1/entitlements?tenant_id=${id}&tenant_id=${id}`, { headers: { 'x-request-id': 'log-test-7' } });
    for (const requestId of ['log-test-6', 'log-test-7']) {
      expect(lines().find((line) => line.request_id === requestId)).toMatchObject({ tenant_id: null });
    }
    expect(output).not.toContain('wwwwwwwwwwwwwwww');
  });

  it(`cuts the caller's name to ${LOGGED_NAME_MAX_LENGTH} characters, whatever the token carried`, async () => {
    const tenant = await createTenant(api);
    const named = await server.as({ ...identities.member(tenant.id), preferred_username: 'n'.repeat(5_000) });
    output = '';
    expect((await named.get(`/v1/tenants/${tenant.id}`, { headers: { 'x-request-id': 'log-test-8' } })).status).toBe(200);
    const line = lines().find((l) => l.request_id === 'log-test-8');
    expect(line?.principal_name).toBe('n'.repeat(LOGGED_NAME_MAX_LENGTH));
    expect(output).not.toContain('n'.repeat(LOGGED_NAME_MAX_LENGTH + 1));
  });
});

// The request log's own bounds, whatever principal it is handed: tokens are checked elsewhere,
// and this line must stay bounded even if a principal ever comes from somewhere that is not.
describe('the request log line, on its own', () => {
  it(`cuts principal and principal_name to ${LOGGED_NAME_MAX_LENGTH} characters, never inside one`, () => {
    let written = '';
    const logger = createLogger({ appEnv: 'prod', logLevel: 'info' }, { destination: { write: (line: string) => void (written += line) } });
    const principal = { sub: 's'.repeat(10_000), name: '🦊'.repeat(10_000), tenantId: null } as unknown as Principal;
    const request = { method: 'GET', routeOptions: { url: '/v1/catalog' }, params: {}, query: {}, body: undefined, principal };
    const reply = { statusCode: 200, elapsedTime: 1.25, log: logger };
    new RequestLog().requestCompleted(null, request as unknown as FastifyRequest, reply as unknown as FastifyReply);
    const line = JSON.parse(written) as { principal: string; principal_name: string; tenant_id: unknown };
    expect(line.principal).toBe('s'.repeat(LOGGED_NAME_MAX_LENGTH));
    expect(Array.from(line.principal_name)).toEqual(Array.from('🦊'.repeat(LOGGED_NAME_MAX_LENGTH)));
    expect(line.tenant_id).toBeNull();
  });
});
