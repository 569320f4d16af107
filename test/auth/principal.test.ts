// principalFromClaims: what a verified token's claims grant. No server, no keys: claims in,
// principal out.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  MAX_ORGANIZATIONS,
  NAME_MAX_LENGTH,
  principalFromClaims,
  SUBJECT_MAX_LENGTH,
  UnusableClaimsError,
  type PrincipalSettings,
} from '../../src/auth/principal.js';

const SETTINGS: PrincipalSettings = {
  roles: { platformAdmin: 'platform_admin', itAdmin: 'IT_ADMIN', service: 'registry_service' },
  rolesClient: 'tenant-registry',
};

const TENANT = '7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11';

const principal = (claims: Record<string, unknown>, settings: PrincipalSettings = SETTINGS) =>
  principalFromClaims({ sub: 'u-1', ...claims }, settings);

const grants = (claims: Record<string, unknown>, settings?: PrincipalSettings) => {
  const { isPlatformAdmin, isItAdmin, isService } = principal(claims, settings);
  return { isPlatformAdmin, isItAdmin, isService };
};

const NONE = { isPlatformAdmin: false, isItAdmin: false, isService: false };

describe('roles', () => {
  it.each([
    ['platform_admin', { ...NONE, isPlatformAdmin: true }],
    ['IT_ADMIN', { ...NONE, isItAdmin: true }],
    ['registry_service', { ...NONE, isService: true }],
  ])('a realm role %s grants it', (role, expected) => {
    expect(grants({ realm_access: { roles: ['offline_access', role] } })).toEqual(expected);
  });

  it.each([
    ['platform_admin', { ...NONE, isPlatformAdmin: true }],
    ['IT_ADMIN', { ...NONE, isItAdmin: true }],
    ['registry_service', { ...NONE, isService: true }],
  ])('a role %s of the configured client grants it', (role, expected) => {
    expect(grants({ resource_access: { 'tenant-registry': { roles: [role] } } })).toEqual(expected);
  });

  it('ignores the same roles given to another client', () => {
    const claims = {
      resource_access: {
        portal: { roles: ['platform_admin', 'IT_ADMIN', 'registry_service'] },
        account: { roles: ['platform_admin', 'manage-account'] },
      },
    };
    expect(grants(claims)).toEqual(NONE);
  });

  it('counts the client configured in the settings, not a fixed name', () => {
    const claims = {
      resource_access: {
        'tenant-registry': { roles: ['platform_admin'] },
        'registry-staging': { roles: ['IT_ADMIN'] },
      },
    };
    expect(grants(claims, { ...SETTINGS, rolesClient: 'registry-staging' })).toEqual({ ...NONE, isItAdmin: true });
  });

  it('uses the configured role names', () => {
    const settings = { ...SETTINGS, roles: { platformAdmin: 'ops', itAdmin: 'tenant-admin', service: 'svc' } };
    expect(grants({ realm_access: { roles: ['platform_admin', 'IT_ADMIN', 'registry_service'] } }, settings)).toEqual(NONE);
    expect(grants({ realm_access: { roles: ['ops', 'tenant-admin', 'svc'] } }, settings)).toEqual({
      isPlatformAdmin: true,
      isItAdmin: true,
      isService: true,
    });
  });

  it('merges realm and client roles', () => {
    const claims = {
      realm_access: { roles: ['IT_ADMIN'] },
      resource_access: { 'tenant-registry': { roles: ['registry_service'] } },
    };
    expect(grants(claims)).toEqual({ ...NONE, isItAdmin: true, isService: true });
  });

  it('matches role names exactly (case and whole name)', () => {
    expect(grants({ realm_access: { roles: ['PLATFORM_ADMIN', 'it_admin', 'registry_service_x', ' platform_admin'] } })).toEqual(NONE);
  });

  it.each<[string, Record<string, unknown>]>([
    ['no role claims at all', {}],
    ['realm_access null', { realm_access: null }],
    ['realm_access.roles a string', { realm_access: { roles: 'platform_admin' } }],
    ['roles that are not strings', { realm_access: { roles: [1, null, { name: 'platform_admin' }, ['platform_admin']] } }],
    ['resource_access a string', { resource_access: 'tenant-registry' }],
    ['the client entry null', { resource_access: { 'tenant-registry': null } }],
    ['the client roles an object', { resource_access: { 'tenant-registry': { roles: { platform_admin: true } } } }],
    ['a top-level roles claim', { roles: ['platform_admin'], platform_admin: true }],
  ])('grants nothing for %s', (_case, claims) => {
    expect(grants(claims)).toEqual(NONE);
  });

  it('keeps the string roles of a list that also holds other values', () => {
    expect(grants({ realm_access: { roles: [42, 'IT_ADMIN', null] } })).toEqual({ ...NONE, isItAdmin: true });
  });
});

