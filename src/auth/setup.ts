// Chooses how tokens are verified: against the configured Keycloak issuer (discovery + JWKS), or,
// in dev without an issuer, against the embedded development issuer (on the embedded database,
// or on DATABASE_URL when DEV_ISSUER_WITH_DATABASE says so).
import type { Config } from '../config.js';
import { createDevIssuer, type DevIssuer } from './dev-issuer.js';
import { discoveredKeys } from './discovery.js';
import { createTokenVerifier, type TokenVerifier } from './verifier.js';

export interface Authentication {
  verifier: TokenVerifier;
  /** Present only in dev without KEYCLOAK_ISSUER. */
  devIssuer: DevIssuer | null;
}

export async function authenticationFor(config: Pick<Config, 'appEnv' | 'auth' | 'database'>): Promise<Authentication> {
  const { auth } = config;
  const settings = { audience: auth.audience, roles: auth.roles, rolesClient: auth.rolesClient };
  if (auth.issuer !== null) {
    return { verifier: createTokenVerifier({ ...settings, issuer: auth.issuer, keys: discoveredKeys(auth.issuer) }), devIssuer: null };
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
