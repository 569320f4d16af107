// How createTokenVerifier deals with its issuer, over real HTTP on loopback: verified tokens are
// remembered until they expire, the JWKS is fetched again only for a new kid and within a cooldown,
// discovery happens once, and an issuer that is down, hangs or misbehaves makes the service answer
// 503 unavailable (not 401), recovering once it is back.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { decodeJwt, generateKeyPair } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { discoveredKeys, issuerDiscovery, type IssuerChange } from '../../src/auth/discovery.js';
import { createTokenVerifier, IssuerMisconfiguredError, IssuerUnavailableError } from '../../src/auth/verifier.js';
import { client, problemOf } from '../support/http.js';
import { identities } from '../support/identities.js';
import { startTestIssuer, type TestIssuer } from '../support/issuer.js';
import { startServerOn } from '../support/server.js';
import { AUDIENCE, NO_DATABASE, SETTINGS, TENANT, closeStarted, ownIssuer, refusal, signWithForeignKey, started, stubIssuer, verifierFor } from './issuers.js';

let issuer: TestIssuer;
beforeAll(async () => {
  issuer = await startTestIssuer();
});
afterAll(() => issuer.close());
afterEach(closeStarted);

describe('the cache of verified tokens', () => {
  it('answers a token again without keys or issuer until it expires', async () => {
    const own = await ownIssuer();
    let clock = Date.now();
    let keyLookups = 0;
    const verifier = verifierFor(own.url, {
      now: () => clock,
      wrapKeys: (keys) => (header, token) => {
        keyLookups += 1;
        return keys(header, token);
      },
    });
    const token = await own.mint(identities.platformAdmin(), { expiresIn: 120 });
    const exp = decodeJwt(token).exp!;

    const first = await verifier.verify(token);
    expect([keyLookups, own.discoveryFetches, own.jwksFetches]).toEqual([1, 1, 1]);

    await own.close();
    clock = exp * 1000 - 1_000;
    expect(await verifier.verify(token)).toBe(first);
    expect([keyLookups, own.discoveryFetches, own.jwksFetches]).toEqual([1, 1, 1]);

    // Past exp the cache lets go, and the token is checked (and refused) again.
    clock = (exp + 31) * 1000;
    expect((await refusal(verifier.verify(token))).reason).toMatch(/"exp"/);
    expect(keyLookups).toBe(2);
  });

  it('does not remember a refused token', async () => {
    const own = await ownIssuer();
    const verifier = verifierFor(own.url, { audience: AUDIENCE });
    const token = await own.mint(identities.platformAdmin(), { audience: 'account' });
    await refusal(verifier.verify(token));
    await refusal(verifier.verify(token));
    expect(verifier.known!(token)).toBeUndefined();
  });

  it('says which tokens it knows, without checking any, until they expire', async () => {
    let clock = Date.now();
    let keyLookups = 0;
    const verifier = verifierFor(issuer.url, {
      now: () => clock,
      wrapKeys: (keys) => (header, token) => {
        keyLookups += 1;
        return keys(header, token);
      },
    });
    const token = await issuer.mint(identities.service(), { expiresIn: 120 });
    expect(verifier.known!(token)).toBeUndefined();
    const principal = await verifier.verify(token);
    expect(verifier.known!(token)).toBe(principal);
    expect(keyLookups).toBe(1);
    clock = decodeJwt(token).exp! * 1000;
    expect(verifier.known!(token)).toBeUndefined();
    expect(keyLookups).toBe(1);
  });
});

