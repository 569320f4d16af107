// Issuers as they are deployed, met with a real OpenID Connect server (oidc-provider, in-process
// on loopback) and the service configured the way service.ts configures it: loadConfig ->
// authenticationFor -> buildApp. An issuer ending in a slash (Auth0's form), one that names
// another host than the one configured (localhost vs 127.0.0.1), one discovered from an internal
// address while its tokens carry the public one (KEYCLOAK_DISCOVERY_URL), and Ed25519 tokens.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeProtectedHeader } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { authenticationFor, logIssuerChange, type IssuerLog } from '../../src/auth/setup.js';
import { discoveryDocumentUrl, issuerDiscovery, jwksUrlFor, type IssuerChange } from '../../src/auth/discovery.js';
import { loadConfig } from '../../src/config.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { openMigratedDatabase, type TestDatabase } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { client, problemOf } from '../support/http.js';
import { OIDC_AUDIENCE, startOidcProvider, type OidcServer, type OidcServerOptions } from '../support/oidc-provider.js';
import { startServerOn, type StartedApp } from '../support/server.js';

// Keycloak-style roles, added to every access token the provider issues: an operator.
const OPERATOR = { realm_access: { roles: ['platform_admin'] } };

let database: TestDatabase;
beforeAll(async () => {
  database = await openMigratedDatabase('pglite');
});
afterAll(() => database.close());

const started: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.allSettled(started.splice(0).map((server) => server.close()));
});

async function provider(options: OidcServerOptions): Promise<OidcServer> {
  const oidc = await startOidcProvider({ claims: OPERATOR, ...options });
  started.push(oidc);
  return oidc;
}

interface LogLine {
  level: 'info' | 'warn';
  fields: Record<string, unknown>;
  message: string;
}

/** The log authenticationFor writes the issuer's changes to, kept for the test to read. */
function recordingLog(): IssuerLog & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  return {
    lines,
    info: (fields, message) => lines.push({ level: 'info', fields: fields as Record<string, unknown>, message }),
    warn: (fields, message) => lines.push({ level: 'warn', fields: fields as Record<string, unknown>, message }),
  };
}

interface Service {
  app: StartedApp;
  log: ReturnType<typeof recordingLog>;
  as(token: string): ReturnType<typeof client>;
  readiness(): Promise<Record<string, unknown>>;
}

/** The service as service.ts builds it, from these variables (dev, with an audience). */
async function serviceWith(env: Record<string, string>): Promise<Service> {
  const log = recordingLog();
  const config = loadConfig({ APP_ENV: 'dev', KEYCLOAK_AUDIENCE: OIDC_AUDIENCE, ...env });
  const app = await startServerOn(database.db, { auth: await authenticationFor(config, { log }) });
  started.push(app);
  return {
    app,
    log,
    as: (token) => client(app.url, token),
    async readiness() {
      const answer = await client(app.url).get('/readyz');
      expect(answer.status).toBe(200);
      return answer.body;
    },
  };
}

/** A token of the provider works on /v1 end to end: a tenant is created and read back. */
async function worksEndToEnd(service: Service, token: string): Promise<void> {
  const api = service.as(token);
  const tenant = await createTenant(api);
  const read = await api.get<Tenant>(`/v1/tenants/by-slug/${tenant.slug}`);
  expect(read.status).toBe(200);
  expect(read.body.id).toBe(tenant.id);
}

