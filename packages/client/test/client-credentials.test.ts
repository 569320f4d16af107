// The client credentials provider against a real OAuth token endpoint (oidc-provider, in-process,
// mounted where Keycloak serves a realm), and its tokens used against a registry that trusts that
// issuer: fetched once for concurrent callers, kept until shortly before expiry, refused without
// leaking the secret, and replaced when the registry refuses the one kept.
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authenticationFor } from '../../../src/auth/setup.js';
import { loadConfig } from '../../../src/config.js';
import { openMigratedDatabase, type TestDatabase } from '../../../test/support/drivers.js';
import { OIDC_AUDIENCE, OIDC_CLIENT, startOidcProvider, type OidcServer } from '../../../test/support/oidc-provider.js';
import { startServerOn, type StartedApp } from '../../../test/support/server.js';
import { clientCredentials, createRegistryClient, TokenRequestError, unwrap } from '../src/index.js';

// The provider's tokens live 600 s (ttl.ClientCredentials in test/support/oidc-provider.ts).
const TOKEN_LIFETIME_S = 600;

describe('clientCredentials() against a real token endpoint', () => {
  let database: TestDatabase;
  let oidc: OidcServer;
  let registry: StartedApp;
  let tokenUrl: string;
  const tokenRequests = () => oidc.requests.filter((path) => path.startsWith('/realms/platform/token')).length;

  beforeAll(async () => {
    database = await openMigratedDatabase('pglite');
    oidc = await startOidcProvider({
      issuer: (origin) => `${origin}/realms/platform`,
      mountPath: '/realms/platform',
      claims: { realm_access: { roles: ['platform_admin'] } },
    });
    const discovery = (await (await fetch(`${oidc.issuer}/.well-known/openid-configuration`)).json()) as { token_endpoint: string };
    tokenUrl = discovery.token_endpoint;
    const config = loadConfig({ APP_ENV: 'dev', KEYCLOAK_ISSUER: oidc.issuer, KEYCLOAK_AUDIENCE: OIDC_AUDIENCE });
    registry = await startServerOn(database.db, { auth: await authenticationFor(config) });
  });
  afterAll(async () => {
    await registry?.close();
    await oidc?.close();
    await database?.close();
  });

  const provider = (now: () => number, overrides: Partial<Parameters<typeof clientCredentials>[0]> = {}) =>
    clientCredentials({ tokenUrl, clientId: OIDC_CLIENT.id, clientSecret: OIDC_CLIENT.secret, authMethod: 'client_secret_post', scope: 'registry', now, ...overrides });

  it('asks once for concurrent callers, keeps the token until shortly before it expires, then asks again', async () => {
    let clock = Date.now();
    const token = provider(() => clock, { refreshBeforeSeconds: 30 });
    const before = tokenRequests();

    const burst = await Promise.all(Array.from({ length: 8 }, () => token()));
    expect(new Set(burst).size).toBe(1);
    expect(tokenRequests() - before).toBe(1);

    clock += (TOKEN_LIFETIME_S - 31) * 1000;
    expect(await token()).toBe(burst[0]);
    expect(tokenRequests() - before).toBe(1);

    // Thirty seconds before expiry: the kept token is not handed out any more.
    clock += 2_000;
    const [renewed, alsoRenewed] = await Promise.all([token(), token()]);
    expect(renewed).not.toBe(burst[0]);
    expect(alsoRenewed).toBe(renewed);
    expect(tokenRequests() - before).toBe(2);

    token.invalidate();
    expect(await token()).not.toBe(renewed);
    expect(tokenRequests() - before).toBe(3);
  });

  it('gives the registry client tokens the registry accepts', async () => {
    const client = createRegistryClient({ baseUrl: registry.url, token: provider(Date.now) });
    const slug = `cc-${randomUUID().slice(0, 8)}`;
    const { tenant } = await unwrap(client.POST('/v1/tenants', { body: { slug, name: 'Client Credentials Co' } }));
    expect((await unwrap(client.GET('/v1/tenants/{id}', { params: { path: { id: tenant.id } } }))).slug).toBe(slug);
    const anonymous = createRegistryClient({ baseUrl: registry.url });
    expect((await anonymous.GET('/v1/tenants/{id}', { params: { path: { id: tenant.id } } })).error?.code).toBe('unauthorized');
  });

  it('fails every waiting caller on a refused secret, never names the secret, and asks again on the next call', async () => {
    const secret = `wrong-secret-${randomUUID()}`;
    const token = provider(Date.now, { clientSecret: secret });
    const before = tokenRequests();
    const failures = await Promise.all([token(), token(), token()].map((call) => call.catch((error: unknown) => error)));
    expect(tokenRequests() - before).toBe(1);
    for (const failure of failures) {
      expect(failure).toBeInstanceOf(TokenRequestError);
      expect(failure).toMatchObject({ status: 401, error: 'invalid_client' });
      expect(JSON.stringify(failure) + String(failure)).not.toContain(secret);
    }
    await expect(token()).rejects.toBeInstanceOf(TokenRequestError);
    expect(tokenRequests() - before).toBe(2);
  });

  it('replaces a token the registry refuses (401) and sends the request once more', async () => {
    const real = provider(Date.now);
    let forgotten = 0;
    let stale = true;
    // Hands out a token the registry refuses until it is told to forget it.
    const token = Object.assign(async () => (stale ? 'ey.not-a-token.at-all' : real()), {
      invalidate: () => {
        forgotten += 1;
        stale = false;
      },
    });
    const sent: string[] = [];
    const client = createRegistryClient({
      baseUrl: registry.url,
      token,
      fetch: (request) => {
        sent.push(request.headers.get('authorization') ?? '');
        return fetch(request);
      },
    });
    const slug = `cc-${randomUUID().slice(0, 8)}`;
    // A call without an Idempotency-Key: a 401 is refused before any work, so it is sent again too.
    const activated = await client.POST('/v1/tenants/{id}/activate', { params: { path: { id: randomUUID() } } });
    // The second try got past authentication: the tenant does not exist.
    expect(activated.error?.code).toBe('not_found');
    expect(forgotten).toBe(1);
    expect(sent).toHaveLength(2);
    expect(sent[0]).toBe('Bearer ey.not-a-token.at-all');
    expect(sent[1]).toMatch(/^Bearer ey[\w-]+\.[\w-]+\.[\w-]+$/);

    // A registry that keeps refusing gets one more try, not a loop.
    let tries = 0;
    const refusing = createRegistryClient({
      baseUrl: registry.url,
      token: Object.assign(async () => 'ey.never.valid', { invalidate: () => {} }),
      fetch: (request) => {
        tries += 1;
        return fetch(request);
      },
    });
    expect((await refusing.POST('/v1/tenants', { body: { slug, name: 'Never' } })).error?.code).toBe('unauthorized');
    expect(tries).toBe(2);
  });
});