describe('tenant', () => {
  it('takes a UUID tenant_id as is', () => {
    expect(principal({ tenant_id: TENANT }).tenantId).toBe(TENANT);
  });

  it('normalizes an upper-case UUID to lower case', () => {
    expect(principal({ tenant_id: TENANT.toUpperCase() }).tenantId).toBe(TENANT);
  });

  it.each<[string, unknown]>([
    ['missing', undefined],
    ['empty', ''],
    ['a slug', 'acme'],
    ['a UUID with a urn prefix', `urn:uuid:${TENANT}`],
    ['a UUID in braces', `{${TENANT}}`],
    ['a UUID without dashes', TENANT.replaceAll('-', '')],
    ['a UUID with a trailing newline', `${TENANT}\n`],
    ['a UUID with surrounding spaces', ` ${TENANT} `],
    ['a UUID with a non-hex digit', TENANT.replace('7d7e', '7g7e')],
    ['two UUIDs', `${TENANT},${TENANT}`],
    ['a number', 42],
    ['an array holding a UUID', [TENANT]],
    ['an object', { id: TENANT }],
    ['null', null],
  ])('is null for a tenant_id that is %s', (_case, value) => {
    expect(principal({ tenant_id: value, realm_access: { roles: ['IT_ADMIN'] } }).tenantId).toBeNull();
  });
});

describe('organizations', () => {
  const ORG_A = '0f4c2c7e-5b1d-4a57-9d55-2a3b8c4d5e6f';
  const ORG_B = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';

  it("reads the ids of Keycloak's organization claim (mapper with organization id and attributes)", () => {
    const claim = { acme: { id: ORG_A, tenant_id: [TENANT] }, globex: { id: ORG_B.toUpperCase() } };
    expect(principal({ organization: claim }).organizations).toEqual([ORG_A, ORG_B]);
  });

  it('reads the objects of the array Keycloak emits when several mappers write the claim', () => {
    expect(principal({ organization: ['acme', { acme: { id: ORG_A } }] }).organizations).toEqual([ORG_A]);
  });

  it.each<[string, unknown]>([
    ['missing', undefined],
    ['aliases only (the mapper without ids)', ['acme', 'globex']],
    ['an alias string', 'acme'],
    ['an entry without an id', { acme: {} }],
    ['a numeric id', { acme: { id: 42 } }],
    ['an empty id', { acme: { id: '' } }],
    ['an id with a control character', { acme: { id: `${ORG_A}\n` } }],
    ['an id over 255 characters', { acme: { id: 'x'.repeat(256) } }],
    ['null', null],
    ['null entries', { acme: null }],
  ])('names no organization for a claim that is %s', (_case, claim) => {
    expect(principal({ organization: claim }).organizations).toEqual([]);
  });

  it(`keeps at most ${MAX_ORGANIZATIONS} organizations of a huge claim`, () => {
    const claim = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`org${i}`, { id: `id-${i}` }]));
    const { organizations } = principal({ organization: claim });
    expect(organizations).toHaveLength(MAX_ORGANIZATIONS);
    expect(organizations[0]).toBe('id-0');
  });

  it('never throws and yields only bounded strings, whatever the claim holds', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (claim) => {
        const { organizations } = principal({ organization: claim });
        expect(organizations.length).toBeLessThanOrEqual(MAX_ORGANIZATIONS);
        for (const id of organizations) expect(typeof id === 'string' && id.length > 0 && id.length <= 255).toBe(true);
      }),
    );
  });
});

