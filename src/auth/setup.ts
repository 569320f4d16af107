// Chooses how tokens are verified: against the configured Keycloak issuer (discovery + JWKS), or,
// in dev without an issuer, against the embedded development issuer (on the embedded database,
// or on DATABASE_URL when DEV_ISSUER_WITH_DATABASE says so).
import type { Config } from '../config.js';
import { createDevIssuer, type DevIssuer } from './dev-issuer.js';
import { issuerDiscovery, type IssuerChange, type IssuerDiscovery } from './discovery.js';
import { createTokenVerifier, type TokenVerifier } from './verifier.js';

export interface Authentication {
  verifier: TokenVerifier;
  /** Present only in dev without KEYCLOAK_ISSUER. */
  devIssuer: DevIssuer | null;
  /**
   * The configured issuer's discovery, whose status GET /readyz reports. Absent with the
   * development issuer, and where a verifier was put together by hand (tests).
   */
  issuer?: IssuerDiscovery;
}

/** The part of a pino logger the issuer's changes are written to. */
export interface IssuerLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface AuthenticationOptions {
  /** Where each change of the issuer's status is logged, once (service.ts passes the process logger). */
  log?: IssuerLog;
}

/** The log line of a change of the issuer's status: its reason with the addresses and the cause. */
export function logIssuerChange(log: IssuerLog, change: IssuerChange): void {
  const { status, issuer, documentUrl } = change;
  const where = { issuer, discovery_url: documentUrl };
  switch (status.state) {
    case 'up':
      log.info(
        { ...where, jwks_url: status.jwksUrl, ...(change.jwksUri !== status.jwksUrl ? { jwks_uri_named: change.jwksUri } : {}) },
        'token issuer discovered',
      );
      return;
    case 'down':
      log.warn({ ...where, err: change.cause }, `token issuer unavailable: ${status.reason}; authenticated requests answer 503 until it is back`);
      return;
    case 'mismatch':
      log.warn(
        { ...where, expected: issuer, found: status.found },
        `token issuer misconfigured: ${status.reason}; authenticated requests answer 503 until they agree. KEYCLOAK_ISSUER must be ` +
          'exactly the iss of the tokens (trailing slash included); to fetch the discovery document from another address than ' +
          'the issuer (an internal hostname), set KEYCLOAK_DISCOVERY_URL',
      );
      return;
    case 'unknown':
      return;
  }
}

export async function authenticationFor(
  config: Pick<Config, 'appEnv' | 'auth' | 'database'>,
  options: AuthenticationOptions = {},
): Promise<Authentication> {
  const { auth } = config;
  const settings = { audience: auth.audience, roles: auth.roles, rolesClient: auth.rolesClient };
  if (auth.issuer !== null) {
    const { log } = options;
    const issuer = issuerDiscovery(auth.issuer, {
      discoveryUrl: auth.discoveryUrl,
      ...(log ? { onChange: (change: IssuerChange) => logIssuerChange(log, change) } : {}),
    });
    return { verifier: createTokenVerifier({ ...settings, issuer: auth.issuer, keys: issuer.keys }), devIssuer: null, issuer };
  }
  // config.ts refuses an empty issuer outside dev; this guards against a caller that skipped it.
  if (config.appEnv !== 'dev') throw new Error('the development issuer runs only with APP_ENV=dev');
  // Its tokens are free for the asking: only a throwaway embedded database, unless asked for.
  if (config.database.kind === 'postgres' && !auth.devIssuerWithDatabase) {
    throw new Error('the development issuer runs on a DATABASE_URL database only with DEV_ISSUER_WITH_DATABASE=true');
  }
  const devIssuer = await createDevIssuer(auth.audience);
  return { verifier: createTokenVerifier({ ...settings, issuer: devIssuer.issuer, keys: devIssuer.keys }), devIssuer };
}
