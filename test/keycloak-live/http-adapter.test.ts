// The HTTP adapter against a real Keycloak (scripts/keycloak) and a realm made from
// keycloak/realm.json: what Keycloak really answers, where test/keycloak/http-adapter.test.ts
// keeps the in-process stub for the faults a real server cannot be made to show (hangs, 500s,
// malformed answers, a 401 mid-run).
import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeycloakError, type ProvisionRequest } from '../../src/keycloak/adapter.js';
import { HttpAdapter } from '../../src/keycloak/http-adapter.js';
import { ROLE_NAMES } from '../support/identities.js';
import { createTestRealm, keycloakServer, KEYCLOAK_BOOT_WAIT_MS, type KeycloakServer, type TestRealm } from '../support/keycloak-server.js';
import { startMailCatcher, type MailCatcher } from '../support/mail-catcher.js';

let keycloak: KeycloakServer;
let mail: MailCatcher;
let realm: TestRealm;

beforeAll(async () => {
  keycloak = await keycloakServer();
  mail = await startMailCatcher();
  realm = await createTestRealm(keycloak, { smtpPort: mail.port });
}, KEYCLOAK_BOOT_WAIT_MS + 60_000);

afterAll(async () => {
  await realm?.remove();
  await mail?.close();
  await keycloak?.release();
});

const adapterFor = (overrides: { clientSecret?: string; realm?: string } = {}) =>
  new HttpAdapter({
    baseUrl: keycloak.url,
    realm: overrides.realm ?? realm.name,
    clientId: realm.clientId,
    clientSecret: overrides.clientSecret ?? realm.clientSecret,
    itAdminRole: ROLE_NAMES.itAdmin,
    inviteLifespanSeconds: 600,
    callTimeoutMs: 10_000,
  });

const request = (): ProvisionRequest => {
  const slug = `live-${randomBytes(4).toString('hex')}`;
  return { tenantId: randomUUID(), slug, name: `Live ${slug}`, adminEmail: `admin@${slug}.test`, adminName: 'Ada Lovelace', knownOrganizationId: null };
};

const failureOf = async (promise: Promise<unknown>) => {
  try {
    await promise;
  } catch (error) {
    if (error instanceof KeycloakError) return { type: error.type, step: error.step, status: error.status, message: error.message };
    throw error;
  }
  throw new Error('expected a KeycloakError');
};

describe('HttpAdapter against a real Keycloak', () => {
  it('provisions the organization, the user with its tenant_id, the membership, the role and the mail', async () => {
    const asked = request();
    const result = await adapterFor().provision(asked, AbortSignal.timeout(30_000));

    const organization = (await realm.admin('GET', `/organizations/${result.organizationId}`)).body as Record<string, unknown>;
    expect(organization).toMatchObject({ alias: asked.slug, name: asked.name, enabled: true, attributes: { tenant_id: [asked.tenantId] } });
    const user = (await realm.admin('GET', `/users/${result.userId}`)).body as Record<string, unknown>;
    expect(user).toMatchObject({ email: asked.adminEmail, firstName: 'Ada', lastName: 'Lovelace', enabled: true, attributes: { tenant_id: [asked.tenantId] } });
    const members = (await realm.admin('GET', `/organizations/${result.organizationId}/members`)).body as Array<{ id: string }>;
    expect(members.map((member) => member.id)).toEqual([result.userId]);
    const roles = (await realm.admin('GET', `/users/${result.userId}/role-mappings/realm`)).body as Array<{ name: string }>;
    expect(roles.map((role) => role.name)).toContain(ROLE_NAMES.itAdmin);
    const sent = await mail.waitFor(asked.adminEmail);
    expect(sent.text).toMatch(/Verify Email, Update Password/);
    expect(result.inviteUrl).toBeNull();
  });

  it('provisioning again changes nothing and answers the same ids', async () => {
    const asked = request();
    const first = await adapterFor().provision(asked, AbortSignal.timeout(30_000));
    const again = await adapterFor().provision(asked, AbortSignal.timeout(30_000));
    expect(again).toEqual(first);
    const found = (await realm.admin('GET', `/organizations?q=alias:${asked.slug}`)).body as unknown[];
    expect(found).toHaveLength(1);
    const users = (await realm.admin('GET', `/users?email=${encodeURIComponent(asked.adminEmail)}&exact=true`)).body as unknown[];
    expect(users).toHaveLength(1);
  });

  it("refuses an organization with the tenant's alias that does not carry its tenant_id: conflict at organization", async () => {
    const asked = request();
    expect((await realm.admin('POST', '/organizations', { name: `Someone else ${asked.slug}`, alias: asked.slug })).status).toBe(201);
    expect(await failureOf(adapterFor().provision(asked, AbortSignal.timeout(30_000)))).toMatchObject({ type: 'conflict', step: 'organization' });
  });

  it('a username taken by a user with another email: conflict at user', async () => {
    const asked = request();
    expect((await realm.admin('POST', '/users', { username: asked.adminEmail, email: `other@${asked.slug}.test`, enabled: true })).status).toBe(201);
    expect(await failureOf(adapterFor().provision(asked, AbortSignal.timeout(30_000)))).toMatchObject({ type: 'conflict', step: 'user' });
  });

  it('a wrong client secret: unauthorized at token, and the secret is in no message', async () => {
    const secret = `wrong-${randomBytes(8).toString('hex')}`;
    const failure = await failureOf(adapterFor({ clientSecret: secret }).provision(request(), AbortSignal.timeout(30_000)));
    expect(failure).toMatchObject({ type: 'unauthorized', step: 'token' });
    expect(JSON.stringify(failure)).not.toContain(secret);
  });

  it('syncs an organization: the first call changes what differs, the second nothing; foreign attributes stay', async () => {
    const asked = request();
    const { organizationId } = await adapterFor().provision(asked, AbortSignal.timeout(30_000));
    const desired = {
      name: 'Renamed',
      enabled: false,
      attributes: { tenant_id: [asked.tenantId], status: ['frozen'], plan: ['pro'], products: ['portal', 'risk'] },
    };
    const organization = (await realm.admin('GET', `/organizations/${organizationId}`)).body as { attributes: Record<string, string[]> };
    await realm.admin('PUT', `/organizations/${organizationId}`, { ...organization, attributes: { ...organization.attributes, crm: ['42'] } });

    expect((await adapterFor().syncOrganization(organizationId, desired, AbortSignal.timeout(30_000))).changed.sort()).toEqual(
      ['attributes.plan', 'attributes.products', 'attributes.status', 'enabled', 'name'].sort(),
    );
    expect((await adapterFor().syncOrganization(organizationId, desired, AbortSignal.timeout(30_000))).changed).toEqual([]);
    expect((await realm.admin('GET', `/organizations/${organizationId}`)).body).toMatchObject({
      name: 'Renamed',
      alias: asked.slug,
      enabled: false,
      attributes: { ...desired.attributes, crm: ['42'] },
    });
  });

  it('an unknown organization: bad_request at sync (404)', async () => {
    const failure = await failureOf(
      adapterFor().syncOrganization(randomUUID(), { name: 'x', enabled: true, attributes: {} }, AbortSignal.timeout(30_000)),
    );
    expect(failure).toMatchObject({ type: 'bad_request', step: 'sync', status: 404 });
  });

  it('health is up with the right secret, down with a wrong one or an unknown realm', async () => {
    expect(await adapterFor().health()).toBe('up');
    expect(await adapterFor({ clientSecret: 'wrong' }).health()).toBe('down');
    expect(await adapterFor({ realm: `missing-${randomBytes(4).toString('hex')}` }).health()).toBe('down');
  });
});