describe('kind', () => {
  it('is user for an ordinary user token', () => {
    expect(principal({ preferred_username: 'mia.member', azp: 'portal', tenant_id: TENANT }).kind).toBe('user');
  });

  it('is user for a platform admin or IT admin', () => {
    expect(principal({ realm_access: { roles: ['platform_admin', 'IT_ADMIN'] } }).kind).toBe('user');
  });

  it('is service for a holder of the registry_service role, realm or client', () => {
    expect(principal({ preferred_username: 'robot', realm_access: { roles: ['registry_service'] } }).kind).toBe('service');
    expect(principal({ resource_access: { 'tenant-registry': { roles: ['registry_service'] } } }).kind).toBe('service');
  });

  it('is service for a token with a client_id (or older clientId) claim', () => {
    expect(principal({ client_id: 'billing' })).toMatchObject({ kind: 'service', isService: false });
    expect(principal({ clientId: 'billing' })).toMatchObject({ kind: 'service', isService: false });
  });

  it('is service for a Keycloak service-account username', () => {
    expect(principal({ preferred_username: 'service-account-billing' })).toMatchObject({ kind: 'service', isService: false });
  });

  it('is user when client_id is empty or not a string, and for a username merely containing service-account', () => {
    expect(principal({ client_id: '' }).kind).toBe('user');
    expect(principal({ client_id: 7 }).kind).toBe('user');
    expect(principal({ preferred_username: 'my-service-account-x' }).kind).toBe('user');
  });

  it('does not grant the service role to a service account that lacks it', () => {
    expect(grants({ client_id: 'billing', preferred_username: 'service-account-billing' })).toEqual(NONE);
  });
});