describe('clientCredentials() with HTTP Basic, the method Keycloak takes by default', () => {
  // oidc-provider's test client takes its secret in the form only; this endpoint decodes Basic
  // credentials the way RFC 6749 (2.3.1) asks a server to, so the encoding of awkward characters
  // is checked against the rule rather than against this client's own idea of it.
  let server: Server;
  let url: string;
  const seen: Array<{ id: string; secret: string; form: Record<string, string> }> = [];
  beforeAll(async () => {
    server = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        const basic = /^Basic (.+)$/.exec(request.headers.authorization ?? '')?.[1];
        const decoded = Buffer.from(basic ?? '', 'base64').toString();
        const colon = decoded.indexOf(':');
        const formDecode = (value: string) => decodeURIComponent(value.replace(/\+/g, ' '));
        seen.push({ id: formDecode(decoded.slice(0, colon)), secret: formDecode(decoded.slice(colon + 1)), form: Object.fromEntries(new URLSearchParams(body)) });
        // No expires_in: it is only RECOMMENDED, and the client must still stop using the token.
        response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: `token-${seen.length}`, token_type: 'Bearer' }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/realms/platform/protocol/openid-connect/token`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('form-encodes id and secret before Base64, finds Keycloak\'s endpoint from the realm, and keeps a token without expires_in for a minute at most', async () => {
    let clock = 0;
    const token = clientCredentials({
      issuer: url.replace('/protocol/openid-connect/token', '/'),
      clientId: 'portal:eu',
      clientSecret: 'a secret+with:colons&%',
      params: { audience: 'tenant-registry' },
      now: () => clock,
    });
    expect(await token()).toBe('token-1');
    expect(seen[0]).toEqual({ id: 'portal:eu', secret: 'a secret+with:colons&%', form: { grant_type: 'client_credentials', audience: 'tenant-registry' } });
    clock += 29_000;
    expect(await token()).toBe('token-1');
    // Shorter-lived than twice the 30 s margin: renewed at half its life.
    clock += 2_000;
    expect(await token()).toBe('token-2');
  });
});
