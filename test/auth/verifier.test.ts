// createTokenVerifier + discoveredKeys against real HTTP issuers on loopback: the test issuer of
// test/support/issuer.ts, and a stub whose discovery and JWKS endpoints can be made to fail.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  SignJWT,
  decodeJwt,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  importJWK,
  type CryptoKey,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { discoveredKeys, issuerDiscovery, type DiscoveryOptions, type IssuerChange } from '../../src/auth/discovery.js';
import {
  createTokenVerifier,
  InvalidTokenError,
  IssuerMisconfiguredError,
  IssuerUnavailableError,
  type TokenVerifier,
} from '../../src/auth/verifier.js';
import type { Database } from '../../src/store/database.js';
import { client, problemOf } from '../support/http.js';
import { identities, ROLE_NAMES } from '../support/identities.js';
import { startTestIssuer, type TestIssuer } from '../support/issuer.js';
import { startServerOn } from '../support/server.js';

const SETTINGS = { roles: ROLE_NAMES, rolesClient: 'tenant-registry' };
const AUDIENCE = 'tenant-registry';
const TENANT = '7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11';

interface VerifierSetup {
  audience?: string | null;
  discovery?: DiscoveryOptions;
  now?: () => number;
  /** Wraps the discovered keys, e.g. to count lookups. */
  wrapKeys?: (keys: JWTVerifyGetKey) => JWTVerifyGetKey;
}

function verifierFor(issuerUrl: string, setup: VerifierSetup = {}): TokenVerifier {
  const keys = discoveredKeys(issuerUrl, { cooldownMs: 0, ...setup.discovery });
  return createTokenVerifier({
    ...SETTINGS,
    issuer: issuerUrl,
    audience: setup.audience ?? null,
    keys: setup.wrapKeys ? setup.wrapKeys(keys) : keys,
    ...(setup.now ? { now: setup.now } : {}),
  });
}

const nowSeconds = () => Math.floor(Date.now() / 1000);
const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** An RS256 token signed with a key pair the issuer never had. */
async function signWithForeignKey(claims: JWTPayload, kid: string, privateKey?: CryptoKey): Promise<string> {
  const key = privateKey ?? (await generateKeyPair('RS256')).privateKey;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(key);
}

/** The classic confusion attack: HMAC with the issuer's public key (PEM) as the shared secret. */
async function signHs256WithPublicKey(claims: JWTPayload, publicJwk: JWK): Promise<string> {
  const publicKey = (await importJWK(publicJwk, 'RS256', { extractable: true })) as CryptoKey;
  const secret = new TextEncoder().encode(await exportSPKI(publicKey));
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', kid: publicJwk.kid!, typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(secret);
}

/** An unsecured JWT, written by hand: header, payload and an empty signature. */
function unsecuredToken(claims: JWTPayload): string {
  const now = nowSeconds();
  return `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ iat: now, exp: now + 300, ...claims })}.`;
}

async function refusal(promise: Promise<unknown>): Promise<InvalidTokenError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(InvalidTokenError);
  return error as InvalidTokenError;
}

// An OIDC issuer whose endpoints a test can break: discovery and JWKS each answer normally, fail
// with a status, hang, or (discovery) name another issuer. It signs with its own key.
type DiscoveryMode = 'ok' | 'error' | 'hang' | 'other-issuer';
type JwksMode = 'ok' | 'error';
interface StubIssuer {
  url: string;
  discoveryMode: DiscoveryMode;
  jwksMode: JwksMode;
  discoveryFetches: number;
  jwksFetches: number;
  mint(claims: JWTPayload): Promise<string>;
  close(): Promise<void>;
}

async function startStubIssuer(): Promise<StubIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('RS256');
  const kid = randomUUID();
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const server = createServer((request, response) => {
    const send = (status: number, body: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    if (request.url === '/.well-known/openid-configuration') {
      stub.discoveryFetches += 1;
      if (stub.discoveryMode === 'hang') return;
      if (stub.discoveryMode === 'error') return send(503, { error: 'starting' });
      const issuer = stub.discoveryMode === 'other-issuer' ? 'http://127.0.0.1:9/realms/evil' : stub.url;
      return send(200, { issuer, jwks_uri: `${stub.url}/certs` });
    }
    if (request.url === '/certs') {
      stub.jwksFetches += 1;
      return stub.jwksMode === 'error' ? send(503, { error: 'starting' }) : send(200, { keys: [jwk] });
    }
    response.writeHead(404).end();
  });
  const stub: StubIssuer = {
    url: '',
    discoveryMode: 'ok',
    jwksMode: 'ok',
    discoveryFetches: 0,
    jwksFetches: 0,
    mint: (claims) =>
      new SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
        .setIssuer(stub.url)
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(privateKey),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  stub.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return stub;
}

const noDatabase = () => Promise.reject(new Error('this test has no database'));
const NO_DATABASE: Database = {
  driver: 'pglite',
  query: noDatabase,
  exec: noDatabase,
  transaction: noDatabase,
  // Caching listens for invalidations at start; here nothing ever arrives.
  listen: () => Promise.resolve(() => Promise.resolve()),
  ping: noDatabase,
  close: () => Promise.resolve(),
};

let issuer: TestIssuer;
beforeAll(async () => {
  issuer = await startTestIssuer();
});
afterAll(() => issuer.close());

// Issuers a single test starts (and may close early); closed after it either way.
const started: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  await Promise.allSettled(started.splice(0).map((server) => server.close()));
});
async function ownIssuer(): Promise<TestIssuer> {
  const own = await startTestIssuer();
  let closed = false;
  const close = own.close.bind(own);
  own.close = async () => {
    if (closed) return;
    closed = true;
    await close();
  };
  started.push(own);
  return own;
}
async function stubIssuer(): Promise<StubIssuer> {
  const stub = await startStubIssuer();
  started.push(stub);
  return stub;
}

