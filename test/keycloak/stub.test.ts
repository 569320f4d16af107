// The Keycloak stub on its own, spoken to with plain fetch, so that adapter tests built on it can
// trust that it answers as the reference says Keycloak does: tokens, statuses, bodies, Location
// headers, the conflicts that make provisioning idempotent, and every injectable fault.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { startKeycloakStub, type KeycloakStub, type StubUser } from '../support/keycloak-stub.js';
import { call, type Answer, type RequestOptions } from '../support/http.js';

const REALM = 'breakpilot-dev';
const ADMIN = `/admin/realms/${REALM}`;

let stub: KeycloakStub;
let token: string;

beforeEach(async () => {
  stub = await startKeycloakStub({ clientSecret: 's3cr:t/+&=' });
  token = stub.issueToken();
});

afterEach(async () => {
  vi.useRealTimers();
  await stub.close();
});

function admin<T = Record<string, unknown>>(method: string, path: string, options: RequestOptions = {}, bearer = token) {
  return call<T>(stub.url, method, `${ADMIN}${path}`, options, bearer);
}

function form(fields: Record<string, string>, headers: Record<string, string> = {}): RequestOptions {
  return {
    raw: new URLSearchParams(fields).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
  };
}

function requestToken(fields: Record<string, string>, headers: Record<string, string> = {}) {
  return call(stub.url, 'POST', stub.tokenUrl, form(fields, headers));
}

/** The id at the end of a Location header, after checking the header names the collection. */
function idFrom(answer: Answer, collection: string): string {
  const location = answer.headers.get('location') ?? '';
  expect(location).toMatch(new RegExp(`^${stub.url}${ADMIN}/${collection}/[^/]+$`));
  return location.split('/').at(-1)!;
}

async function createOrganization(name: string, alias: string): Promise<string> {
  const created = await admin('POST', '/organizations', { body: { name, alias } });
  expect(created.status).toBe(201);
  return idFrom(created, 'organizations');
}

async function createUser(fields: Record<string, unknown>): Promise<string> {
  const created = await admin('POST', '/users', { body: { enabled: true, ...fields } });
  expect(created.status).toBe(201);
  return idFrom(created, 'users');
}

