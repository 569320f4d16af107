// Which tokens createTokenVerifier accepts, against a real issuer on loopback: a valid one becomes
// the principal; forged, expired, misaddressed and malformed ones are refused with a reason; the
// audience is checked only when configured; the clock leeway is 30 s either way.
import { randomUUID } from 'node:crypto';
import { decodeJwt, type JWTPayload } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { client, problemOf } from '../support/http.js';
import { identities } from '../support/identities.js';
import { startTestIssuer, type TestIssuer } from '../support/issuer.js';
import { startServerOn } from '../support/server.js';
import { AUDIENCE, NO_DATABASE, TENANT, closeStarted, ownIssuer, refusal, signHs256WithPublicKey, signWithForeignKey, started, unsecuredToken, verifierFor } from './issuers.js';

let issuer: TestIssuer;
beforeAll(async () => {
  issuer = await startTestIssuer();
});
afterAll(() => issuer.close());
afterEach(closeStarted);

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
