// Bearer token verification with jose. Only asymmetric algorithms are accepted: "none" is never
// accepted by jose's jwtVerify, and HMAC is left off the list, so a token signed with the
// issuer's *public* key as an HMAC secret is refused. Verified tokens are remembered until they
// expire, so the hot paths (by-slug, verify, claims) pay one map lookup instead of a signature.
import { errors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { AppError } from '../problems.js';
import { principalFromClaims, UnusableClaimsError, type Principal, type PrincipalSettings } from './principal.js';

// Ed25519 is the fully-specified name (RFC 9864) of what EdDSA means with an Ed25519 key; issuers
// that follow the newer RFC (oidc-provider among them) sign with it.
export const ALLOWED_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

// Clocks of Keycloak and of this service drift a little; 30 s forgives that, not a stale token.
const CLOCK_TOLERANCE_SECONDS = 30;
// Enough for every active session of a large platform; past it the oldest entries are dropped.
const CACHE_MAX_ENTRIES = 10_000;

export class InvalidTokenError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'InvalidTokenError';
  }
}

/** The issuer's keys could not be fetched: nobody can be authenticated right now. */
export class IssuerUnavailableError extends Error {
  /** @param reason what failed, in a few words without addresses (it may reach the request log) */
  constructor(cause: unknown, reason?: string) {
    super(reason === undefined ? 'the token issuer is unavailable' : `the token issuer is unavailable: ${reason}`, { cause });
    this.name = 'IssuerUnavailableError';
  }
}

/**
 * The issuer answers, but not as the issuer configured (its discovery document names another):
 * nobody can be authenticated until the configuration or the issuer is fixed. It is a 503 that
 * names the mismatch, since "unreachable" would send the operator looking in the wrong place.
 * The mismatch is logged once where it is found (auth/discovery.ts), not with every request.
 */
export class IssuerMisconfiguredError extends AppError {
  constructor(readonly reason: string) {
    super('unavailable', { detail: `tokens cannot be verified: ${reason}`, headers: { 'retry-after': '5' } });
    this.name = 'IssuerMisconfiguredError';
  }
}

export interface TokenVerifier {
  verify(token: string): Promise<Principal>;
  /**
   * The principal of a token verified before and not expired since, found without verifying
   * anything; undefined otherwise. Optional: a verifier without it knows no token in advance.
   */
  known?(token: string): Principal | undefined;
}

export interface VerifierOptions extends PrincipalSettings {
  issuer: string;
  audience: string | null;
  keys: JWTVerifyGetKey;
  now?: () => number;
}

function isKeyFetchFailure(error: unknown): boolean {
  return (
    error instanceof errors.JWKSTimeout ||
    error instanceof IssuerUnavailableError ||
    (error instanceof errors.JOSEError && error.code === 'ERR_JOSE_GENERIC' && /fetch|network/i.test(error.message)) ||
    error instanceof TypeError // fetch() failing to connect
  );
}

export function createTokenVerifier(options: VerifierOptions): TokenVerifier {
  const now = options.now ?? Date.now;
  const cache = new Map<string, { principal: Principal; expiresAt: number }>();
  const known = (token: string) => {
    const cached = cache.get(token);
    if (cached && cached.expiresAt > now()) return cached.principal;
    if (cached) cache.delete(token);
    return undefined;
  };

  return {
    known,
    async verify(token) {
      const cached = known(token);
      if (cached) return cached;

      let payload;
      try {
        ({ payload } = await jwtVerify(token, options.keys, {
          issuer: options.issuer,
          ...(options.audience ? { audience: options.audience } : {}),
          algorithms: ALLOWED_ALGORITHMS,
          // A token without an expiry would be valid forever; one without a subject names nobody
          // (and principalFromClaims refuses a subject that is not a usable string).
          requiredClaims: ['exp', 'sub'],
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
          currentDate: new Date(now()),
        }));
      } catch (error) {
        if (error instanceof IssuerMisconfiguredError) throw error;
        if (isKeyFetchFailure(error)) throw error instanceof IssuerUnavailableError ? error : new IssuerUnavailableError(error);
        // jose's messages name the failed check (expired, signature, issuer); they carry no token.
        throw new InvalidTokenError(error instanceof Error ? error.message : 'invalid token');
      }
      // Keycloak marks its tokens: access tokens "Bearer", ID and refresh tokens otherwise. An ID
      // token of any client in the realm must not pass as an access token.
      if (payload.typ !== undefined && payload.typ !== 'Bearer') {
        throw new InvalidTokenError(`a ${JSON.stringify(payload.typ)} token is not an access token`);
      }
      let principal: Principal;
      try {
        principal = principalFromClaims(payload, options);
      } catch (error) {
        // jose's requiredClaims checks only that `sub` is there; what it must be is checked here.
        if (error instanceof UnusableClaimsError) throw new InvalidTokenError(error.reason);
        throw error;
      }
      if (typeof payload.exp === 'number') {
        if (cache.size >= CACHE_MAX_ENTRIES) cache.delete(cache.keys().next().value!);
        cache.set(token, { principal, expiresAt: payload.exp * 1000 });
      }
      return principal;
    },
  };
}