describe('token endpoint', () => {
  it('issues a client_credentials token for form credentials and for url-encoded HTTP Basic', async () => {
    const byForm = await requestToken({ grant_type: 'client_credentials', client_id: stub.clientId, client_secret: stub.clientSecret });
    expect(byForm.status).toBe(200);
    expect(byForm.body).toEqual({
      access_token: expect.any(String) as unknown,
      expires_in: 300,
      refresh_expires_in: 0,
      token_type: 'Bearer',
      'not-before-policy': 0,
      scope: expect.any(String) as unknown,
    });
    expect(byForm.body).not.toHaveProperty('refresh_token');

    const basic = Buffer.from(`${encodeURIComponent(stub.clientId)}:${encodeURIComponent(stub.clientSecret)}`).toString('base64');
    const byBasic = await requestToken({ grant_type: 'client_credentials' }, { authorization: `Basic ${basic}` });
    expect(byBasic.status).toBe(200);
    expect(byBasic.body.access_token).not.toBe(byForm.body.access_token);
    expect(stub.tokensIssued).toBe(2);

    const serverinfo = await call(stub.url, 'GET', '/admin/serverinfo', {}, byBasic.body.access_token as string);
    expect(serverinfo.status).toBe(200);
    expect(serverinfo.body.systemInfo).toMatchObject({ version: expect.stringMatching(/^26\./) as unknown });
  });

  it('refuses unknown clients, wrong secrets, a missing client_id and other grants as Keycloak does', async () => {
    const denied = 'Invalid client or Invalid client credentials';
    const unknown = await requestToken({ grant_type: 'client_credentials', client_id: 'nobody', client_secret: 'x' });
    expect([unknown.status, unknown.body]).toEqual([401, { error: 'invalid_client', error_description: denied }]);
    const wrong = await requestToken({ grant_type: 'client_credentials', client_id: stub.clientId, client_secret: 'nope' });
    expect([wrong.status, wrong.body]).toEqual([401, { error: 'unauthorized_client', error_description: denied }]);
    const missing = await requestToken({ grant_type: 'client_credentials' });
    expect([missing.status, missing.body]).toEqual([400, { error: 'invalid_client', error_description: 'Missing client_id parameter' }]);
    const password = await requestToken({ grant_type: 'password', client_id: stub.clientId });
    expect([password.status, password.body.error]).toEqual([400, 'unsupported_grant_type']);
    const otherRealm = await call(stub.url, 'POST', '/realms/other/protocol/openid-connect/token', form({ grant_type: 'client_credentials' }));
    expect(otherRealm.status).toBe(404);
    expect(stub.tokensIssued).toBe(0);
  });

  it('lets tokens expire after their lifetime, or all at once on expireTokens()', async () => {
    expect((await admin('GET', '/roles/IT_ADMIN')).status).toBe(200);
    stub.expireTokens();
    const expired = await admin('GET', '/roles/IT_ADMIN');
    expect([expired.status, expired.body]).toEqual([401, { error: 'HTTP 401 Unauthorized' }]);

    vi.useFakeTimers({ toFake: ['Date'] });
    token = stub.issueToken();
    vi.setSystemTime(Date.now() + 299_000);
    expect((await admin('GET', '/roles/IT_ADMIN')).status).toBe(200);
    vi.setSystemTime(Date.now() + 2_000);
    expect((await admin('GET', '/roles/IT_ADMIN')).status).toBe(401);

    const short = await startKeycloakStub({ clientId: 'registry', clientSecret: 'pw', tokenLifetimeSeconds: 60 });
    try {
      const fields = { grant_type: 'client_credentials', client_id: 'registry', client_secret: 'pw' };
      const issued = await call(short.url, 'POST', short.tokenUrl, form(fields));
      expect(issued.body.expires_in).toBe(60);
      vi.setSystemTime(Date.now() + 61_000);
      expect((await call(short.url, 'GET', '/admin/serverinfo', {}, issued.body.access_token as string)).status).toBe(401);
    } finally {
      await short.close();
    }
  });

  it('answers 401 to admin calls without a token or with an unknown one', async () => {
    expect((await admin('GET', '/users', {}, '')).status).toBe(401);
    expect((await admin('GET', '/users', {}, 'made-up')).body).toEqual({ error: 'HTTP 401 Unauthorized' });
    expect((await call(stub.url, 'GET', '/admin/serverinfo')).status).toBe(401);
  });
});

