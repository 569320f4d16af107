// The HTTP adapter alone against the Keycloak stub: the exact Admin API conversation of a
// provisioning, token reuse and the single refetch on 401, idempotent re-runs after a failure at
// every step, and failures typed by kind and step with messages that never carry the secret.
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KeycloakError, type KeycloakErrorType, type ProvisionRequest, type ProvisionStep } from '../../src/keycloak/adapter.js';
import { HttpAdapter, type HttpAdapterOptions } from '../../src/keycloak/http-adapter.js';
import { randomSlug } from '../support/factories.js';
import { startKeycloakStub, type FaultPattern, type KeycloakStub, type StubFault } from '../support/keycloak-stub.js';

const SECRET = 'kc-Secret-7f3a9!do-not-leak';
const WRONG_SECRET = 'kc-Wrong-51c2e?also-secret';
const LIFESPAN_SECONDS = 259_200;
const REALM_PATH = '/admin/realms/breakpilot-dev';
const TOKEN_PATH = '/realms/breakpilot-dev/protocol/openid-connect/token';

let stub: KeycloakStub;

beforeEach(async () => {
  // The user profile declares tenant_id, as keycloak/realm.json does.
  stub = await startKeycloakStub({ clientSecret: SECRET, userProfileAttributes: ['tenant_id'] });
});
afterEach(() => stub.close());

function adapterFor(options: Partial<HttpAdapterOptions> = {}): HttpAdapter {
  return new HttpAdapter({
    baseUrl: stub.url,
    realm: stub.realm,
    clientId: stub.clientId,
    clientSecret: stub.clientSecret,
    itAdminRole: 'IT_ADMIN',
    inviteLifespanSeconds: LIFESPAN_SECONDS,
    callTimeoutMs: 1_000,
    ...options,
  });
}

function provisionRequest(): ProvisionRequest {
  const slug = randomSlug('acme');
  return {
    tenantId: randomUUID(),
    slug,
    name: `Acme ${slug}`,
    adminEmail: `it.${slug}@acme.example.com`,
    adminName: 'Ada King Lovelace',
    knownOrganizationId: null,
  };
}

const provision = (adapter: HttpAdapter, request: ProvisionRequest, signal = AbortSignal.timeout(10_000)) =>
  adapter.provision(request, signal);

/** "METHOD path" of each request from `from` on, with the realm prefix shortened to "~". */
const callsSince = (from = 0) =>
  stub.requests.slice(from).map((r) => `${r.method} ${r.path.replace(REALM_PATH, '~').replace(TOKEN_PATH, '<token>')}`);

/** The failure of `run`, checked to be a KeycloakError that does not mention any secret. */
async function failureOf(run: Promise<unknown>): Promise<KeycloakError> {
  const caught: unknown = await run.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(caught).toBeInstanceOf(KeycloakError);
  const error = caught as KeycloakError;
  for (const secret of [SECRET, WRONG_SECRET]) {
    expect(error.message).not.toContain(secret);
    expect(String(error.stack)).not.toContain(secret);
    expect(JSON.stringify(error)).not.toContain(secret);
  }
  return error;
}

const kindOf = (error: KeycloakError) => ({ type: error.type, step: error.step });

/** What the stub holds for one provisioning, with every collection it could duplicate. */
function stateOf(request: ProvisionRequest) {
  const organizations = stub.state.organizations.filter((o) => o.alias === request.slug || o.name === request.name);
  const users = stub.state.users.filter((u) => u.email === request.adminEmail.toLowerCase());
  return {
    organizations,
    users,
    mappings: users.map((u) => stub.state.roleMappings[u.id] ?? []),
    emails: stub.state.emails.filter((e) => e.to === request.adminEmail.toLowerCase()),
  };
}