describe('sub and name', () => {
  it('takes sub as the id', () => {
    expect(principal({ sub: '4a1c-user' }).sub).toBe('4a1c-user');
  });

  it(`takes a sub of exactly ${SUBJECT_MAX_LENGTH} characters, and any printable text`, () => {
    expect(principal({ sub: 'x'.repeat(SUBJECT_MAX_LENGTH) }).sub).toHaveLength(SUBJECT_MAX_LENGTH);
    expect(principal({ sub: 'auth0|5f7c8ec7c33c6c004bbafe82' }).sub).toBe('auth0|5f7c8ec7c33c6c004bbafe82');
    expect(principal({ sub: 'Zoë 🦊' }).sub).toBe('Zoë 🦊');
  });

  // Each of these would otherwise have been the same caller, "unknown": one rate-limit bucket and
  // one idempotency namespace for everyone whose token lacks a usable subject.
  it.each<[string, Record<string, unknown>, RegExp]>([
    ['no sub', {}, /must be a string/],
    ['a number', { sub: 12 }, /must be a string/],
    ['null', { sub: null }, /must be a string/],
    ['a list', { sub: ['u-1'] }, /must be a string/],
    ['an object', { sub: { id: 'u-1' } }, /must be a string/],
    ['an empty string', { sub: '' }, /must not be empty/],
    [`${SUBJECT_MAX_LENGTH + 1} characters`, { sub: 'x'.repeat(SUBJECT_MAX_LENGTH + 1) }, /longer than 255/],
    ['a megabyte', { sub: 'x'.repeat(1 << 20) }, /longer than 255/],
    ['a NUL character', { sub: 'u-\u0000-1' }, /control character/],
    ['a newline', { sub: 'u-1\nadmin' }, /control character/],
    ['an unpaired surrogate', { sub: 'u-\ud800' }, /unpaired surrogate/],
  ])('refuses %s as sub with UnusableClaimsError', (_case, claims, reason) => {
    const refuse = () => principalFromClaims({ preferred_username: 'someone', ...claims }, SETTINGS);
    expect(refuse).toThrow(UnusableClaimsError);
    expect(refuse).toThrow(reason);
  });

  const ALL = { sub: 'sub-1', preferred_username: 'uname', name: 'Full Name', client_id: 'cid', azp: 'azp-client' };
  it.each<[string, Record<string, unknown>, string]>([
    ['preferred_username first', ALL, 'uname'],
    ['then name', { ...ALL, preferred_username: undefined }, 'Full Name'],
    ['then client_id', { ...ALL, preferred_username: undefined, name: undefined }, 'cid'],
    ['then clientId', { ...ALL, preferred_username: undefined, name: undefined, client_id: undefined, clientId: 'legacy' }, 'legacy'],
    ['then azp', { ...ALL, preferred_username: undefined, name: undefined, client_id: undefined }, 'azp-client'],
    ['then sub', { sub: 'sub-1' }, 'sub-1'],
    ['skipping empty strings', { ...ALL, preferred_username: '', name: '' }, 'cid'],
    ['skipping values that are not strings', { ...ALL, preferred_username: 5, name: ['x'] }, 'cid'],
  ])('name: %s', (_case, claims, expected) => {
    expect(principalFromClaims(claims, SETTINGS).name).toBe(expected);
  });

  it('is the sub when nothing else names the caller', () => {
    expect(principalFromClaims({ sub: 'sub-only' }, SETTINGS).name).toBe('sub-only');
  });

  it(`is cut to ${NAME_MAX_LENGTH} characters, never inside a character`, () => {
    expect(principal({ preferred_username: 'n'.repeat(10_000) }).name).toBe('n'.repeat(NAME_MAX_LENGTH));
    const emoji = principal({ name: '🦊'.repeat(NAME_MAX_LENGTH + 1) }).name;
    expect(Array.from(emoji)).toHaveLength(NAME_MAX_LENGTH);
    expect(emoji.isWellFormed()).toBe(true);
  });

  it('skips a name with a control character or an unpaired surrogate for the next claim', () => {
    expect(principal({ preferred_username: 'olga\u0000', name: 'Olga' }).name).toBe('Olga');
    expect(principal({ preferred_username: '\udc00', client_id: 'cid' }).name).toBe('cid');
    // The kind still follows the claims as they are.
    expect(principal({ client_id: 'bad\nclient' })).toMatchObject({ kind: 'service', name: 'u-1' });
  });
});

it('builds the whole principal of a Keycloak service-account token', () => {
  expect(
    principalFromClaims(
      {
        sub: '9f1b2c3d-0000-4000-8000-000000000001',
        exp: 1_900_000_000,
        azp: 'portal',
        client_id: 'portal',
        preferred_username: 'service-account-portal',
        realm_access: { roles: ['default-roles-breakpilot', 'offline_access'] },
        resource_access: { 'tenant-registry': { roles: ['registry_service'] }, account: { roles: ['manage-account'] } },
      },
      SETTINGS,
    ),
  ).toEqual({
    sub: '9f1b2c3d-0000-4000-8000-000000000001',
    name: 'service-account-portal',
    kind: 'service',
    client: 'portal',
    tenantId: null,
    organizations: [],
    isPlatformAdmin: false,
    isItAdmin: false,
    isService: true,
    expiresAt: 1_900_000_000_000,
  });
});

it.each([
  ['azp, the client the token was issued to', { azp: 'portal', client_id: 'other' }, 'portal'],
  ['client_id without azp', { client_id: 'billing' }, 'billing'],
  ['clientId (older Keycloak) without azp', { clientId: 'erp' }, 'erp'],
  ['nothing that names a client', {}, null],
])('names the client from %s', (_case, claims, client) => {
  expect(principalFromClaims({ sub: 'caller-1', exp: 1_900_000_000, ...claims }, SETTINGS).client).toBe(client);
});
