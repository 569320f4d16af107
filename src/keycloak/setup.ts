// Chooses the Keycloak adapter: none that calls anything when provisioning is off, the Admin API
// client when KEYCLOAK_ADMIN_URL is set (config.ts has made sure the client id and secret are
// there too), the mock otherwise, in dev only: elsewhere it would report invitations nobody sent.
import type { Config } from '../config.js';
import type { KeycloakAdapter } from './adapter.js';
import { DisabledAdapter } from './disabled-adapter.js';
import { HttpAdapter } from './http-adapter.js';
import { MockAdapter } from './mock-adapter.js';

// One Admin API call should take milliseconds; two seconds means Keycloak is in trouble.
const CALL_TIMEOUT_MS = 2_000;
// Invitation links stay valid for three days: long enough for a weekend.
const INVITE_LIFESPAN_SECONDS = 3 * 24 * 60 * 60;

export function keycloakAdapterFor(config: Pick<Config, 'appEnv' | 'keycloak' | 'auth'>): KeycloakAdapter {
  const { provisioning, adminUrl, realm, clientId, clientSecret } = config.keycloak;
  if (provisioning === 'off') return new DisabledAdapter();
  if (adminUrl === '') {
    // config.ts refuses this outside dev; this guards against a caller that skipped it.
    if (config.appEnv !== 'dev') throw new Error('the mock Keycloak adapter runs only with APP_ENV=dev');
    return new MockAdapter(`http://localhost:8080/realms/${realm}`);
  }
  return new HttpAdapter({
    baseUrl: adminUrl,
    realm,
    clientId,
    clientSecret,
    itAdminRole: config.auth.roles.itAdmin,
    inviteLifespanSeconds: INVITE_LIFESPAN_SECONDS,
    callTimeoutMs: CALL_TIMEOUT_MS,
  });
}