describe('keys', () => {
  it('fetches the JWKS once more after a rotation, for the new kid only', async () => {
    const own = await ownIssuer();
    const verifier = verifierFor(own.url);
    const before = await own.mint(identities.platformAdmin());
    await verifier.verify(before);
    expect(own.jwksFetches).toBe(1);

    const kid = await own.rotate();
    const after = await own.mint(identities.itAdmin(TENANT));
    expect(decodeJwt(after)).toMatchObject({ tenant_id: TENANT });
    await expect(verifier.verify(after)).resolves.toMatchObject({ tenantId: TENANT });
    expect(own.jwksFetches).toBe(2);

    // Both keys are now known: neither an old-key nor another new-key token refetches.
    await expect(verifier.verify(await own.mint(identities.service(), { kid }))).resolves.toMatchObject({ isService: true });
    await expect(verifier.verify(await own.mint(identities.member(TENANT)))).resolves.toMatchObject({ tenantId: TENANT });
    expect(own.jwksFetches).toBe(2);
    expect(own.discoveryFetches).toBe(1);
  });

  it('lets 50 tokens with made-up kids cause at most two JWKS fetches within the cooldown', async () => {
    const own = await ownIssuer();
    const verifier = verifierFor(own.url, { discovery: { cooldownMs: 1_000 } });
    const { privateKey } = await generateKeyPair('RS256');
    const forged = await Promise.all(
      Array.from({ length: 50 }, () => signWithForeignKey({ ...identities.platformAdmin(), iss: own.url }, randomUUID(), privateKey)),
    );
    // One after the other, so only the cooldown (not the sharing of one pending fetch) can hold
    // the fetches down.
    for (const token of forged) expect((await refusal(verifier.verify(token))).reason).toMatch(/no applicable key/);
    expect(own.jwksFetches).toBeGreaterThanOrEqual(1);
    expect(own.jwksFetches).toBeLessThanOrEqual(2);
    expect(own.discoveryFetches).toBe(1);
  });

  it('fetches again for an unknown kid once the cooldown is over', async () => {
    const own = await ownIssuer();
    const verifier = verifierFor(own.url, { discovery: { cooldownMs: 300 } });
    // Signed up front: making a key pair can take longer than the cooldown itself.
    const { privateKey } = await generateKeyPair('RS256');
    const [first, second, third] = await Promise.all(
      [1, 2, 3].map(() => signWithForeignKey({ ...identities.platformAdmin(), iss: own.url }, randomUUID(), privateKey)),
    );
    await verifier.verify(await own.mint(identities.platformAdmin()));
    await refusal(verifier.verify(first!));
    expect(own.jwksFetches).toBe(1);
    await sleep(350);
    await refusal(verifier.verify(second!));
    await refusal(verifier.verify(third!));
    expect(own.jwksFetches).toBe(2);
  });

  it('discovers once for many concurrent first requests', async () => {
    const own = await ownIssuer();
    const verifier = verifierFor(own.url);
    const tokens = await Promise.all(Array.from({ length: 20 }, (_, i) => own.mint({ ...identities.member(TENANT), sub: `m-${i}` })));
    const principals = await Promise.all(tokens.map((token) => verifier.verify(token)));
    expect(principals.map((p) => p.sub)).toEqual(tokens.map((_, i) => `m-${i}`));
    expect(own.discoveryFetches).toBe(1);
    expect(own.jwksFetches).toBe(1);
  });
});

