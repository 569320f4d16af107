// The issuer's signing keys, found through OIDC discovery ({issuer}/.well-known/openid-configuration
// -> jwks_uri) on first use rather than at boot, so the service starts while Keycloak is down.
// jose's remote key set caches the keys and refetches when a token names an unknown kid, at most
// once per cooldown: a flood of garbage tokens with made-up kids cannot hammer Keycloak.
import { createRemoteJWKSet, errors, type JWTVerifyGetKey } from 'jose';
import { IssuerUnavailableError } from './verifier.js';

export interface DiscoveryOptions {
  /** Per HTTP request to the issuer; a hung Keycloak must not hang every authenticated request. */
  timeoutMs?: number;
  /** Minimum time between JWKS fetches triggered by unknown kids. */
  cooldownMs?: number;
  /** After a failed discovery, requests fail fast for this long instead of retrying each time. */
  retryAfterFailureMs?: number;
}

async function discoverJwksUri(issuer: string, timeoutMs: number): Promise<URL> {
  const response = await fetch(`${issuer}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(timeoutMs) });
  if (!response.ok) throw new Error(`discovery answered ${response.status}`);
  const document = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
  // A discovery document for another issuer would let its keys sign for this one.
  if (document.issuer !== issuer) throw new Error('discovery document names another issuer');
  if (typeof document.jwks_uri !== 'string') throw new Error('discovery document has no jwks_uri');
  return new URL(document.jwks_uri);
}

/** Errors that say something about the token; any other failure to get a key is the issuer's. */
const TOKEN_ERRORS = [errors.JWKSNoMatchingKey, errors.JWKSMultipleMatchingKeys, errors.JOSENotSupported, errors.JWSInvalid];

export function discoveredKeys(issuer: string, options: DiscoveryOptions = {}): JWTVerifyGetKey {
  const timeoutMs = options.timeoutMs ?? 3_000;
  const retryAfterFailureMs = options.retryAfterFailureMs ?? 5_000;
  let keys: JWTVerifyGetKey | undefined;
  let discovering: Promise<JWTVerifyGetKey> | undefined;
  let failedAt = Number.NEGATIVE_INFINITY;

  const discover = async () => {
    try {
      const jwksUri = await discoverJwksUri(issuer, timeoutMs);
      keys = createRemoteJWKSet(jwksUri, { timeoutDuration: timeoutMs, cooldownDuration: options.cooldownMs ?? 30_000 });
      return keys;
    } catch (error) {
      failedAt = Date.now();
      throw new IssuerUnavailableError(error);
    } finally {
      discovering = undefined;
    }
  };

  return async (header, token) => {
    if (!keys && !discovering && Date.now() - failedAt < retryAfterFailureMs) {
      throw new IssuerUnavailableError('discovery failed moments ago');
    }
    // Concurrent first requests share one discovery.
    const keySet = keys ?? (await (discovering ??= discover()));
    try {
      return await keySet(header, token);
    } catch (error) {
      if (TOKEN_ERRORS.some((type) => error instanceof type)) throw error;
      // A JWKS endpoint that answers 5xx, garbage or nothing: nobody can be verified right now.
      throw new IssuerUnavailableError(error);
    }
  };
}
