// The real process meeting a real OpenID Connect server (oidc-provider) that names another host
// than KEYCLOAK_ISSUER: the mismatch is logged at boot, by name and once, before any request
// needs a key; /readyz names it and stays ready; requests with a token answer 503 naming it.
// And with KEYCLOAK_DISCOVERY_URL, a replica discovers internally and takes the public tokens.
import { afterAll, describe, expect, it } from 'vitest';
import { client, problemOf } from '../support/http.js';
import { OIDC_AUDIENCE, startOidcProvider, type OidcServer } from '../support/oidc-provider.js';
import { freePort, startService, stopAll, type ServiceProcess } from './spawn.js';

const started: OidcServer[] = [];
afterAll(async () => {
  await stopAll();
  await Promise.allSettled(started.map((oidc) => oidc.close()));
});

const OPERATOR = { realm_access: { roles: ['platform_admin'] } };

function logLines(service: ServiceProcess): Array<Record<string, unknown>> {
  return service
    .stdout()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('an issuer that names another host than KEYCLOAK_ISSUER', () => {
  it('is named in a warning at boot, in /readyz and in the 503, and logged once', { timeout: 90_000 }, async () => {
    const oidc = await startOidcProvider({ issuer: (origin) => origin.replace('127.0.0.1', 'localhost'), claims: OPERATOR });
    started.push(oidc);
    const service = await startService({ APP_ENV: 'dev', KEYCLOAK_ISSUER: oidc.origin, KEYCLOAK_AUDIENCE: OIDC_AUDIENCE });
    const reason = `the issuer's discovery document names issuer "${oidc.issuer}", expected "${oidc.origin}"`;

    // No request has needed a key yet: the boot's own discovery found it.
    await service.waitForOutput('token issuer misconfigured', 10_000);
    expect(oidc.requests).toEqual(['/.well-known/openid-configuration']);
    const warning = logLines(service).find((line) => String(line.msg).startsWith('token issuer misconfigured'));
    expect(warning).toMatchObject({ level: 40, expected: oidc.origin, found: oidc.issuer });
    expect(warning?.msg).toContain(reason);

    const ready = await client(service.baseUrl).get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ status: 'ready', checks: { issuer: 'mismatch' }, details: { issuer: reason } });

    const api = client(service.baseUrl, await oidc.token());
    for (let i = 0; i < 3; i += 1) {
      const answer = await api.get('/v1/tenants/by-slug/acme');
      expect(answer.status).toBe(503);
      expect(problemOf(answer).detail).toBe(`tokens cannot be verified: ${reason}`);
    }
    expect(logLines(service).filter((line) => String(line.msg).startsWith('token issuer misconfigured'))).toHaveLength(1);
  });
});

describe('KEYCLOAK_DISCOVERY_URL', () => {
  it('lets a replica discover internally and take tokens of the public issuer', { timeout: 90_000 }, async () => {
    // The public hostname is one this replica cannot reach: nothing listens there.
    const publicHost = `localhost:${await freePort()}`;
    const oidc = await startOidcProvider({
      issuer: () => `http://${publicHost}/realms/prod`,
      mountPath: '/realms/prod',
      publicHost: () => publicHost,
      claims: OPERATOR,
    });
    started.push(oidc);
    const service = await startService({
      APP_ENV: 'dev',
      KEYCLOAK_ISSUER: oidc.issuer,
      KEYCLOAK_DISCOVERY_URL: `${oidc.origin}/realms/prod`,
      KEYCLOAK_AUDIENCE: OIDC_AUDIENCE,
    });
    const api = client(service.baseUrl, await oidc.token());
    const created = await api.post('/v1/tenants', { body: { slug: `pub-${Date.now()}`, name: 'Public GmbH' } });
    expect(created.status, created.text).toBe(201);
    expect((await client(service.baseUrl).get('/readyz')).body).toMatchObject({ checks: { issuer: 'up' } });
    // LOG_LEVEL=warn: nothing went wrong, so nothing was said.
    expect(service.stdout()).toBe('');
  });
});
