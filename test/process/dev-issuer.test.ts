// The embedded development issuer, in the real process: it exists only with APP_ENV=dev and no
// KEYCLOAK_ISSUER, its tokens (from POST /dev/token or `npm run token`) work on /v1 with the
// roles and tenant they name, and nothing outside dev can run without a real issuer.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { ACME_TENANT } from '../../src/store/seed.js';
import { randomSlug } from '../support/factories.js';
import { client, problemOf, type Client } from '../support/http.js';
import { identities } from '../support/identities.js';
import { startTestIssuer, type TestIssuer } from '../support/issuer.js';
import { entryArgs, PROCESS_TEST_TIMEOUT_MS, PROCESS_WAIT_MS, PROJECT_DIR, freePort, spawnService, startService, stopAll, type ServiceProcess } from './spawn.js';

// spawn.ts clears only some of the variables config.ts reads; the auth ones are cleared here so
// a developer's shell cannot change what these tests see.
const AUTH_DEFAULTS = {
  KEYCLOAK_AUDIENCE: '',
  AUTH_ROLES_CLIENT: '',
  ROLE_PLATFORM_ADMIN: '',
  ROLE_IT_ADMIN: '',
  ROLE_REGISTRY_SERVICE: '',
};

const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `npm run token -- <args>`: the token command (src/cli/token.ts) with `args`. */
function runTokenCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const { ADDR: _inherited, ...inherited } = process.env;
  const child = spawn(process.execPath, [...entryArgs('src/cli/token.ts'), ...args], {
    cwd: PROJECT_DIR,
    env: { ...inherited, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function cliToken(args: string[], env: Record<string, string> = {}): Promise<string> {
  const result = await runTokenCli(args, env);
  expect(result.code, result.stderr).toBe(0);
  expect(result.stdout).toMatch(/^[^\n]+\n$/);
  const token = result.stdout.trim();
  expect(token).toMatch(JWT);
  return token;
}

async function devTokenFor(baseUrl: string, body: Record<string, unknown>) {
  const response = await fetch(`${baseUrl}/dev/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

// Both services start together (each boots an embedded database) and serve the whole file.
let devService: ServiceProcess;
let keycloakService: ServiceProcess;
let issuer: TestIssuer | undefined;
beforeAll(async () => {
  issuer = await startTestIssuer();
  [devService, keycloakService] = await Promise.all([
    startService({ APP_ENV: 'dev', ...AUTH_DEFAULTS }),
    startService({ APP_ENV: 'dev', KEYCLOAK_ISSUER: issuer.url, ...AUTH_DEFAULTS }),
  ]);
}, PROCESS_TEST_TIMEOUT_MS);
afterAll(async () => {
  await stopAll();
  await issuer?.close();
});

describe('APP_ENV=dev without KEYCLOAK_ISSUER', () => {
  let service: ServiceProcess;
  let admin: Client;
  beforeAll(async () => {
    service = devService;
    const minted = await devTokenFor(service.baseUrl, { roles: ['platform_admin'] });
    admin = client(service.baseUrl, minted.body.access_token as string);
  });

  it('mints a bearer token at POST /dev/token that creates a tenant on /v1', async () => {
    const minted = await devTokenFor(service.baseUrl, { roles: ['platform_admin'], sub: 'dev-operator', name: 'Dev Operator' });
    expect(minted.status).toBe(200);
    expect(minted.body).toMatchObject({ token_type: 'Bearer', expires_in: 8 * 60 * 60 });
    expect(minted.body.access_token).toMatch(JWT);

    const api = client(service.baseUrl, minted.body.access_token as string);
    const created = await api.post<{ tenant: Tenant }>('/v1/tenants', { body: { slug: randomSlug('dev'), name: 'Dev GmbH' } });
    expect(created.status, created.text).toBe(201);

    const events = await api.get<{ items: Array<{ action: string; actor: unknown }> }>(
      `/v1/audit?tenant_id=${created.body.tenant.id}&action=tenant.created`,
    );
    expect(events.body.items.map((event) => event.actor)).toEqual([
      { id: 'dev-operator', name: 'Dev Operator', href: null, fields: { kind: 'user' } },
    ]);
  });

  it('mints tokens that grant only the roles asked for', async () => {
    const plain = await devTokenFor(service.baseUrl, { roles: [] });
    const answer = await client(service.baseUrl, plain.body.access_token as string).post('/v1/tenants', {
      body: { slug: randomSlug('dev'), name: 'Nope' },
    });
    expect(answer.status).toBe(403);
    expect(problemOf(answer).code).toBe('forbidden');
  });

  it('signs its tokens: a token whose roles were edited is refused', async () => {
    const plain = (await devTokenFor(service.baseUrl, { roles: [] })).body.access_token as string;
    const [header, payload, signature] = plain.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const edited = Buffer.from(JSON.stringify({ ...claims, realm_access: { roles: ['platform_admin'] } })).toString('base64url');
    const answer = await client(service.baseUrl, `${header}.${edited}.${signature}`).post('/v1/tenants', {
      body: { slug: randomSlug('dev'), name: 'Forged' },
    });
    expect(answer.status).toBe(401);
    expect(problemOf(answer).code).toBe('unauthorized');
  });

  it('prints a working token with `npm run token -- --role platform_admin --url <base>`', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    const token = await cliToken(['--role', 'platform_admin', '--url', service.baseUrl]);
    const created = await client(service.baseUrl, token).post('/v1/tenants', { body: { slug: randomSlug('cli'), name: 'CLI GmbH' } });
    expect(created.status, created.text).toBe(201);
  });

  it('finds the service where ADDR puts it when no --url is given', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    for (const addr of [`:${service.port}`, `127.0.0.1:${service.port}`, `0.0.0.0:${service.port}`]) {
      const token = await cliToken(['--role', 'platform_admin'], { ADDR: addr });
      expect((await client(service.baseUrl, token).get('/v1/tenants?limit=1')).status, addr).toBe(200);
    }
    // Nothing listens there: the message names where it looked.
    const nowhere = await runTokenCli(['--role', 'platform_admin'], { ADDR: `127.0.0.1:${await freePort()}` });
    expect(nowhere.code).toBe(1);
    expect(nowhere.stderr).toMatch(/no service answers at http:\/\/127\.0\.0\.1:\d+/);
  });

  it('prints a --tenant token that reads that tenant, and gets 404 for another', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    const tenant = await admin.post<{ tenant: Tenant }>('/v1/tenants', { body: { slug: randomSlug('own'), name: 'Own GmbH' } });
    expect(tenant.status).toBe(201);
    const { id } = tenant.body.tenant;
    const [member, itAdmin] = await Promise.all([
      cliToken(['--tenant', id, '--url', service.baseUrl]),
      cliToken(['--role', 'IT_ADMIN', '--tenant', id, '--url', service.baseUrl]),
    ]);

    const asMember = client(service.baseUrl, member);
    expect((await asMember.get<Tenant>(`/v1/tenants/${id}`)).body).toMatchObject({ id, status: 'trial' });
    const other = await asMember.get(`/v1/tenants/${ACME_TENANT.id}`);
    expect(other.status).toBe(404);
    expect(problemOf(other).code).toBe('not_found');
    expect((await asMember.get(`/v1/audit?tenant_id=${id}`)).status).toBe(403);

    const asItAdmin = client(service.baseUrl, itAdmin);
    expect((await asItAdmin.get(`/v1/audit?tenant_id=${id}`)).status).toBe(200);
    expect((await asItAdmin.get(`/v1/audit?tenant_id=${ACME_TENANT.id}`)).status).toBe(404);
  });

  it('keeps the development issuer out of openapi.yaml while serving it', async () => {
    const jwks = await fetch(`${service.baseUrl}/dev/jwks.json`);
    expect(jwks.status).toBe(200);
    expect(((await jwks.json()) as { keys: unknown[] }).keys).toHaveLength(1);

    const spec = await fetch(`${service.baseUrl}/openapi.yaml`);
    expect(spec.status).toBe(200);
    const text = await spec.text();
    expect(text).toContain('/v1/tenants');
    expect(text).not.toContain('/dev/');
    expect(text).not.toMatch(/dev-issuer|jwks\.json/);
  });
});

describe('APP_ENV=dev with KEYCLOAK_ISSUER', () => {
  let service: ServiceProcess;
  let keycloak: TestIssuer;
  beforeAll(() => {
    service = keycloakService;
    keycloak = issuer!;
  });

  it('has no development issuer: /dev/token and /dev/jwks.json are 404 route_not_found', async () => {
    const minted = await devTokenFor(service.baseUrl, { roles: ['platform_admin'] });
    expect(minted.status).toBe(404);
    expect(minted.body.code).toBe('route_not_found');
    const jwks = await fetch(`${service.baseUrl}/dev/jwks.json`);
    expect(jwks.status).toBe(404);
    expect(((await jwks.json()) as { code: string }).code).toBe('route_not_found');
  });

  it("takes the issuer's tokens", async () => {
    const api = client(service.baseUrl, await keycloak.mint(identities.platformAdmin()));
    const created = await api.post('/v1/tenants', { body: { slug: randomSlug('kc'), name: 'Keycloak GmbH' } });
    expect(created.status, created.text).toBe(201);
    expect(keycloak.discoveryFetches).toBe(1);
  });

  it('makes `npm run token` say so and exit non-zero', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    const result = await runTokenCli(['--role', 'platform_admin', '--url', service.baseUrl]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('runs no development issuer');
  });
});

describe('outside dev', () => {
  it.each(['stage', 'prod'])(
    'APP_ENV=%s with DATABASE_URL but no KEYCLOAK_ISSUER refuses to start, in one line naming KEYCLOAK_ISSUER',
    { timeout: PROCESS_TEST_TIMEOUT_MS },
    async (appEnv) => {
      // LOG_LEVEL=info would print "Server listening" had it listened: stdout stays empty. Nothing
      // listens at the database URL either, so a process that got past the check fails differently.
      const service = spawnService({ APP_ENV: appEnv, DATABASE_URL: 'postgres://registry@127.0.0.1:1/registry', LOG_LEVEL: 'info', ...AUTH_DEFAULTS }, await freePort());
      const exit = await service.waitForExit(PROCESS_WAIT_MS);
      expect(exit, 'the process should have exited').not.toBeNull();
      expect(exit?.code).toBeGreaterThan(0);
      expect(service.stdout()).toBe('');
      expect(service.stderr()).toMatch(/^[^\n]+\n$/);
      expect(service.stderr()).toContain('KEYCLOAK_ISSUER');
    },
  );
});