describe('an unavailable issuer', () => {
  async function unavailable(promise: Promise<unknown>): Promise<void> {
    await expect(promise).rejects.toBeInstanceOf(IssuerUnavailableError);
  }

  it('is IssuerUnavailableError when nothing listens at the issuer', async () => {
    const own = await ownIssuer();
    const token = await own.mint(identities.platformAdmin());
    await own.close();
    await unavailable(verifierFor(own.url).verify(token));
  });

  it('is IssuerUnavailableError when discovery answers an error, and fails fast for a while after', async () => {
    const stub = await stubIssuer();
    stub.discoveryMode = 'error';
    const verifier = verifierFor(stub.url, { discovery: { retryAfterFailureMs: 60_000 } });
    const token = await stub.mint(identities.platformAdmin());
    await unavailable(verifier.verify(token));
    await unavailable(verifier.verify(token));
    expect(stub.discoveryFetches).toBe(1);
  });

  it('is IssuerUnavailableError when discovery hangs past the timeout', async () => {
    const stub = await stubIssuer();
    stub.discoveryMode = 'hang';
    const verifier = verifierFor(stub.url, { discovery: { timeoutMs: 200 } });
    const started = performance.now();
    await unavailable(verifier.verify(await stub.mint(identities.platformAdmin())));
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('is tried again once the failure window has passed', async () => {
    const stub = await stubIssuer();
    stub.discoveryMode = 'error';
    const verifier = verifierFor(stub.url, { discovery: { retryAfterFailureMs: 100 } });
    const token = await stub.mint(identities.platformAdmin());
    await unavailable(verifier.verify(token));
    stub.discoveryMode = 'ok';
    await sleep(150);
    await expect(verifier.verify(token)).resolves.toMatchObject({ isPlatformAdmin: true });
  });

  // A request that arrives within the failure window must not leave a rejected discovery behind
  // for every later request: the service would answer 503 until restarted.
  it('recovers after a request that came in during the failure window', async () => {
    const stub = await stubIssuer();
    stub.discoveryMode = 'error';
    const verifier = verifierFor(stub.url, { discovery: { retryAfterFailureMs: 100 } });
    const token = await stub.mint(identities.platformAdmin());
    await unavailable(verifier.verify(token));
    await unavailable(verifier.verify(token));
    stub.discoveryMode = 'ok';
    await sleep(150);
    await expect(verifier.verify(token)).resolves.toMatchObject({ isPlatformAdmin: true });
    expect(stub.discoveryFetches).toBe(2);
  });

  // jose reports a JWKS answer other than 200 as a generic error; that is the issuer's failure
  // (503), not every token's (401).
  it('is IssuerUnavailableError when the JWKS endpoint answers an error', async () => {
    const stub = await stubIssuer();
    stub.jwksMode = 'error';
    await unavailable(verifierFor(stub.url).verify(await stub.mint(identities.platformAdmin())));
    expect(stub.jwksFetches).toBe(1);
  });

  it('refuses a discovery document that names another issuer, naming both, without fetching its keys', async () => {
    const stub = await stubIssuer();
    stub.discoveryMode = 'other-issuer';
    const error = await verifierFor(stub.url)
      .verify(await stub.mint(identities.platformAdmin()))
      .then(() => undefined, (reason: unknown) => reason);
    expect(error).toBeInstanceOf(IssuerMisconfiguredError);
    expect((error as IssuerMisconfiguredError).reason).toBe(
      `the issuer's discovery document names issuer "http://127.0.0.1:9/realms/evil", expected "${stub.url}"`,
    );
    expect(stub.discoveryFetches).toBe(1);
    expect(stub.jwksFetches).toBe(0);
  });

  it('reports each change of its status once, with the reason: down, then up again', async () => {
    const stub = await stubIssuer();
    stub.discoveryMode = 'error';
    const changes: IssuerChange[] = [];
    const discovery = issuerDiscovery(stub.url, { cooldownMs: 0, retryAfterFailureMs: 0, onChange: (change) => changes.push(change) });
    const documentDown = { state: 'down', reason: "the issuer's discovery document could not be fetched: it answered HTTP 503" };
    expect(await discovery.check()).toEqual(documentDown);
    expect(await discovery.check()).toEqual(documentDown);
    stub.discoveryMode = 'ok';
    stub.jwksMode = 'error';
    expect(await discovery.check()).toEqual({ state: 'down', reason: "the issuer's keys (jwks_uri) could not be fetched: it did not answer 200 OK" });
    stub.jwksMode = 'ok';
    expect(await discovery.check()).toEqual({ state: 'up', jwksUrl: `${stub.url}/certs` });
    expect(await discovery.check()).toEqual({ state: 'up', jwksUrl: `${stub.url}/certs` });
    expect(changes.map((change) => change.status.state)).toEqual(['down', 'down', 'up']);
    expect(changes[0]!.cause).toBeInstanceOf(Error);
    expect(stub.discoveryFetches).toBe(4);
    // The reason travels with the error requests meet (and the request log's line), without addresses.
    stub.jwksMode = 'error';
    const error = await Promise.resolve()
      .then(() => discoveredKeys(stub.url)({ alg: 'RS256' }, { payload: '', signature: '' }))
      .then(
      () => undefined,
      (reason: unknown) => reason,
    );
    expect(error).toBeInstanceOf(IssuerUnavailableError);
    expect((error as Error).message).toBe("the token issuer is unavailable: the issuer's keys (jwks_uri) could not be fetched: it did not answer 200 OK");
  });

  it('makes the service answer 503 unavailable, while token-less requests stay 401 and probes 200', async () => {
    const gone = await ownIssuer();
    const token = await gone.mint(identities.platformAdmin());
    await gone.close();
    const verifier = createTokenVerifier({ ...SETTINGS, issuer: gone.url, audience: null, keys: discoveredKeys(gone.url) });
    // Every answer here comes before any query, so the service gets a database that has none.
    const server = await startServerOn(NO_DATABASE, { auth: { verifier, devIssuer: null } });
    started.push(server);

    const answer = await client(server.url, token).get('/v1/tenants/by-slug/acme');
    expect(answer.status).toBe(503);
    expect(problemOf(answer).code).toBe('unavailable');
    // The detail says what failed, not only that something did; it names no address.
    expect(problemOf(answer).detail).toMatch(/^tokens cannot be verified right now: the token issuer is unavailable: .*could not connect/);
    expect(problemOf(answer).detail).not.toContain('127.0.0.1');
    expect(answer.headers.get('retry-after')).toBe('5');

    const anonymous = await server.as(null);
    const noToken = await anonymous.get('/v1/tenants/by-slug/acme');
    expect(noToken.status).toBe(401);
    expect(problemOf(noToken).code).toBe('unauthorized');
    expect((await anonymous.get('/healthz')).status).toBe(200);
  });
});