describe('organizations', () => {
  it('creates with 201, an empty body and a Location, then gets and finds by alias', async () => {
    const created = await admin('POST', '/organizations', {
      body: { name: 'Acme GmbH', alias: 'acme', domains: [{ name: 'acme.example', verified: false }], attributes: { plan: ['pro'] } },
    });
    expect([created.status, created.text]).toEqual([201, '']);
    const id = idFrom(created, 'organizations');

    const got = await admin('GET', `/organizations/${id}`);
    expect(got.body).toEqual({
      id,
      name: 'Acme GmbH',
      alias: 'acme',
      enabled: true,
      domains: [{ name: 'acme.example', verified: false }],
      attributes: { plan: ['pro'] },
    });
    const found = await admin<Record<string, unknown>[]>('GET', '/organizations?q=alias:acme');
    expect(found.body).toEqual([{ id, name: 'Acme GmbH', alias: 'acme', enabled: true, domains: [{ name: 'acme.example', verified: false }] }]);
    expect((await admin<unknown[]>('GET', '/organizations?q=alias:acm')).body).toEqual([]);
    const full = await admin<Record<string, unknown>[]>('GET', '/organizations?q=alias:acme&briefRepresentation=false');
    expect(full.body[0]!.attributes).toEqual({ plan: ['pro'] });
    expect(stub.state.organizations.map((o) => o.alias)).toEqual(['acme']);
  });

  it('keeps attributes as lists of strings, leaves them out of brief representations, and finds by them', async () => {
    const tenantId = '7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11';
    const created = await admin('POST', '/organizations', {
      body: { name: 'Acme', alias: 'acme', attributes: { tenant_id: [tenantId], plan: ['pro', 'trial'], empty: [] } },
    });
    const id = idFrom(created, 'organizations');
    await createOrganization('Other', 'other');
    // A key without values is not kept: Keycloak stores one row per value.
    expect((await admin('GET', `/organizations/${id}`)).body.attributes).toEqual({ tenant_id: [tenantId], plan: ['pro', 'trial'] });

    // Searches answer brief representations unless told otherwise.
    const brief = await admin<Record<string, unknown>[]>('GET', '/organizations?q=alias:acme');
    expect(brief.body).toHaveLength(1);
    expect(brief.body[0]).not.toHaveProperty('attributes');
    const full = await admin<Record<string, unknown>[]>('GET', '/organizations?q=alias:acme&exact=true&briefRepresentation=false');
    expect(full.body.map((o) => o.attributes)).toEqual([{ tenant_id: [tenantId], plan: ['pro', 'trial'] }]);

    const ids = async (q: string) => (await admin<{ id: string }[]>('GET', `/organizations?q=${encodeURIComponent(q)}`)).body.map((o) => o.id);
    expect(await ids(`tenant_id:${tenantId}`)).toEqual([id]);
    expect(await ids(`alias:acme tenant_id:${tenantId}`)).toEqual([id]);
    expect(await ids('plan:trial')).toEqual([id]);
    expect(await ids('tenant_id:2b1c7e55-0d7a-4f0e-8d7e-5a1f3c9b8e42')).toEqual([]);
    expect(await ids(`alias:other tenant_id:${tenantId}`)).toEqual([]);

    // An update without attributes leaves them; one with attributes replaces them all.
    expect((await admin('PUT', `/organizations/${id}`, { body: { name: 'Acme', alias: 'acme' } })).status).toBe(204);
    expect(stub.state.organizations[0]!.attributes).toEqual({ tenant_id: [tenantId], plan: ['pro', 'trial'] });
    expect((await admin('PUT', `/organizations/${id}`, { body: { name: 'Acme', attributes: { plan: ['pro'] } } })).status).toBe(204);
    expect((await admin('GET', `/organizations/${id}`)).body.attributes).toEqual({ plan: ['pro'] });
  });

  it('searches by name or domain, exact or not, paged by first and max (default 10)', async () => {
    for (let i = 0; i < 12; i += 1) await createOrganization(`Org ${String(i).padStart(2, '0')}`, `org-${i}`);
    const names = async (query: string) =>
      (await admin<{ name: string }[]>('GET', `/organizations${query}`)).body.map((o) => o.name);
    expect(await names('')).toHaveLength(10);
    expect(await names('?first=10&max=5')).toEqual(['Org 10', 'Org 11']);
    expect(await names('?search=org 1')).toEqual(['Org 10', 'Org 11']);
    expect(await names('?search=ORG 0&max=3')).toEqual(['Org 00', 'Org 01', 'Org 02']);
    expect(await names('?search=Org 1&exact=true')).toEqual([]);
    expect(await names('?search=Org 11&exact=true')).toEqual(['Org 11']);
  });

  it('answers 409 to a second create with the same name or alias, and 400 to a blank name or a bad alias', async () => {
    await createOrganization('Acme', 'acme');
    const sameName = await admin('POST', '/organizations', { body: { name: 'Acme', alias: 'acme-2' } });
    expect([sameName.status, sameName.body]).toEqual([409, { errorMessage: 'A organization with the same name already exists.' }]);
    const sameAlias = await admin('POST', '/organizations', { body: { name: 'Acme Two', alias: 'acme' } });
    expect([sameAlias.status, sameAlias.body]).toEqual([409, { errorMessage: 'A organization with the same alias already exists' }]);
    expect((await admin('POST', '/organizations', { body: { name: '  ', alias: 'blank' } })).status).toBe(400);
    const slash = await admin('POST', '/organizations', { body: { name: 'Slash', alias: 'a/b' } });
    expect([slash.status, slash.body]).toEqual([400, { error: "Character '/' not allowed." }]);
    const space = await admin('POST', '/organizations', { body: { name: 'Space', alias: 'a b' } });
    expect(space.body).toEqual({ error: "Character ' ' not allowed." });
    expect((await admin('POST', '/organizations', { raw: '{"name":"x"}', headers: { 'content-type': 'text/plain' } })).status).toBe(415);
    expect(stub.state.organizations).toHaveLength(1);
  });

  it('updates with 204 (alias immutable, names unique), deletes with 204, and 404s unknown ids', async () => {
    const id = await createOrganization('Acme', 'acme');
    await createOrganization('Other', 'other');
    expect((await admin('PUT', `/organizations/${id}`, { body: { name: 'Acme AG', alias: 'acme', enabled: false } })).status).toBe(204);
    expect(stub.state.organizations[0]).toMatchObject({ name: 'Acme AG', alias: 'acme', enabled: false });
    expect((await admin('PUT', `/organizations/${id}`, { body: { name: 'Acme AG', alias: 'renamed' } })).status).toBe(400);
    expect((await admin('PUT', `/organizations/${id}`, { body: { name: 'Other', alias: 'acme' } })).status).toBe(409);

    expect((await admin('DELETE', `/organizations/${id}`)).status).toBe(204);
    for (const method of ['GET', 'DELETE']) {
      const gone = await admin(method, `/organizations/${id}`);
      expect([gone.status, gone.body]).toEqual([404, { errorMessage: 'Organization not found.' }]);
    }
  });

  it('answers 404 to every organizations call when the feature is off, switchable at runtime', async () => {
    const off = await startKeycloakStub({ organizationsEnabled: false });
    try {
      const answer = await call(off.url, 'GET', `${ADMIN}/organizations?q=alias:acme`, {}, off.issueToken());
      expect([answer.status, answer.body]).toEqual([404, { errorMessage: 'Organizations not enabled for this realm.' }]);
    } finally {
      await off.close();
    }
    stub.organizationsEnabled = false;
    expect((await admin('POST', '/organizations', { body: { name: 'Acme', alias: 'acme' } })).status).toBe(404);
    stub.organizationsEnabled = true;
    expect((await admin('POST', '/organizations', { body: { name: 'Acme', alias: 'acme' } })).status).toBe(201);
  });
});