/** Exactly one of everything, linked together, and one invitation mail. */
function expectProvisionedOnce(request: ProvisionRequest, result?: { organizationId: string; userId: string }) {
  const { organizations, users, mappings, emails } = stateOf(request);
  expect(organizations).toHaveLength(1);
  expect(users).toHaveLength(1);
  const [organization, user] = [organizations[0]!, users[0]!];
  expect(organization).toMatchObject({ alias: request.slug, name: request.name, enabled: true, members: [user.id] });
  expect(user).toMatchObject({ username: request.adminEmail.toLowerCase(), email: request.adminEmail.toLowerCase(), enabled: true });
  expect(mappings[0]!.filter((name) => name === 'IT_ADMIN')).toHaveLength(1);
  expect(emails).toHaveLength(1);
  expect(emails[0]).toMatchObject({ kind: 'execute-actions', userId: user.id, actions: ['VERIFY_EMAIL', 'UPDATE_PASSWORD'] });
  if (result) expect(result).toMatchObject({ organizationId: organization.id, userId: user.id });
}

describe('HttpAdapter: a fresh provisioning', () => {
  it('makes exactly the expected Admin API calls, in order, with the documented bodies', async () => {
    const request = provisionRequest();
    const result = await provision(adapterFor(), request);

    const organization = stub.state.organizations.find((o) => o.alias === request.slug)!;
    const user = stub.state.users.find((u) => u.email === request.adminEmail)!;
    expect(result).toEqual({ organizationId: organization.id, userId: user.id, inviteUrl: null });
    expect(callsSince()).toEqual([
      'POST <token>',
      'POST ~/organizations',
      'GET ~/users',
      'POST ~/users',
      `POST ~/organizations/${organization.id}/members`,
      `GET ~/users/${user.id}`,
      'GET ~/roles/IT_ADMIN',
      `POST ~/users/${user.id}/role-mappings/realm`,
      `PUT ~/users/${user.id}/execute-actions-email`,
    ]);
    const [token, createOrg, findUser, createUser, addMember, , getRole, mapRole, mail] = stub.requests;
    expect(token!.authorization).toBeNull();
    expect(Object.fromEntries(new URLSearchParams(token!.body))).toEqual({
      grant_type: 'client_credentials',
      client_id: stub.clientId,
      client_secret: SECRET,
    });
    for (const admin of stub.requests.slice(1)) expect(admin.authorization).toBe('bearer');
    expect(JSON.parse(createOrg!.body)).toEqual({
      name: request.name,
      alias: request.slug,
      enabled: true,
      attributes: { tenant_id: [request.tenantId] },
    });
    expect(organization.attributes).toEqual({ tenant_id: [request.tenantId] });
    expect(findUser!.query).toEqual({ email: request.adminEmail, exact: 'true' });
    expect(JSON.parse(createUser!.body)).toEqual({
      username: request.adminEmail,
      email: request.adminEmail,
      firstName: 'Ada',
      lastName: 'King Lovelace',
      enabled: true,
      emailVerified: false,
      attributes: { tenant_id: [request.tenantId] },
    });
    expect(user.attributes).toEqual({ tenant_id: [request.tenantId] });
    expect(JSON.parse(addMember!.body)).toBe(user.id);
    expect(getRole!.method).toBe('GET');
    const role = stub.state.roles.find((r) => r.name === 'IT_ADMIN')!;
    expect(JSON.parse(mapRole!.body)).toEqual([{ id: role.id, name: 'IT_ADMIN' }]);
    expect(mail!.query).toEqual({ lifespan: String(LIFESPAN_SECONDS) });
    expect(JSON.parse(mail!.body)).toEqual(['VERIFY_EMAIL', 'UPDATE_PASSWORD']);
    expect(stub.requests.map((r) => r.status)).toEqual([200, 201, 200, 201, 201, 200, 200, 204, 204]);

    expectProvisionedOnce(request, result);
    expect(user).toMatchObject({ firstName: 'Ada', lastName: 'King Lovelace', emailVerified: false });
    expect(stub.state.emails).toEqual([
      expect.objectContaining({ to: request.adminEmail, lifespan: LIFESPAN_SECONDS, actions: ['VERIFY_EMAIL', 'UPDATE_PASSWORD'] }),
    ]);
  });

  it('leaves the name fields out for an admin without a name', async () => {
    const request = { ...provisionRequest(), adminName: null };
    await provision(adapterFor(), request);
    const created = stub.requests.find((r) => r.method === 'POST' && r.path.endsWith('/users'))!;
    expect(JSON.parse(created.body)).toEqual({
      username: request.adminEmail,
      email: request.adminEmail,
      enabled: true,
      emailVerified: false,
      attributes: { tenant_id: [request.tenantId] },
    });
  });
});

