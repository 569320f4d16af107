// A real OpenID Connect server for tests: oidc-provider (the certified Node implementation)
// in-process on a loopback port. Unlike test/support/issuer.ts it writes its own discovery
// document, JWKS and tokens, so what the service meets is what a deployed issuer serves. Tokens
// come from the client_credentials grant as JWT access tokens (RFC 9068) for a resource server
// whose audience is `tenant-registry`, with Keycloak-style role claims added.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import Provider from 'oidc-provider';

export const OIDC_AUDIENCE = 'tenant-registry';
const RESOURCE = 'urn:tenant-registry';
const CLIENT = { id: 'portal', secret: 'portal-secret-of-the-oidc-provider-tests' };
/** The one client the provider knows (client_secret_post), for tests that ask it for tokens themselves. */
export const OIDC_CLIENT: Readonly<typeof CLIENT> = CLIENT;

export type SigningAlg = 'RS256' | 'Ed25519' | 'EdDSA';

export interface OidcServerOptions {
  /** The issuer, from the origin the server listens on (http://127.0.0.1:PORT). */
  issuer: (origin: string) => string;
  /** The path the provider is served under, e.g. /realms/prod ('' for the root). */
  mountPath?: string;
  /**
   * The host:port every URL of the provider's own documents names (jwks_uri, token endpoint),
   * whatever address a request came to: Keycloak with a fixed public hostname (KC_HOSTNAME).
   */
  publicHost?: (origin: string) => string;
  /** How access tokens are signed: EdDSA and Ed25519 (RFC 9864's name) both with an Ed25519 key. */
  alg?: SigningAlg;
  /** Claims added to every access token (roles, tenant_id). */
  claims?: Record<string, unknown>;
}

export interface OidcServer {
  /** http://127.0.0.1:PORT, where the server listens. */
  origin: string;
  issuer: string;
  /** The provider's discovery document, as fetched from its own address. */
  discovery(): Promise<{ issuer: string; jwks_uri: string }>;
  /** A JWT access token from the client_credentials grant. */
  token(): Promise<string>;
  /** A JWT signed with the provider's own key, written by the test: for claims it would not issue (another iss). */
  sign(claims: JWTPayload): Promise<string>;
  /** The paths requested from the server, in order, as they arrived. */
  requests: string[];
  /** How many times the JWKS was served. */
  jwksFetches: number;
  close(): Promise<void>;
}

async function signingKey(alg: SigningAlg): Promise<{ jwk: JWK; privateKey: CryptoKey }> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  return { jwk: { ...(await exportJWK(privateKey)), kid: `${alg.toLowerCase()}-key`, use: 'sig', alg }, privateKey };
}

export async function startOidcProvider(options: OidcServerOptions): Promise<OidcServer> {
  const mountPath = options.mountPath ?? '';
  const alg = options.alg ?? 'RS256';
  let handle: (request: IncomingMessage, response: ServerResponse) => void = (_, response) => response.writeHead(503).end();
  const server = createServer((request, response) => handle(request, response));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const issuer = options.issuer(origin);
  const key = await signingKey(alg);

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT.id,
        client_secret: CLIENT.secret,
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_post',
      },
    ],
    jwks: { keys: [key.jwk] },
    // Its only key signs with `alg`, so ID tokens (which no test asks for) must be able to as well.
    clientDefaults: { id_token_signed_response_alg: alg },
    ttl: { ClientCredentials: 600 },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({
          scope: 'registry',
          audience: OIDC_AUDIENCE,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg } },
        }),
      },
    },
    extraTokenClaims: () => options.claims ?? {},
  });
  const callback = provider.callback();
  const publicHost = options.publicHost?.(origin);
  const oidc: OidcServer = {
    origin,
    issuer,
    requests: [],
    jwksFetches: 0,
    sign: (claims) =>
      new SignJWT({ iss: issuer, aud: OIDC_AUDIENCE, ...claims })
        .setProtectedHeader({ alg, kid: key.jwk.kid!, typ: 'at+jwt' })
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(key.privateKey),
    async discovery() {
      const response = await fetch(`${origin}${mountPath}/.well-known/openid-configuration`);
      return (await response.json()) as { issuer: string; jwks_uri: string };
    },
    async token() {
      const response = await fetch(`${origin}${mountPath}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: CLIENT.id,
          client_secret: CLIENT.secret,
          scope: 'registry',
          resource: RESOURCE,
        }),
      });
      const body = (await response.json()) as { access_token?: string; error?: string; error_description?: string };
      if (!response.ok || !body.access_token) throw new Error(`token endpoint: ${response.status} ${JSON.stringify(body)}`);
      return body.access_token;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  handle = (request, response) => {
    const url = request.url ?? '/';
    oidc.requests.push(url);
    if (mountPath !== '' && !url.startsWith(`${mountPath}/`)) return void response.writeHead(404).end();
    // Mounted as Express would mount it: the provider sees the path under its mount and finds
    // the mount in originalUrl, so the URLs it writes keep it.
    (request as IncomingMessage & { originalUrl?: string }).originalUrl = url;
    request.url = url.slice(mountPath.length);
    if (publicHost !== undefined) request.headers.host = publicHost;
    if (request.url === '/jwks') oidc.jwksFetches += 1;
    void callback(request, response);
  };
  return oidc;
}
