// A stand-in for Keycloak's token side: a real HTTP server on loopback serving OIDC discovery and
// a JWKS, and minting tokens with its keys. Keys can be rotated (a new kid appears) and every
// JWKS fetch is counted, so discovery, caching and refetch-on-unknown-kid are exercised for real.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from 'jose';

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

export interface MintOptions {
  kid?: string;
  issuer?: string;
  audience?: string;
  /** Seconds from now; negative for an expired token. */
  expiresIn?: number;
  /** Seconds from now before which the token is not valid. */
  notBefore?: number;
}

export interface TestIssuer {
  url: string;
  jwksFetches: number;
  discoveryFetches: number;
  mint(claims: JWTPayload, options?: MintOptions): Promise<string>;
  /** Adds a new signing key, which becomes the default for mint(); returns its kid. */
  rotate(): Promise<string>;
  /** The newest key's public JWK (for forging tests). */
  publicJwk(): JWK;
  close(): Promise<void>;
}

async function newKey(): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = randomUUID();
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
}

export async function startTestIssuer(): Promise<TestIssuer> {
  const keys: SigningKey[] = [await newKey()];
  const server = createServer((request, response) => {
    const send = (body: unknown) => {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    if (request.url === '/.well-known/openid-configuration') {
      issuer.discoveryFetches += 1;
      send({ issuer: issuer.url, jwks_uri: `${issuer.url}/protocol/openid-connect/certs` });
    } else if (request.url === '/protocol/openid-connect/certs') {
      issuer.jwksFetches += 1;
      send({ keys: keys.map((key) => key.jwk) });
    } else {
      response.writeHead(404).end();
    }
  });
  const issuer: TestIssuer = {
    url: '',
    jwksFetches: 0,
    discoveryFetches: 0,
    async mint(claims, options = {}) {
      const key = options.kid ? keys.find((k) => k.kid === options.kid)! : keys.at(-1)!;
      const now = Math.floor(Date.now() / 1000);
      const jwt = new SignJWT({ ...claims })
        .setProtectedHeader({ alg: 'RS256', kid: options.kid ?? key.kid, typ: 'JWT' })
        .setIssuer(options.issuer ?? issuer.url)
        .setIssuedAt(now)
        .setExpirationTime(now + (options.expiresIn ?? 300));
      if (options.audience) jwt.setAudience(options.audience);
      if (options.notBefore !== undefined) jwt.setNotBefore(now + options.notBefore);
      return jwt.sign(key.privateKey);
    },
    async rotate() {
      const key = await newKey();
      keys.push(key);
      return key.kid;
    },
    publicJwk: () => keys.at(-1)!.jwk,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return issuer;
}