describe('HttpAdapter: the service-account token', () => {
  it('is fetched once and reused across provisionings', async () => {
    const adapter = adapterFor();
    await provision(adapter, provisionRequest());
    await provision(adapter, provisionRequest());
    expect(stub.tokensIssued).toBe(1);
    expect(callsSince().filter((call) => call === 'POST <token>')).toHaveLength(1);
  });

  it('is fetched again once when an admin call answers 401, and the call is retried', async () => {
    const adapter = adapterFor();
    await provision(adapter, provisionRequest());
    stub.expireTokens();
    const mark = stub.requests.length;
    const request = provisionRequest();
    const result = await provision(adapter, request);

    expect(stub.tokensIssued).toBe(2);
    expect(callsSince(mark).slice(0, 4)).toEqual(['POST ~/organizations', 'POST <token>', 'POST ~/organizations', 'GET ~/users']);
    expect(stub.requests.slice(mark, mark + 3).map((r) => r.status)).toEqual([401, 200, 201]);
    expect(callsSince(mark).filter((call) => call === 'POST <token>')).toHaveLength(1);
    expectProvisionedOnce(request, result);
  });

  it('is refetched only once: a second 401 is a failure, not a loop', async () => {
    stub.fail({ method: 'POST', path: /\/organizations$/ }, '401');
    const error = await failureOf(provision(adapterFor(), provisionRequest()));
    expect(kindOf(error)).toEqual({ type: 'unauthorized', step: 'organization' });
    expect(error.status).toBe(401);
    expect(callsSince()).toEqual(['POST <token>', 'POST ~/organizations', 'POST <token>', 'POST ~/organizations']);
  });
});