describe('members and invitations', () => {
  it('adds a member by raw or JSON-quoted id (201), refusing unknown users (400) and repeats (409)', async () => {
    const org = await createOrganization('Acme', 'acme');
    const alice = await createUser({ username: 'alice', email: 'alice@acme.example' });
    const bob = await createUser({ username: 'bob', email: 'bob@acme.example' });
    const json = { 'content-type': 'application/json' };

    const raw = await admin('POST', `/organizations/${org}/members`, { raw: alice, headers: json });
    expect(raw.status).toBe(201);
    expect((await admin('POST', `/organizations/${org}/members`, { body: bob })).status).toBe(201);
    const again = await admin('POST', `/organizations/${org}/members`, { body: alice });
    expect([again.status, again.body]).toEqual([409, { errorMessage: 'User is already a member of the organization.' }]);
    const nobody = await admin('POST', `/organizations/${org}/members`, { raw: 'no-such-user', headers: json });
    expect([nobody.status, nobody.body]).toEqual([400, { errorMessage: 'User does not exist' }]);

    const members = await admin<{ id: string; username: string }[]>('GET', `/organizations/${org}/members`);
    expect(members.body.map((m) => [m.id, m.username])).toEqual([[alice, 'alice'], [bob, 'bob']]);
    expect(stub.state.organizations[0]!.members).toEqual([alice, bob]);
  });

  it('invites by email (url-encoded or multipart) and existing users by id with 204, recording the mail', async () => {
    const org = await createOrganization('Acme', 'acme');
    const invite = `/organizations/${org}/members/invite-user`;
    const sent = await admin('POST', invite, form({ email: 'New@Acme.example', firstName: 'Nia', lastName: 'New' }));
    expect([sent.status, sent.text]).toEqual([204, '']);

    const multipart = new FormData();
    multipart.set('email', 'other@acme.example');
    const viaMultipart = await fetch(`${stub.url}${ADMIN}${invite}`, {
      method: 'POST',
      body: multipart,
      headers: { authorization: `Bearer ${token}` },
    });
    expect(viaMultipart.status).toBe(204);

    const carol = await createUser({ username: 'carol', email: 'carol@acme.example', firstName: 'Carol' });
    expect((await admin('POST', `/organizations/${org}/members/invite-existing-user`, form({ id: carol }))).status).toBe(204);
    expect(stub.state.emails).toEqual([
      expect.objectContaining({ kind: 'organization-invite', to: 'new@acme.example', userId: null, organizationId: org, firstName: 'Nia' }),
      expect.objectContaining({ kind: 'organization-invite', to: 'other@acme.example', userId: null }),
      expect.objectContaining({ kind: 'organization-invite', to: 'carol@acme.example', userId: carol, firstName: 'Carol' }),
    ]);
  });

  it('refuses invitations to members (409), bad input (400), and answers 500 when the mail fails', async () => {
    const org = await createOrganization('Acme', 'acme');
    const dave = await createUser({ username: 'dave', email: 'dave@acme.example' });
    await admin('POST', `/organizations/${org}/members`, { body: dave });
    const invite = `/organizations/${org}/members/invite-user`;
    expect((await admin('POST', invite, form({ email: 'dave@acme.example' }))).status).toBe(409);
    expect((await admin('POST', invite, form({ email: 'not-an-address' }))).status).toBe(400);
    expect((await admin('POST', invite, { body: { email: 'json@acme.example' } })).status).toBe(415);
    const unknown = await admin('POST', `/organizations/${org}/members/invite-existing-user`, form({ id: 'nobody' }));
    expect([unknown.status, unknown.body]).toEqual([400, { errorMessage: 'User does not exist' }]);

    stub.fail({ path: /invite-user$/ }, 'mail-failure', 1);
    const failed = await admin('POST', invite, form({ email: 'eve@acme.example' }));
    expect([failed.status, failed.body]).toEqual([500, { errorMessage: 'Failed to send invite email' }]);
    expect((await admin('POST', invite, form({ email: 'eve@acme.example' }))).status).toBe(204);
    expect(stub.state.emails.map((e) => e.to)).toEqual(['eve@acme.example']);
  });
});