describe('a valid token', () => {
  it('is accepted, and its claims become the principal', async () => {
    const verifier = verifierFor(issuer.url);
    expect(await verifier.verify(await issuer.mint(identities.platformAdmin()))).toEqual({
      sub: 'operator-1',
      name: 'olga.operator',
      kind: 'user',
      client: null,
      tenantId: null,
      organizations: [],
      isPlatformAdmin: true,
      isItAdmin: false,
      isService: false,
      expiresAt: expect.any(Number) as number,
    });
    expect(await verifier.verify(await issuer.mint(identities.itAdmin(TENANT)))).toMatchObject({
      sub: `it-admin-${TENANT}`,
      tenantId: TENANT,
      isItAdmin: true,
      isPlatformAdmin: false,
    });
    expect(await verifier.verify(await issuer.mint(identities.service()))).toMatchObject({ kind: 'service', isService: true });
  });
});

describe('refused tokens', () => {
  const cases: Array<[string, (issuer: TestIssuer) => Promise<string>, RegExp]> = [
    ['expired beyond the leeway', (i) => i.mint(identities.platformAdmin(), { expiresIn: -120 }), /"exp"/],
    ['not valid for another two minutes', (i) => i.mint(identities.platformAdmin(), { notBefore: 120 }), /"nbf"/],
    [
      'signed by the issuer but naming another issuer',
      (i) => i.mint(identities.platformAdmin(), { issuer: 'https://id.example.com/realms/other' }),
      /"iss"/,
    ],
    [
      'signed by the issuer but naming it with a trailing slash',
      (i) => i.mint(identities.platformAdmin(), { issuer: `${i.url}/` }),
      /"iss"/,
    ],
    [
      'signed with a kid the issuer never published',
      (i) => signWithForeignKey({ ...identities.platformAdmin(), iss: i.url }, randomUUID()),
      /no applicable key/,
    ],
    [
      "signed with another private key under the issuer's kid",
      (i) => signWithForeignKey({ ...identities.platformAdmin(), iss: i.url }, i.publicJwk().kid!),
      /signature verification failed/,
    ],
    // Refused by the allow-list itself, before any key is looked up.
    ['unsecured (alg none)', async (i) => unsecuredToken({ ...identities.platformAdmin(), iss: i.url }), /"alg".* not allowed/],
    [
      "HS256 with the issuer's public key as the secret",
      (i) => signHs256WithPublicKey({ ...identities.platformAdmin(), iss: i.url }, i.publicJwk()),
      /"alg".* not allowed/,
    ],
    ['not a JWT at all', async () => 'not-a-jwt', /Compact JWS/],
    // Keycloak's ID tokens carry typ "ID"; only access tokens ("Bearer") may call the API.
    ['an ID token rather than an access token', (i) => i.mint({ ...identities.platformAdmin(), typ: 'ID' }), /not an access token/],
    ['a token without a subject', (i) => i.mint({ realm_access: { roles: ['platform_admin'] } }), /"sub"/],
    // jose's requiredClaims checks only that "sub" is present; a token whose sub names nobody
    // would make every such caller one and the same principal.
    ['a numeric subject', (i) => i.mint({ ...identities.platformAdmin(), sub: 12 as unknown as string }), /"sub" claim must be a string/],
    ['a null subject', (i) => i.mint({ ...identities.platformAdmin(), sub: null as unknown as string }), /"sub" claim must be a string/],
    ['an empty subject', (i) => i.mint({ ...identities.platformAdmin(), sub: '' }), /"sub" claim must not be empty/],
    ['a subject of 256 characters', (i) => i.mint({ ...identities.platformAdmin(), sub: 's'.repeat(256) }), /longer than 255/],
    ['a subject of 64 KiB', (i) => i.mint({ ...identities.platformAdmin(), sub: 's'.repeat(65_536) }), /longer than 255/],
    ['a subject with a NUL', (i) => i.mint({ ...identities.platformAdmin(), sub: 'operator\u00001' }), /control character/],
  ];

  it.each(cases)('%s', async (_case, forge, reason) => {
    const verifier = verifierFor(issuer.url);
    const error = await refusal(verifier.verify(await forge(issuer)));
    expect(error.reason).toMatch(reason);
  });

  it('accepts a subject of exactly 255 characters', async () => {
    const principal = await verifierFor(issuer.url).verify(await issuer.mint({ ...identities.platformAdmin(), sub: 's'.repeat(255) }));
    expect(principal.sub).toBe('s'.repeat(255));
  });

  it('makes the service answer 401 invalid_token to a token whose subject names nobody, however it is sent', async () => {
    const verifier = verifierFor(issuer.url);
    // Refused before any query, so the service gets a database that has none.
    const server = await startServerOn(NO_DATABASE, { auth: { verifier, devIssuer: null } });
    started.push(server);
    for (const sub of [undefined, '', 7, 'x'.repeat(256)]) {
      const token = await issuer.mint({ ...identities.platformAdmin(), sub: sub as string });
      // Twice: a refused token is not remembered as some principal, on the connection or in the cache.
      for (let attempt = 0; attempt < 2; attempt += 1) {
        const answer = await client(server.url, token).post('/v1/tenants', {
          body: { slug: 'anonymous-co', name: 'Anonymous' },
          headers: { 'idempotency-key': 'same-key-for-everyone' },
        });
        expect(answer.status).toBe(401);
        expect(problemOf(answer).code).toBe('unauthorized');
        expect(answer.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
      }
    }
  });

  it('accepts a Keycloak access token marked typ Bearer', async () => {
    const principal = await verifierFor(issuer.url).verify(await issuer.mint({ ...identities.platformAdmin(), typ: 'Bearer' }));
    expect(principal.isPlatformAdmin).toBe(true);
  });

  it('refuses a token of another realm, signed with that realm\'s own key', async () => {
    const other = await ownIssuer();
    const error = await refusal(verifierFor(issuer.url).verify(await other.mint(identities.platformAdmin())));
    expect(error.reason).toMatch(/"iss"|no applicable key/);
  });
});

describe('audience', () => {
  it('is not checked when none is configured', async () => {
    const verifier = verifierFor(issuer.url, { audience: null });
    await expect(verifier.verify(await issuer.mint(identities.platformAdmin(), { audience: 'some-other-client' }))).resolves.toMatchObject({
      isPlatformAdmin: true,
    });
  });

  it('accepts the configured audience, alone or among others', async () => {
    const verifier = verifierFor(issuer.url, { audience: AUDIENCE });
    await expect(verifier.verify(await issuer.mint(identities.platformAdmin(), { audience: AUDIENCE }))).resolves.toMatchObject({
      isPlatformAdmin: true,
    });
    const several = await issuer.mint({ ...identities.platformAdmin(), aud: ['account', AUDIENCE] });
    await expect(verifier.verify(several)).resolves.toMatchObject({ isPlatformAdmin: true });
  });

  it.each<[string, MintAudience]>([
    ['another audience', { audience: 'account' }],
    ['several audiences, none of them this one', { claims: { aud: ['account', 'portal'] } }],
    ['no audience at all', {}],
    ['an audience that merely starts with it', { audience: `${AUDIENCE}-staging` }],
  ])('refuses %s when an audience is configured', async (_case, mint) => {
    const verifier = verifierFor(issuer.url, { audience: AUDIENCE });
    const token = await issuer.mint({ ...identities.platformAdmin(), ...mint.claims }, mint.audience ? { audience: mint.audience } : {});
    expect((await refusal(verifier.verify(token))).reason).toMatch(/"aud"/);
  });
});
type MintAudience = { audience?: string; claims?: JWTPayload };

describe('the 30 s clock leeway', () => {
  // Each check uses its own verifier: an accepted token would otherwise be answered from the cache.
  const at = (ms: number) => verifierFor(issuer.url, { now: () => ms });

  it('accepts a token 29 s past exp and refuses it 31 s past', async () => {
    const token = await issuer.mint(identities.platformAdmin(), { expiresIn: 60 });
    const exp = decodeJwt(token).exp!;
    await expect(at((exp + 29) * 1000).verify(token)).resolves.toMatchObject({ sub: 'operator-1' });
    expect((await refusal(at((exp + 31) * 1000).verify(token))).reason).toMatch(/"exp"/);
  });

  it('accepts a token 29 s before nbf and refuses it 31 s before', async () => {
    const token = await issuer.mint(identities.platformAdmin(), { notBefore: 120, expiresIn: 600 });
    const nbf = decodeJwt(token).nbf!;
    await expect(at((nbf - 29) * 1000).verify(token)).resolves.toMatchObject({ sub: 'operator-1' });
    expect((await refusal(at((nbf - 31) * 1000).verify(token))).reason).toMatch(/"nbf"/);
  });
});

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