describe('HttpAdapter: provisioning again after a failure completes without duplicates', () => {
  const steps: Array<[ProvisionStep, FaultPattern, StubFault]> = [
    ['token', { path: /openid-connect\/token$/ }, '500'],
    ['organization', { method: 'POST', path: /\/organizations$/ }, '500'],
    ['user', { method: 'POST', path: /\/users$/ }, 'reset'],
    ['membership', { method: 'POST', path: /\/members$/ }, '500'],
    ['role', { method: 'POST', path: /\/role-mappings\/realm$/ }, '500'],
    ['invite', { method: 'PUT', path: /\/execute-actions-email$/ }, 'mail-failure'],
  ];

  it.each(steps)('after a failure at %s', async (step, pattern, fault) => {
    const adapter = adapterFor();
    const request = provisionRequest();
    stub.fail(pattern, fault, 1);
    const error = await failureOf(provision(adapter, request));
    expect(kindOf(error)).toEqual({ type: 'unavailable', step });
    const mark = stub.requests.length;

    const result = await provision(adapter, request);
    expectProvisionedOnce(request, result);
    const rerun = stub.requests.slice(mark);
    const created = (suffix: string) =>
      stub.requests.filter((r) => r.method === 'POST' && r.path.endsWith(suffix) && r.status === 201);
    expect(created('/organizations')).toHaveLength(1);
    expect(created('/users')).toHaveLength(1);
    expect(created('/members')).toHaveLength(1);
    const reached = steps.findIndex(([s]) => s === step);
    if (reached > steps.findIndex(([s]) => s === 'organization')) {
      // The organization exists: its alias answers 409 and the organization is looked up by
      // alias, in full, to see that it carries this tenant's id.
      const lookup = rerun.find((r) => r.method === 'GET' && r.path === `${REALM_PATH}/organizations`);
      expect(lookup?.query).toEqual({ q: `alias:${request.slug}`, exact: 'true', briefRepresentation: 'false' });
      expect(rerun.find((r) => r.method === 'POST' && r.path.endsWith('/organizations'))?.status).toBe(409);
    }
    if (reached > steps.findIndex(([s]) => s === 'user')) {
      expect(rerun.some((r) => r.method === 'POST' && r.path.endsWith('/users'))).toBe(false);
    }
    if (reached > steps.findIndex(([s]) => s === 'membership')) {
      expect(rerun.find((r) => r.path.endsWith('/members'))?.status).toBe(409);
    }
  });

  it('finds an admin who already exists in Keycloak, with a verified address, instead of creating one', async () => {
    const request = provisionRequest();
    const existing = stub.addUser({ username: request.adminEmail, email: request.adminEmail, enabled: true, emailVerified: true });
    const result = await provision(adapterFor(), request);
    expect(result.userId).toBe(existing.id);
    expect(stub.requests.some((r) => r.method === 'POST' && r.path.endsWith('/users'))).toBe(false);
    expectProvisionedOnce(request, result);
  });

  it('refuses an existing user whose address is not verified: conflict at user, and it joins nothing', async () => {
    const request = provisionRequest();
    stub.addUser({ username: request.adminEmail, email: request.adminEmail, enabled: true, emailVerified: false });
    const failure = await provision(adapterFor(), request).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(KeycloakError);
    expect(failure).toMatchObject({ type: 'conflict', step: 'user' });
    const organization = stub.state.organizations.find((o) => o.alias === request.slug)!;
    expect(organization.members).toEqual([]);
  });

  it("reuses an organization that has the alias and carries this tenant's id", async () => {
    const request = provisionRequest();
    const existing = stub.addOrganization({ name: request.name, alias: request.slug, attributes: { tenant_id: [request.tenantId] } });
    const result = await provision(adapterFor(), request);
    expect(result.organizationId).toBe(existing.id);
    expectProvisionedOnce(request, result);
  });

  it('reuses it under another name, and with other attributes beside the tenant id', async () => {
    const request = provisionRequest();
    const existing = stub.addOrganization({
      name: `Renamed ${request.slug}`,
      alias: request.slug,
      attributes: { tenant_id: [request.tenantId.toUpperCase()], plan: ['pro'] },
    });
    const result = await provision(adapterFor(), request);
    expect(result.organizationId).toBe(existing.id);
    expect(existing.members).toHaveLength(1);
  });
});