describe('users', () => {
  it('creates with 201 and a Location, finds by exact email, and answers 409 to duplicates', async () => {
    const id = await createUser({
      username: 'Admin@Acme.example',
      email: 'Admin@Acme.example',
      firstName: 'Ada',
      lastName: 'Admin',
      emailVerified: false,
      requiredActions: ['VERIFY_EMAIL', 'UPDATE_PASSWORD'],
      attributes: { tenant_id: ['t-1'] },
    });
    const got = await admin<StubUser>('GET', `/users/${id}`);
    expect(got.body).toMatchObject({ id, username: 'admin@acme.example', email: 'admin@acme.example', enabled: true });
    expect(got.body.requiredActions).toEqual(['VERIFY_EMAIL', 'UPDATE_PASSWORD']);
    // Undeclared attributes are dropped, as Keycloak's user profile does by default.
    expect(got.body).not.toHaveProperty('attributes');

    const found = await admin<{ id: string }[]>('GET', '/users?email=admin%40acme.example&exact=true');
    expect(found.body.map((u) => u.id)).toEqual([id]);
    expect((await admin<unknown[]>('GET', '/users?email=admin%40acme&exact=true')).body).toEqual([]);
    expect((await admin<unknown[]>('GET', '/users?email=admin%40acme')).body).toHaveLength(1);

    const sameUsername = await admin('POST', '/users', { body: { username: 'admin@acme.example', email: 'x@acme.example' } });
    expect([sameUsername.status, sameUsername.body]).toEqual([409, { errorMessage: 'User exists with same username' }]);
    const sameEmail = await admin('POST', '/users', { body: { username: 'other', email: 'ADMIN@acme.example' } });
    expect([sameEmail.status, sameEmail.body]).toEqual([409, { errorMessage: 'User exists with same email' }]);
    expect((await admin('GET', '/users/no-such-user')).status).toBe(404);
  });

  it('sends the execute-actions email with 204, and refuses as Keycloak does', async () => {
    const id = await createUser({ username: 'ada', email: 'ada@acme.example' });
    const path = `/users/${id}/execute-actions-email?lifespan=86400&client_id=${stub.clientId}&redirect_uri=https%3A%2F%2Fapp.example%2F`;
    const sent = await admin('PUT', path, { body: ['VERIFY_EMAIL', 'UPDATE_PASSWORD'] });
    expect([sent.status, sent.text]).toEqual([204, '']);
    expect(stub.state.emails).toEqual([
      expect.objectContaining({
        kind: 'execute-actions',
        to: 'ada@acme.example',
        userId: id,
        actions: ['VERIFY_EMAIL', 'UPDATE_PASSWORD'],
        lifespan: 86400,
        clientId: stub.clientId,
        redirectUri: 'https://app.example/',
      }),
    ]);

    const noClient = await admin('PUT', `/users/${id}/execute-actions-email?redirect_uri=https%3A%2F%2Fapp.example%2F`, { body: [] });
    expect([noClient.status, noClient.body]).toEqual([400, { errorMessage: 'Client id missing' }]);
    const noEmail = await createUser({ username: 'no-mail' });
    expect((await admin('PUT', `/users/${noEmail}/execute-actions-email`, { body: [] })).body).toEqual({ errorMessage: 'User email missing' });
    const disabled = await createUser({ username: 'off', email: 'off@acme.example', enabled: false });
    expect((await admin('PUT', `/users/${disabled}/execute-actions-email`, { body: [] })).body).toEqual({ errorMessage: 'User is disabled' });

    stub.fail({ method: 'PUT', path: /execute-actions-email$/ }, 'mail-failure');
    const failed = await admin('PUT', `/users/${id}/execute-actions-email`, { body: ['VERIFY_EMAIL'] });
    expect(failed.status).toBe(500);
    expect(failed.body.errorMessage).toMatch(/^Failed to send execute actions email/);
    expect(stub.state.emails).toHaveLength(1);
  });
});

