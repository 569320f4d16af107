// The issuer's signing keys, found through OIDC discovery ({issuer}/.well-known/openid-configuration
// -> jwks_uri) on first use rather than at boot, so the service starts while Keycloak is down.
// jose's remote key set caches the keys and refetches when a token names an unknown kid, at most
// once per cooldown: a flood of garbage tokens with made-up kids cannot hammer Keycloak.
import { createRemoteJWKSet, type JWTVerifyGetKey } from 'jose';
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
  const response = await fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, {
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!response.ok) throw new Error(`discovery answered ${response.status}`);
  const document = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
  // A discovery document for another issuer would let its keys sign for this one.
  if (document.issuer !== issuer) throw new Error('discovery document names another issuer');
  if (typeof document.jwks_uri !== 'string') throw new Error('discovery document has no jwks_uri');
  return new URL(document.jwks_uri);
}

export function discoveredKeys(issuer: string, options: DiscoveryOptions = {}): JWTVerifyGetKey {
  const timeoutMs = options.timeoutMs ?? 3_000;
  const retryAfterFailureMs = options.retryAfterFailureMs ?? 5_000;
  let keys: JWTVerifyGetKey | undefined;
  let discovering: Promise<JWTVerifyGetKey> | undefined;
  let failedAt = Number.NEGATIVE_INFINITY;

  const discover = async () => {
    if (Date.now() - failedAt < retryAfterFailureMs) throw new IssuerUnavailableError('discovery failed recently');
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
    // Concurrent first requests share one discovery.
    const keySet = keys ?? (await (discovering ??= discover()));
    return keySet(header, token);
  };
}
