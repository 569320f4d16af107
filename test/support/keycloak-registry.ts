// The registry wired to a real Keycloak for a test file: a fresh realm from keycloak/realm.json,
// a mail catcher as its SMTP server, the app verifying that realm's tokens and provisioning
// through its Admin API, and an operator signed in at Keycloak's token endpoint.
import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { discoveredKeys } from '../../src/auth/discovery.js';
import { createTokenVerifier } from '../../src/auth/verifier.js';
import { HttpAdapter } from '../../src/keycloak/http-adapter.js';
import { DRIVERS } from './drivers.js';
import { randomSlug } from './factories.js';
import { client, type Client } from './http.js';
import { ROLE_NAMES } from './identities.js';
import { actionLinkIn, completeRequiredActions } from './keycloak-browser.js';
import { createTestRealm, keycloakServer, type KeycloakServer, type TestRealm } from './keycloak-server.js';
import { startMailCatcher, type MailCatcher } from './mail-catcher.js';
import { startServer, type TestServer } from './server.js';

export interface LiveTenant {
  id: string;
  slug: string;
  name: string;
  status: string;
  keycloak_org_id: string | null;
  keycloak_provisioning: string;
}

export interface RegistryWithKeycloak {
  keycloak: KeycloakServer;
  mail: MailCatcher;
  realm: TestRealm;
  server: TestServer;
  adapter: HttpAdapter;
  /** The operator (platform_admin), with a token from Keycloak. */
  operator: Client;
  /** The password every user of the file gets. */
  password: string;
  /** Creates a tenant through the registry with this admin; answers once provisioning is done. */
  createTenant(adminEmail: string): Promise<{ tenant: LiveTenant; ms: number }>;
  /** Follows the invitation mailed to `email` and sets the password, as the admin would. */
  acceptInvitation(email: string): Promise<void>;
  close(): Promise<void>;
}

export async function startRegistryWithKeycloak(): Promise<RegistryWithKeycloak> {
  const password = `Pw-${randomBytes(9).toString('base64url')}`;
  const keycloak = await keycloakServer();
  const mail = await startMailCatcher();
  const realm = await createTestRealm(keycloak, { smtpPort: mail.port });
  const verifier = createTokenVerifier({
    issuer: realm.issuer,
    audience: 'tenant-registry',
    roles: ROLE_NAMES,
    rolesClient: 'tenant-registry',
    keys: discoveredKeys(realm.issuer),
  });
  const adapter = new HttpAdapter({
    baseUrl: keycloak.url,
    realm: realm.name,
    clientId: realm.clientId,
    clientSecret: realm.clientSecret,
    itAdminRole: ROLE_NAMES.itAdmin,
    inviteLifespanSeconds: 3_600,
    callTimeoutMs: 10_000,
  });
  // PostgreSQL when the run has it: the database the registry runs on in production.
  const server = await startServer(DRIVERS.includes('pg') ? 'pg' : 'pglite', {
    auth: { verifier, devIssuer: null },
    keycloak: { adapter, budgetMs: 30_000 },
  });
  await realm.createUser({ username: 'olga', email: 'olga@operators.test', password, realmRoles: [ROLE_NAMES.platformAdmin] });
  const operator = client(server.url, await realm.userToken('olga', password));

  return {
    keycloak,
    mail,
    realm,
    server,
    adapter,
    operator,
    password,
    async createTenant(adminEmail) {
      const started = performance.now();
      const slug = randomSlug('kc');
      const created = await operator.post<{ tenant: LiveTenant }>('/v1/tenants', {
        body: { slug, name: `Live ${slug}`, admin_email: adminEmail, admin_name: 'Ada Admin' },
      });
      const ms = performance.now() - started;
      expect(created.status).toBe(201);
      expect(created.body.tenant.keycloak_provisioning).toBe('done');
      return { tenant: created.body.tenant, ms };
    },
    async acceptInvitation(email) {
      const invitation = await mail.waitFor(email);
      await completeRequiredActions(actionLinkIn(invitation.text), password);
    },
    async close() {
      await server.close();
      await realm.remove();
      await mail.close();
      await keycloak.release();
    },
  };
}
