// A development token issuer inside the service, for APP_ENV=dev without Keycloak: its own key
// pair (made at boot, never stored), its own JWKS, and tokens minted on request. config.ts makes
// sure it cannot exist outside dev.
import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair, type JSONWebKeySet, type JWTVerifyGetKey, createLocalJWKSet } from 'jose';

export const DEV_ISSUER = 'urn:tenant-registry:dev-issuer';
// Long enough for an afternoon of curl, short enough that a pasted token goes stale.
export const DEV_TOKEN_TTL_SECONDS = 8 * 60 * 60;

export interface DevTokenRequest {
  sub?: string;
  name?: string;
  roles: string[];
  tenant_id?: string;
}

export interface DevIssuer {
  issuer: string;
  jwks: JSONWebKeySet;
  keys: JWTVerifyGetKey;
  mint(request: DevTokenRequest): Promise<{ access_token: string; expires_in: number; token_type: 'Bearer' }>;
}

/** `audience`, when the service checks one, is put into every token so they pass that check. */
export async function createDevIssuer(audience: string | null = null): Promise<DevIssuer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const kid = randomUUID();
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }] };
  return {
    issuer: DEV_ISSUER,
    jwks,
    keys: createLocalJWKSet(jwks),
    async mint(request) {
      const sub = request.sub ?? `dev-${randomUUID()}`;
      const token = await new SignJWT({
        typ: 'Bearer',
        preferred_username: request.name ?? sub,
        realm_access: { roles: request.roles },
        ...(request.tenant_id ? { tenant_id: request.tenant_id } : {}),
      })
        .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
        .setIssuer(DEV_ISSUER)
        .setAudience(audience ?? 'tenant-registry')
        .setSubject(sub)
        .setIssuedAt()
        .setExpirationTime(`${DEV_TOKEN_TTL_SECONDS}s`)
        .sign(privateKey);
      return { access_token: token, expires_in: DEV_TOKEN_TTL_SECONDS, token_type: 'Bearer' };
    },
  };
}
