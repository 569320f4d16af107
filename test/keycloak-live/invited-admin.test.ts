// The invited IT admin, end to end against a real Keycloak (scripts/keycloak) with the realm the
// project ships: the registry provisions the organization and the admin, Keycloak mails the
// invitation to a real SMTP server, the admin sets a password through Keycloak's own pages, signs
// in at Keycloak's token endpoint and manages its tenant, and nothing else. Then the harder case:
// a member of tenant A invited as IT admin of tenant B administers B and only belongs to A.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordFigures } from '../reliability/figures.js';
import { client } from '../support/http.js';
import { ROLE_NAMES } from '../support/identities.js';
import { actionLinkIn } from '../support/keycloak-browser.js';
import { startRegistryWithKeycloak, type LiveTenant, type RegistryWithKeycloak } from '../support/keycloak-registry.js';
import { claimsOf, KEYCLOAK_BOOT_WAIT_MS } from '../support/keycloak-server.js';

let live: RegistryWithKeycloak;
const provisioningMs: number[] = [];

beforeAll(async () => {
  live = await startRegistryWithKeycloak();
}, KEYCLOAK_BOOT_WAIT_MS + 60_000);

afterAll(async () => {
  await live?.close();
});

async function createTenant(adminEmail: string): Promise<LiveTenant> {
  const { tenant, ms } = await live.createTenant(adminEmail);
  provisioningMs.push(ms);
  return tenant;
}

describe('an IT admin invited at tenant creation, against a real Keycloak', () => {
  let own: LiveTenant;
  let other: LiveTenant;
  const email = `it.${randomBytes(4).toString('hex')}@customer.test`;

  beforeAll(async () => {
    own = await createTenant(email);
    other = await createTenant(`someone.${randomBytes(4).toString('hex')}@elsewhere.test`);
  });

  it('finds the organization, the user, the membership and the mailed invitation in Keycloak', async () => {
    const organizations = await live.realm.admin('GET', `/organizations?q=alias:${own.slug}&briefRepresentation=false`);
    const [organization] = organizations.body as Array<{ id: string; alias: string; attributes: Record<string, string[]> }>;
    expect(organization).toMatchObject({ id: own.keycloak_org_id, alias: own.slug, attributes: { tenant_id: [own.id] } });

    const users = (await live.realm.admin('GET', `/users?email=${encodeURIComponent(email)}&exact=true`)).body as Array<{
      id: string;
      attributes?: Record<string, string[]>;
    }>;
    expect(users).toHaveLength(1);
    expect(users[0]!.attributes).toEqual({ tenant_id: [own.id] });
    const members = (await live.realm.admin('GET', `/organizations/${own.keycloak_org_id}/members`)).body as Array<{ id: string }>;
    expect(members.map((member) => member.id)).toEqual([users[0]!.id]);

    const invitation = await live.mail.waitFor(email);
    expect(invitation.text).toMatch(/Verify Email/);
    expect(invitation.text).toMatch(/Update Password/);
    expect(actionLinkIn(invitation.text)).toContain(`/realms/${live.realm.name}/login-actions/action-token?key=`);
  });

  it('sets a password through the link; its Keycloak token manages its tenant (200) and nothing else (404)', async () => {
    await live.acceptInvitation(email);
    // The native organization claim: the organization's id is matched to the tenant's keycloak_org_id.
    const token = await live.realm.userToken(email, live.password, 'organization');
    expect(claimsOf(token).organization).toMatchObject({ [own.slug]: { id: own.keycloak_org_id } });
    const admin = client(live.server.url, token);

    expect((await admin.get(`/v1/tenants/${own.id}`)).status).toBe(200);
    expect((await admin.get(`/v1/audit?tenant_id=${own.id}`)).status).toBe(200);
    const key = await admin.post('/v1/api-keys', { body: { tenant_id: own.id, name: 'first key' } });
    expect(key.status).toBe(201);

    expect((await admin.get(`/v1/tenants/${other.id}`)).status).toBe(404);
    expect((await admin.get(`/v1/audit?tenant_id=${other.id}`)).status).toBe(404);
    expect((await admin.post('/v1/api-keys', { body: { tenant_id: other.id, name: 'not mine' } })).status).toBe(404);
  });

  it('works with the tenant_id token shape too (user attribute and the realm role IT_ADMIN)', async () => {
    const token = await live.realm.userToken(email, live.password);
    const claims = claimsOf(token);
    expect(claims.organization).toBeUndefined();
    expect(claims.tenant_id).toBe(own.id);
    expect((claims.realm_access as { roles: string[] }).roles).toContain(ROLE_NAMES.itAdmin);
    const admin = client(live.server.url, token);

    expect((await admin.post('/v1/api-keys', { body: { tenant_id: own.id, name: 'second key' } })).status).toBe(201);
    expect((await admin.get(`/v1/tenants/${other.id}`)).status).toBe(404);
  });
});