describe('roles', () => {
  it('gets a realm role by name and maps it to a user with 204', async () => {
    const role = await admin<{ id: string; name: string }>('GET', '/roles/IT_ADMIN');
    expect(role.body).toMatchObject({ id: expect.any(String) as unknown, name: 'IT_ADMIN' });
    const missing = await admin('GET', '/roles/NO_SUCH_ROLE');
    expect([missing.status, missing.body]).toEqual([404, { error: 'Could not find role' }]);

    const user = await createUser({ username: 'ada', email: 'ada@acme.example' });
    const mappings = `/users/${user}/role-mappings/realm`;
    const mapping = [{ id: role.body.id, name: 'IT_ADMIN' }];
    expect((await admin('POST', mappings, { body: mapping })).status).toBe(204);
    expect((await admin('POST', mappings, { body: mapping })).status).toBe(204);
    expect((await admin('POST', mappings, { body: [{ id: 'wrong', name: 'IT_ADMIN' }] })).status).toBe(404);
    const listed = await admin<{ name: string }[]>('GET', mappings);
    expect(listed.body.map((r) => r.name)).toContain('IT_ADMIN');
    expect(stub.state.roleMappings[user]).toEqual([`default-roles-${REALM}`, 'IT_ADMIN']);
  });

  it('has only the configured realm roles besides the built-in ones', async () => {
    const custom = await startKeycloakStub({ realm: 'other', realmRoles: ['BILLING'] });
    try {
      const bearer = custom.issueToken();
      expect((await call(custom.url, 'GET', '/admin/realms/other/roles/BILLING', {}, bearer)).status).toBe(200);
      expect((await call(custom.url, 'GET', '/admin/realms/other/roles/IT_ADMIN', {}, bearer)).status).toBe(404);
    } finally {
      await custom.close();
    }
  });
});