describe('HttpAdapter: failures are typed by kind and step', () => {
  const cases: Array<[string, FaultPattern, StubFault, KeycloakErrorType, ProvisionStep, number | null]> = [
    ['403 on creating the organization', { method: 'POST', path: /\/organizations$/ }, '403', 'unauthorized', 'organization', 403],
    ['403 on reading the role', { path: /\/roles\// }, '403', 'unauthorized', 'role', 403],
    ['500 on the token endpoint', { path: /openid-connect\/token$/ }, '500', 'unavailable', 'token', 500],
    ['500 on finding the user', { method: 'GET', path: /\/users$/ }, '500', 'unavailable', 'user', 500],
    ['a reset on adding the member', { path: /\/members$/ }, 'reset', 'unavailable', 'membership', null],
    ['a reset on the token endpoint', { path: /openid-connect\/token$/ }, 'reset', 'unavailable', 'token', null],
    ['malformed JSON from the token endpoint', { path: /openid-connect\/token$/ }, 'malformed-json', 'unavailable', 'token', null],
    ['malformed JSON from the user search', { method: 'GET', path: /\/users$/ }, 'malformed-json', 'unavailable', 'user', null],
    ['malformed JSON for the role', { path: /\/roles\// }, 'malformed-json', 'unavailable', 'role', null],
    ['a mail failure', { path: /execute-actions-email$/ }, 'mail-failure', 'unavailable', 'invite', 500],
  ];

  it.each(cases)('%s', async (_case, pattern, fault, type, step, status) => {
    stub.fail(pattern, fault);
    const error = await failureOf(provision(adapterFor(), provisionRequest()));
    expect(kindOf(error)).toEqual({ type, step });
    expect(error.status).toBe(status);
  });

  it('a wrong client secret: unauthorized at token, and the secret is in no message', async () => {
    const error = await failureOf(provision(adapterFor({ clientSecret: WRONG_SECRET }), provisionRequest()));
    expect(kindOf(error)).toEqual({ type: 'unauthorized', step: 'token' });
    expect(error.status).toBe(401);
    expect(error.message).toBe('Invalid client or Invalid client credentials');
    expect(callsSince()).toEqual(['POST <token>']);
  });

  it('a hang: unavailable at that step once the per-call timeout has passed', async () => {
    stub.fail({ method: 'GET', path: /\/users$/ }, 'hang');
    const started = performance.now();
    const error = await failureOf(provision(adapterFor({ callTimeoutMs: 300 }), provisionRequest(), AbortSignal.timeout(10_000)));
    const elapsed = performance.now() - started;
    expect(kindOf(error)).toEqual({ type: 'unavailable', step: 'user' });
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(1_500);
  });

  it("a hang: the caller's signal cuts it before the per-call timeout", async () => {
    stub.fail({ method: 'POST', path: /\/organizations$/ }, 'hang');
    const started = performance.now();
    const error = await failureOf(provision(adapterFor({ callTimeoutMs: 20_000 }), provisionRequest(), AbortSignal.timeout(300)));
    expect(kindOf(error)).toEqual({ type: 'unavailable', step: 'organization' });
    expect(performance.now() - started).toBeLessThan(1_500);
  });

  it('a hang on the token endpoint: unavailable at token', async () => {
    stub.fail({ path: /openid-connect\/token$/ }, 'hang');
    const error = await failureOf(provision(adapterFor({ callTimeoutMs: 300 }), provisionRequest()));
    expect(kindOf(error)).toEqual({ type: 'unavailable', step: 'token' });
  });

  it('organizations disabled in the realm (404): bad_request at organization', async () => {
    stub.organizationsEnabled = false;
    const error = await failureOf(provision(adapterFor(), provisionRequest()));
    expect(kindOf(error)).toEqual({ type: 'bad_request', step: 'organization' });
    expect(error.status).toBe(404);
    expect(error.message).toBe('Organizations not enabled for this realm.');
  });

  it('an organization with the same name under another alias: conflict at organization', async () => {
    const request = provisionRequest();
    stub.addOrganization({ name: request.name, alias: `${request.slug}-other` });
    const error = await failureOf(provision(adapterFor(), request));
    expect(kindOf(error)).toEqual({ type: 'conflict', step: 'organization' });
    expect(stub.state.organizations).toHaveLength(1);
    expect(stub.state.users).toHaveLength(0);
  });

  // Only an organization made for this tenant is adopted: an alias is no proof, anyone with
  // manage-realm can make one, and a slug freed by a deleted tenant can be taken again.
  it.each<[string, (tenantId: string) => Record<string, string[]>]>([
    ['no attributes at all', () => ({})],
    ['attributes, but no tenant_id', () => ({ plan: ['pro'] })],
    ["another tenant's id", () => ({ tenant_id: [randomUUID()] })],
    ["this tenant's id beside another's", (tenantId) => ({ tenant_id: [tenantId, randomUUID()] })],
    ['an empty tenant_id', () => ({ tenant_id: [] })],
    ["this tenant's id under another key", (tenantId) => ({ tenant: [tenantId] })],
  ])('an organization with the alias carrying %s: conflict at organization, nothing else done', async (_case, attributesFor) => {
    const request = provisionRequest();
    const foreign = stub.addOrganization({ name: `Someone else ${request.slug}`, alias: request.slug, attributes: attributesFor(request.tenantId) });
    const before = structuredClone(foreign);
    const error = await failureOf(provision(adapterFor(), request));
    expect(kindOf(error)).toEqual({ type: 'conflict', step: 'organization' });
    expect(error.status).toBe(409);
    expect(error.message).toMatch(/tenant_id/);
    expect(stub.state.organizations).toEqual([before]);
    expect(stub.state.users).toEqual([]);
    expect(stub.state.emails).toEqual([]);
    expect(callsSince().slice(1)).toEqual(['POST ~/organizations', 'GET ~/organizations']);
  });

  it('an organization made by hand is adopted once an operator gives it the tenant id', async () => {
    const request = provisionRequest();
    const manual = stub.addOrganization({ name: request.name, alias: request.slug });
    const adapter = adapterFor();
    expect(kindOf(await failureOf(provision(adapter, request)))).toEqual({ type: 'conflict', step: 'organization' });
    manual.attributes = { tenant_id: [request.tenantId] };
    const result = await provision(adapter, request);
    expect(result.organizationId).toBe(manual.id);
    expectProvisionedOnce(request, result);
  });

  it('an organization the registry recorded for this tenant before organizations were tagged is adopted by its id', async () => {
    const request = provisionRequest();
    const earlier = stub.addOrganization({ name: request.name, alias: request.slug });
    // Another organization's id would prove nothing: the alias must lead to the recorded one.
    const elsewhere = await failureOf(provision(adapterFor(), { ...request, knownOrganizationId: randomUUID() }));
    expect(kindOf(elsewhere)).toEqual({ type: 'conflict', step: 'organization' });
    const result = await provision(adapterFor(), { ...request, knownOrganizationId: earlier.id });
    expect(result.organizationId).toBe(earlier.id);
    expectProvisionedOnce(request, result);
  });

  it('a username taken by a user with another email: conflict at user', async () => {
    const request = provisionRequest();
    stub.addUser({ username: request.adminEmail, email: 'someone.else@example.com', enabled: true });
    const error = await failureOf(provision(adapterFor(), request));
    expect(kindOf(error)).toEqual({ type: 'conflict', step: 'user' });
  });

  it('a realm without the IT admin role: bad_request at role', async () => {
    const error = await failureOf(provision(adapterFor({ itAdminRole: 'NO_SUCH_ROLE' }), provisionRequest()));
    expect(kindOf(error)).toEqual({ type: 'bad_request', step: 'role' });
    expect(error.status).toBe(404);
  });
});

describe('HttpAdapter: health', () => {
  it('is up against the stub, with an admin token', async () => {
    expect(await adapterFor().health()).toBe('up');
    expect(callsSince()).toEqual(['POST <token>', 'GET /admin/serverinfo']);
    expect(stub.requests[1]!.authorization).toBe('bearer');
  });

  it('is down against a closed port, with a wrong secret, and when serverinfo hangs', async () => {
    const closed = await startKeycloakStub();
    const closedUrl = closed.url;
    await closed.close();
    expect(await adapterFor({ baseUrl: closedUrl }).health()).toBe('down');
    expect(await adapterFor({ clientSecret: WRONG_SECRET }).health()).toBe('down');
    stub.fail({ path: /serverinfo$/ }, 'hang');
    const started = performance.now();
    expect(await adapterFor({ callTimeoutMs: 300 }).health()).toBe('down');
    expect(performance.now() - started).toBeLessThan(1_500);
  });
});