/** A port nothing listens on: bound, read and released. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('the discovery address', () => {
  it.each([
    ['https://tenant.eu.auth0.com/', 'https://tenant.eu.auth0.com/.well-known/openid-configuration'],
    ['https://tenant.eu.auth0.com', 'https://tenant.eu.auth0.com/.well-known/openid-configuration'],
    ['https://id.example.com/realms/prod', 'https://id.example.com/realms/prod/.well-known/openid-configuration'],
    ['https://id.example.com/realms/prod/', 'https://id.example.com/realms/prod/.well-known/openid-configuration'],
    ['http://keycloak:8080/realms/prod/.well-known/openid-configuration', 'http://keycloak:8080/realms/prod/.well-known/openid-configuration'],
  ])('of %s is %s', (base, document) => {
    expect(discoveryDocumentUrl(base).href).toBe(document);
  });

  it.each([
    // Keycloak pinned to its public hostname, discovered internally: the keys come from inside.
    [
      'https://login.example.com/realms/prod/protocol/openid-connect/certs',
      'http://keycloak.internal:8080/realms/prod/.well-known/openid-configuration',
      'http://keycloak.internal:8080/realms/prod/protocol/openid-connect/certs',
    ],
    // Discovered at the issuer itself: as named.
    [
      'https://login.example.com/realms/prod/protocol/openid-connect/certs',
      'https://login.example.com/realms/prod/.well-known/openid-configuration',
      'https://login.example.com/realms/prod/protocol/openid-connect/certs',
    ],
    // Keys on another origin than the issuer's (a CDN): as named.
    [
      'https://keys.example.net/prod.json',
      'http://keycloak.internal:8080/realms/prod/.well-known/openid-configuration',
      'https://keys.example.net/prod.json',
    ],
  ])('fetches jwks_uri %s, discovered at %s, from %s', (jwksUri, documentUrl, fetched) => {
    expect(jwksUrlFor(new URL(jwksUri), 'https://login.example.com/realms/prod', new URL(documentUrl)).href).toBe(fetched);
  });
});

describe('an issuer whose identifier ends in a slash (Auth0)', () => {
  it('is expected exactly as configured: its tokens work end to end, discovered without a double slash', async () => {
    const oidc = await provider({ issuer: (origin) => `${origin}/` });
    const service = await serviceWith({ KEYCLOAK_ISSUER: oidc.issuer });
    await worksEndToEnd(service, await oidc.token());
    expect(oidc.requests).toContain('/.well-known/openid-configuration');
    expect(oidc.requests.filter((path) => path.includes('//'))).toEqual([]);
    expect(await service.readiness()).toEqual({ status: 'ready', checks: { database: 'up', keycloak: 'mock', issuer: 'up' } });
  });

  it('works under a path too (https://host/realms/prod/)', async () => {
    const oidc = await provider({ issuer: (origin) => `${origin}/realms/prod/`, mountPath: '/realms/prod' });
    const service = await serviceWith({ KEYCLOAK_ISSUER: oidc.issuer });
    await worksEndToEnd(service, await oidc.token());
    expect(oidc.requests).toContain('/realms/prod/.well-known/openid-configuration');
    expect(oidc.requests.filter((path) => path.includes('//'))).toEqual([]);
  });

  it('refuses a token that names the issuer without its slash, signed with its own key', async () => {
    const oidc = await provider({ issuer: (origin) => `${origin}/` });
    const service = await serviceWith({ KEYCLOAK_ISSUER: oidc.issuer });
    const answer = await service.as(await oidc.sign({ ...OPERATOR, sub: 'operator', iss: oidc.origin })).get('/v1/tenants/by-slug/acme');
    expect(answer.status).toBe(401);
    expect(problemOf(answer).detail).toMatch(/"iss" claim/);
    // The same token with the issuer's exact name passes: the iss was the only difference.
    const exact = await service.as(await oidc.sign({ ...OPERATOR, sub: 'operator' })).get('/v1/tenants/by-slug/acme');
    expect(exact.status).not.toBe(401);
  });

  it('names both when KEYCLOAK_ISSUER drops the slash the issuer has', async () => {
    const oidc = await provider({ issuer: (origin) => `${origin}/` });
    const service = await serviceWith({ KEYCLOAK_ISSUER: oidc.origin });
    const reason = `the issuer's discovery document names issuer "${oidc.origin}/", expected "${oidc.origin}"`;
    expect(await service.readiness()).toEqual({
      status: 'ready',
      checks: { database: 'up', keycloak: 'mock', issuer: 'mismatch' },
      details: { issuer: reason },
    });
    const answer = await service.as(await oidc.token()).get('/v1/tenants/by-slug/acme');
    expect(answer.status).toBe(503);
    expect(problemOf(answer)).toMatchObject({ code: 'unavailable', detail: `tokens cannot be verified: ${reason}` });
  });
});

describe('an issuer that names another host than the one configured (localhost vs 127.0.0.1)', () => {
  async function mismatched() {
    // The provider listens on 127.0.0.1 and calls itself localhost, as a Keycloak started with
    // KC_HOSTNAME=localhost does; the service is told 127.0.0.1.
    const oidc = await provider({ issuer: (origin) => origin.replace('127.0.0.1', 'localhost') });
    const service = await serviceWith({ KEYCLOAK_ISSUER: oidc.origin });
    const reason = `the issuer's discovery document names issuer "${oidc.issuer}", expected "${oidc.origin}"`;
    return { oidc, service, reason };
  }

  it('is reported by name in /readyz, which stays ready', async () => {
    const { service, reason } = await mismatched();
    expect(await service.readiness()).toEqual({
      status: 'ready',
      checks: { database: 'up', keycloak: 'mock', issuer: 'mismatch' },
      details: { issuer: reason },
    });
  });

  it('answers requests with a token 503 naming the mismatch, not "unreachable", and fetches no keys', async () => {
    const { oidc, service, reason } = await mismatched();
    const answer = await service.as(await oidc.token()).get('/v1/tenants/by-slug/acme');
    expect(answer.status).toBe(503);
    const problem = problemOf(answer);
    expect(problem).toMatchObject({ code: 'unavailable', detail: `tokens cannot be verified: ${reason}` });
    expect(problem.detail).not.toMatch(/unreachable/);
    expect(answer.headers.get('retry-after')).toBe('5');
    expect(oidc.jwksFetches).toBe(0);
    // Requests without a token are still told to bring one.
    expect((await client(service.app.url).get('/v1/tenants/by-slug/acme')).status).toBe(401);
  });

  it('is logged once, with expected and found, however many requests meet it', async () => {
    const { oidc, service, reason } = await mismatched();
    const token = await oidc.token();
    for (let i = 0; i < 3; i += 1) expect((await service.as(token).get('/v1/tenants/by-slug/acme')).status).toBe(503);
    await service.readiness();
    expect(service.log.lines).toHaveLength(1);
    expect(service.log.lines[0]).toMatchObject({
      level: 'warn',
      fields: { issuer: oidc.origin, expected: oidc.origin, found: oidc.issuer, discovery_url: `${oidc.origin}/.well-known/openid-configuration` },
    });
    expect(service.log.lines[0]!.message).toContain(reason);
    expect(service.log.lines[0]!.message).toContain('KEYCLOAK_DISCOVERY_URL');
  });

  it('is reported once even when discovery is retried many times', async () => {
    const { oidc, reason } = await mismatched();
    const changes: IssuerChange[] = [];
    const discovery = issuerDiscovery(oidc.origin, { retryAfterFailureMs: 0, onChange: (change) => changes.push(change) });
    for (let i = 0; i < 4; i += 1) expect(await discovery.check()).toEqual({ state: 'mismatch', reason, found: oidc.issuer });
    expect(oidc.requests.filter((path) => path === '/.well-known/openid-configuration')).toHaveLength(4);
    expect(changes.map((change) => change.status.state)).toEqual(['mismatch']);
  });
});

describe('discovery from an internal address (KEYCLOAK_DISCOVERY_URL)', () => {
  // Keycloak pinned to a public hostname this replica cannot reach (a port nothing listens on):
  // every URL of its documents names that host, whatever address the request came to.
  async function pinnedToPublicHost() {
    const publicHost = `localhost:${await deadPort()}`;
    const oidc = await provider({
      issuer: () => `http://${publicHost}/realms/prod`,
      mountPath: '/realms/prod',
      publicHost: () => publicHost,
    });
    return { oidc, publicHost, internal: `${oidc.origin}/realms/prod` };
  }

  it('accepts tokens that carry the public issuer, fetching the document and the keys internally', async () => {
    const { oidc, publicHost, internal } = await pinnedToPublicHost();
    const discovered = await oidc.discovery();
    expect(discovered).toMatchObject({ issuer: `http://${publicHost}/realms/prod`, jwks_uri: `http://${publicHost}/realms/prod/jwks` });

    const service = await serviceWith({ KEYCLOAK_ISSUER: oidc.issuer, KEYCLOAK_DISCOVERY_URL: internal });
    await worksEndToEnd(service, await oidc.token());
    expect(oidc.jwksFetches).toBeGreaterThanOrEqual(1);
    expect((await service.readiness()).checks).toMatchObject({ issuer: 'up' });
    // The boot log says where the keys come from, and that the document named another address.
    expect(service.log.lines).toEqual([
      {
        level: 'info',
        fields: {
          issuer: oidc.issuer,
          discovery_url: `${internal}/.well-known/openid-configuration`,
          jwks_url: `${internal}/jwks`,
          jwks_uri_named: `http://${publicHost}/realms/prod/jwks`,
        },
        message: 'token issuer discovered',
      },
    ]);
  });

  it('takes the full URL of the discovery document as well', async () => {
    const { oidc, internal } = await pinnedToPublicHost();
    const service = await serviceWith({
      KEYCLOAK_ISSUER: oidc.issuer,
      KEYCLOAK_DISCOVERY_URL: `${internal}/.well-known/openid-configuration`,
    });
    await worksEndToEnd(service, await oidc.token());
  });

  it('is what such a deployment needs: without it the issuer is down, and /readyz says why', async () => {
    const { oidc } = await pinnedToPublicHost();
    const service = await serviceWith({ KEYCLOAK_ISSUER: oidc.issuer });
    expect(await service.readiness()).toEqual({
      status: 'ready',
      checks: { database: 'up', keycloak: 'mock', issuer: 'down' },
      details: { issuer: "the issuer's discovery document could not be fetched: could not connect (ECONNREFUSED)" },
    });
    const answer = await service.as(await oidc.token()).get('/v1/tenants/by-slug/acme');
    expect(answer.status).toBe(503);
    expect(problemOf(answer).code).toBe('unavailable');
    expect(service.log.lines).toHaveLength(1);
    expect(service.log.lines[0]).toMatchObject({ level: 'warn', fields: { discovery_url: `${oidc.issuer}/.well-known/openid-configuration` } });
  });

  it('names the internal issuer when the issuer is not pinned to its public hostname', async () => {
    // Keycloak without KC_HOSTNAME names whatever address it was asked at.
    const oidc = await provider({ issuer: (origin) => `${origin}/realms/prod`, mountPath: '/realms/prod' });
    const expected = 'https://login.example.com/realms/prod';
    const service = await serviceWith({ KEYCLOAK_ISSUER: expected, KEYCLOAK_DISCOVERY_URL: oidc.issuer });
    expect(await service.readiness()).toMatchObject({
      checks: { issuer: 'mismatch' },
      details: { issuer: `the issuer's discovery document names issuer "${oidc.issuer}", expected "${expected}"` },
    });
  });
});

describe('Ed25519 tokens', () => {
  // The same kind of key, under its two names: EdDSA (RFC 8037) and Ed25519 (RFC 9864), which
  // oidc-provider and other issuers following the newer RFC sign with. The JWKS names the alg
  // too, and a key is only used under the alg it names.
  it.each(['Ed25519', 'EdDSA'] as const)('are accepted with the alg %s, end to end', async (alg) => {
    const oidc = await provider({ issuer: (origin) => origin, alg });
    const service = await serviceWith({ KEYCLOAK_ISSUER: oidc.issuer });
    const token = await oidc.token();
    expect(decodeProtectedHeader(token).alg).toBe(alg);
    await worksEndToEnd(service, token);
  });
});

describe('the issuer in /readyz', () => {
  it('is dev for the embedded development issuer', async () => {
    const app = await startServerOn(database.db, { auth: await authenticationFor(loadConfig({})) });
    started.push(app);
    const answer = await client(app.url).get('/readyz');
    expect(answer.body).toEqual({ status: 'ready', checks: { database: 'up', keycloak: 'mock', issuer: 'dev' } });
  });

  it('does not hold the probe up while a discovery hangs, and says it has not finished', async () => {
    // An issuer that accepts the connection and never answers.
    const hung = createServer(() => {});
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    started.push({ close: () => new Promise((resolve) => (hung.closeAllConnections(), hung.close(() => resolve()))) });
    const service = await serviceWith({ KEYCLOAK_ISSUER: `http://127.0.0.1:${(hung.address() as AddressInfo).port}` });
    const begun = performance.now();
    expect(await service.readiness()).toMatchObject({
      checks: { issuer: 'down' },
      details: { issuer: 'the first discovery of the issuer has not finished yet' },
    });
    expect(performance.now() - begun).toBeLessThan(2_000);
  });
});

describe('the log line of each change', () => {
  it('says down with the cause, for the operator', () => {
    const log = recordingLog();
    const cause = new Error('connect ECONNREFUSED');
    logIssuerChange(log, {
      status: { state: 'down', reason: 'the issuer is away' },
      issuer: 'https://id.example.com/',
      documentUrl: 'https://id.example.com/.well-known/openid-configuration',
      cause,
    });
    expect(log.lines).toEqual([
      {
        level: 'warn',
        fields: { issuer: 'https://id.example.com/', discovery_url: 'https://id.example.com/.well-known/openid-configuration', err: cause },
        message: 'token issuer unavailable: the issuer is away; authenticated requests answer 503 until it is back',
      },
    ]);
  });
});