describe('a member of tenant A invited as IT admin of tenant B, against a real Keycloak', () => {
  let tenantA: LiveTenant;
  let tenantB: LiveTenant;
  let third: LiveTenant;
  const memberEmail = `member.${randomBytes(4).toString('hex')}@customer.test`;

  beforeAll(async () => {
    tenantA = await createTenant(`a.admin.${randomBytes(4).toString('hex')}@customer.test`);
    third = await createTenant(`c.admin.${randomBytes(4).toString('hex')}@customer.test`);
    // A plain member of A, made the way A's own admin would in Keycloak: a user of A's
    // organization, tenant_id naming A, no role.
    const userId = await live.realm.createUser({ username: memberEmail, email: memberEmail, password: live.password });
    const user = (await live.realm.admin('GET', `/users/${userId}`)).body as Record<string, unknown>;
    expect((await live.realm.admin('PUT', `/users/${userId}`, { ...user, attributes: { tenant_id: [tenantA.id] } })).status).toBe(204);
    expect((await live.realm.admin('POST', `/organizations/${tenantA.keycloak_org_id}/members`, userId)).status).toBe(201);

    tenantB = await createTenant(memberEmail);
  });

  it('leaves the user its tenant_id and gives it no realm-wide IT_ADMIN role', async () => {
    const [user] = (await live.realm.admin('GET', `/users?email=${encodeURIComponent(memberEmail)}&exact=true`)).body as Array<{
      id: string;
      attributes: Record<string, string[]>;
    }>;
    expect(user!.attributes).toEqual({ tenant_id: [tenantA.id] });
    const roles = (await live.realm.admin('GET', `/users/${user!.id}/role-mappings/realm`)).body as Array<{ name: string }>;
    expect(roles.map((role) => role.name)).not.toContain(ROLE_NAMES.itAdmin);
    // An existing user who can sign in is not asked to set a password again.
    expect(live.mail.mails.filter((sent) => sent.to.includes(memberEmail))).toEqual([]);
  });

  it('with both organizations in its token: admin of B, member of A, nothing of anyone else', async () => {
    const token = await live.realm.userToken(memberEmail, live.password, 'organization:*');
    const organizations = claimsOf(token).organization as Record<string, { id: string }>;
    expect(Object.values(organizations).map((organization) => organization.id).sort()).toEqual(
      [tenantA.keycloak_org_id, tenantB.keycloak_org_id].sort(),
    );
    const user = client(live.server.url, token);

    // B: an IT admin's routes.
    expect((await user.post('/v1/api-keys', { body: { tenant_id: tenantB.id, name: 'b key' } })).status).toBe(201);
    expect((await user.get(`/v1/audit?tenant_id=${tenantB.id}`)).status).toBe(200);
    // A: a member's routes only.
    expect((await user.get(`/v1/tenants/${tenantA.id}`)).status).toBe(200);
    expect((await user.post('/v1/api-keys', { body: { tenant_id: tenantA.id, name: 'a key' } })).status).toBe(403);
    expect((await user.get(`/v1/audit?tenant_id=${tenantA.id}`)).status).toBe(403);
    // Anyone else's: as if it did not exist.
    expect((await user.get(`/v1/tenants/${third.id}`)).status).toBe(404);
    expect((await user.post('/v1/api-keys', { body: { tenant_id: third.id, name: 'c key' } })).status).toBe(404);
  });

  it('with the tenant_id token shape: a member of A and nothing more', async () => {
    const user = client(live.server.url, await live.realm.userToken(memberEmail, live.password));
    expect((await user.get(`/v1/tenants/${tenantA.id}`)).status).toBe(200);
    expect((await user.post('/v1/api-keys', { body: { tenant_id: tenantA.id, name: 'a key' } })).status).toBe(403);
    expect((await user.get(`/v1/tenants/${tenantB.id}`)).status).toBe(404);
  });

  afterAll(() => {
    // Provisioning against the real server, per tenant (organization, user, membership, role, mail).
    const sorted = [...provisioningMs].sort((a, b) => a - b);
    recordFigures('Keycloak provisioning against the real server', 'created tenants with an admin_email through POST /v1/tenants against Keycloak 26 (scripts/keycloak), each answered after provisioning', [
      { label: 'tenants provisioned', value: sorted.length },
      { label: 'fastest (ms)', value: Math.round(sorted[0] ?? 0) },
      { label: 'median (ms)', value: Math.round(sorted[Math.floor(sorted.length / 2)] ?? 0) },
      { label: 'slowest (ms)', value: Math.round(sorted.at(-1) ?? 0) },
      { label: 'budget (ms)', value: 30_000 },
    ]);
  });
});
