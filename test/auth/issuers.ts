// Issuers for the token verifier tests, real HTTP servers on loopback: the test issuer of
// test/support/issuer.ts, and a stub whose discovery and JWKS endpoints can be made to fail; plus
// the ways of forging a token and a database for a service that must never reach one.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  SignJWT,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  importJWK,
  type CryptoKey,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { expect } from 'vitest';
import { discoveredKeys, type DiscoveryOptions } from '../../src/auth/discovery.js';
import { createTokenVerifier, InvalidTokenError, type TokenVerifier } from '../../src/auth/verifier.js';
import type { Database } from '../../src/store/database.js';
import { ROLE_NAMES } from '../support/identities.js';
import { startTestIssuer, type TestIssuer } from '../support/issuer.js';

export const SETTINGS = { roles: ROLE_NAMES, rolesClient: 'tenant-registry' };
export const AUDIENCE = 'tenant-registry';
export const TENANT = '7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11';

export interface VerifierSetup {
  audience?: string | null;
  discovery?: DiscoveryOptions;
  now?: () => number;
  /** Wraps the discovered keys, e.g. to count lookups. */
  wrapKeys?: (keys: JWTVerifyGetKey) => JWTVerifyGetKey;
}

export function verifierFor(issuerUrl: string, setup: VerifierSetup = {}): TokenVerifier {
  const keys = discoveredKeys(issuerUrl, { cooldownMs: 0, ...setup.discovery });
  return createTokenVerifier({
    ...SETTINGS,
    issuer: issuerUrl,
    audience: setup.audience ?? null,
    keys: setup.wrapKeys ? setup.wrapKeys(keys) : keys,
    ...(setup.now ? { now: setup.now } : {}),
  });
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);
export const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** An RS256 token signed with a key pair the issuer never had. */
export async function signWithForeignKey(claims: JWTPayload, kid: string, privateKey?: CryptoKey): Promise<string> {
  const key = privateKey ?? (await generateKeyPair('RS256')).privateKey;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(key);
}

/** The classic confusion attack: HMAC with the issuer's public key (PEM) as the shared secret. */
export async function signHs256WithPublicKey(claims: JWTPayload, publicJwk: JWK): Promise<string> {
  const publicKey = (await importJWK(publicJwk, 'RS256', { extractable: true })) as CryptoKey;
  const secret = new TextEncoder().encode(await exportSPKI(publicKey));
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', kid: publicJwk.kid!, typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(secret);
}

/** An unsecured JWT, written by hand: header, payload and an empty signature. */
export function unsecuredToken(claims: JWTPayload): string {
  const now = nowSeconds();
  return `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ iat: now, exp: now + 300, ...claims })}.`;
}

export async function refusal(promise: Promise<unknown>): Promise<InvalidTokenError> {
  const error = await promise.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(InvalidTokenError);
  return error as InvalidTokenError;
}

// An OIDC issuer whose endpoints a test can break: discovery and JWKS each answer normally, fail
// with a status, hang, or (discovery) name another issuer. It signs with its own key.
export type DiscoveryMode = 'ok' | 'error' | 'hang' | 'other-issuer';
export type JwksMode = 'ok' | 'error';
export interface StubIssuer {
  url: string;
  discoveryMode: DiscoveryMode;
  jwksMode: JwksMode;
  discoveryFetches: number;
  jwksFetches: number;
  mint(claims: JWTPayload): Promise<string>;
  close(): Promise<void>;
}

export async function startStubIssuer(): Promise<StubIssuer> {
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

export const noDatabase = () => Promise.reject(new Error('this test has no database'));
export const NO_DATABASE: Database = {
  driver: 'pglite',
  query: noDatabase,
  exec: noDatabase,
  transaction: noDatabase,
  // Caching listens for invalidations at start; here nothing ever arrives.
  listen: () => Promise.resolve(() => Promise.resolve()),
  ping: noDatabase,
  close: () => Promise.resolve(),
};

// Issuers a single test starts (and may close early); closed after it either way.
export const started: Array<{ close(): Promise<void> }> = [];
/** For afterEach: closes what the test started. */
export async function closeStarted(): Promise<void> {
  await Promise.allSettled(started.splice(0).map((server) => server.close()));
}
export async function ownIssuer(): Promise<TestIssuer> {
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
export async function stubIssuer(): Promise<StubIssuer> {
  const stub = await startStubIssuer();
  started.push(stub);
  return stub;
}