describe('observability', () => {
  it('records every request in order with its query and body, and the authorization as a scheme only', async () => {
    await requestToken({ grant_type: 'client_credentials', client_id: stub.clientId, client_secret: stub.clientSecret });
    await admin('GET', '/organizations?q=alias:acme&max=1');
    await admin('POST', '/organizations', { body: { name: 'Acme', alias: 'acme' } });
    expect(stub.requests.map((r) => [r.method, r.path, r.status])).toEqual([
      ['POST', `/realms/${REALM}/protocol/openid-connect/token`, 200],
      ['GET', `${ADMIN}/organizations`, 200],
      ['POST', `${ADMIN}/organizations`, 201],
    ]);
    expect(stub.requests[0]!.authorization).toBeNull();
    expect(stub.requests[1]!.query).toEqual({ q: 'alias:acme', max: '1' });
    expect(stub.requests[2]!.body).toBe('{"name":"Acme","alias":"acme"}');
    expect(stub.requests[2]!.authorization).toBe('bearer');
    expect(stub.requests[2]!.headers).not.toHaveProperty('authorization');
    expect(JSON.stringify(stub.requests)).not.toContain(token);
  });
});

describe('faults', () => {
  it('answers 500, 401 and 403 for as many times as asked, for matching method and path only', async () => {
    stub.fail({ method: 'get', path: /\/roles\// }, '500', 1);
    stub.fail({ path: /\/users$/ }, '401', 2);
    stub.fail({ path: /serverinfo/ }, '403', 1);
    expect((await admin('POST', '/roles/IT_ADMIN')).status).toBe(405);
    const failed = await admin('GET', '/roles/IT_ADMIN');
    expect(failed.status).toBe(500);
    expect(failed.headers.get('content-type')).toContain('application/json');
    expect((await admin('GET', '/roles/IT_ADMIN')).status).toBe(200);
    expect((await admin('GET', '/users')).body).toEqual({ error: 'HTTP 401 Unauthorized' });
    expect((await admin('GET', '/users')).status).toBe(401);
    expect((await admin('GET', '/users')).status).toBe(200);
    expect((await call(stub.url, 'GET', '/admin/serverinfo', {}, token)).status).toBe(403);
    expect(stub.requests.map((r) => r.fault)).toEqual([null, '500', null, '401', '401', null, '403']);
  });

  it('keeps a fault without a count until clearFaults(), and can fail the token endpoint too', async () => {
    stub.fail({ path: /openid-connect\/token$/ }, '500');
    const fields = { grant_type: 'client_credentials', client_id: stub.clientId, client_secret: stub.clientSecret };
    expect((await requestToken(fields)).status).toBe(500);
    expect((await requestToken(fields)).status).toBe(500);
    stub.clearFaults();
    expect((await requestToken(fields)).status).toBe(200);
  });

  it('answers 200 with a body that is not JSON for malformed-json', async () => {
    stub.fail({}, 'malformed-json', 1);
    const response = await fetch(`${stub.url}${ADMIN}/organizations?q=alias:acme`, { headers: { authorization: `Bearer ${token}` } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('application/json');
    await expect(response.json()).rejects.toThrow(SyntaxError);
  });

  it('resets the connection for reset', async () => {
    stub.fail({ path: /organizations/ }, 'reset', 1);
    const attempt = fetch(`${stub.url}${ADMIN}/organizations`, { headers: { authorization: `Bearer ${token}` } });
    await expect(attempt).rejects.toThrow(TypeError);
    expect(stub.requests[0]).toMatchObject({ fault: 'reset', status: null });
    expect((await admin('GET', '/organizations')).status).toBe(200);
  });

  it('never answers a hung request, so a client timeout fires', async () => {
    stub.fail({ method: 'POST' }, 'hang');
    const started = Date.now();
    const attempt = fetch(`${stub.url}${ADMIN}/users`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'ada' }),
      signal: AbortSignal.timeout(200),
    });
    await expect(attempt).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(stub.state.users).toEqual([]);
    expect((await admin('GET', '/users')).status).toBe(200);
  });

  it('ends hung requests on close()', async () => {
    stub.fail({}, 'hang');
    const hung = fetch(`${stub.url}/admin/serverinfo`, { headers: { authorization: `Bearer ${token}` } });
    // A wait for the request to arrive, not a measurement: vi.waitFor gives up after 1 s unless told otherwise.
    await vi.waitFor(() => expect(stub.requests).toHaveLength(1), { timeout: 20_000 });
    const started = Date.now();
    await stub.close();
    await expect(hung).rejects.toThrow(TypeError);
    expect(Date.now() - started).toBeLessThan(2_000);
    stub = await startKeycloakStub();
  });
});
