// A stand-in for the parts of Keycloak's Admin REST API the registry uses, answering as
// shared/reference/keycloak-admin-api.md says Keycloak 26 does (statuses, bodies, Location headers,
// error bodies): a real HTTP server on loopback with in-memory state, client_credentials tokens
// that expire, every request recorded, and faults that tests switch on at runtime.
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface KeycloakStubOptions {
  realm?: string;
  clientId?: string;
  clientSecret?: string;
  tokenLifetimeSeconds?: number;
  organizationsEnabled?: boolean;
  /** Realm roles besides the built-in ones (offline_access, uma_authorization, default-roles-{realm}). */
  realmRoles?: string[];
  /** Client ids the realm knows besides the built-in ones and clientId (for execute-actions-email). */
  clients?: string[];
  /** User attributes declared in the realm's user profile; Keycloak drops any other attribute. */
  userProfileAttributes?: string[];
}

export type StubFault = 'hang' | '500' | '401' | '403' | 'malformed-json' | 'reset' | 'mail-failure';

/** Matches a request by method (any case) and by its path without the query string. */
export interface FaultPattern {
  method?: string;
  path?: RegExp;
}

export interface StubOrganization {
  id: string;
  name: string;
  alias: string;
  enabled: boolean;
  description: string | null;
  redirectUrl: string | null;
  domains: { name: string; verified: boolean }[];
  attributes: Record<string, string[]>;
  /** User ids, in the order they joined. */
  members: string[];
}

export interface StubUser {
  id: string;
  username: string;
  email: string | null;
  firstName: string | null;
  lastName: string | null;
  enabled: boolean;
  emailVerified: boolean;
  requiredActions: string[];
  attributes: Record<string, string[]>;
  createdTimestamp: number;
}

export interface StubRole {
  id: string;
  name: string;
  description: string;
}

export interface SentEmail {
  kind: 'execute-actions' | 'organization-invite';
  to: string;
  /** Null for an invitation to an address no user has yet. */
  userId: string | null;
  organizationId: string | null;
  actions: string[];
  lifespan: number | null;
  clientId: string | null;
  redirectUri: string | null;
  firstName: string | null;
  lastName: string | null;
}

export interface KeycloakStubState {
  organizations: StubOrganization[];
  users: StubUser[];
  roles: StubRole[];
  /** User id to the names of the realm roles mapped to that user directly. */
  roleMappings: Record<string, string[]>;
  emails: SentEmail[];
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  /** Lower-case names; authorization is left out (see `authorization`). */
  headers: Record<string, string>;
  /** The scheme of the Authorization header, never its credentials. */
  authorization: 'bearer' | 'basic' | 'other' | null;
  body: string;
  /** Null while unanswered, and for ever after a hang or a reset. */
  status: number | null;
  fault: StubFault | null;
}

export interface KeycloakStub {
  /** The server's base URL, as KEYCLOAK_ADMIN_URL would name it. */
  url: string;
  tokenUrl: string;
  realm: string;
  clientId: string;
  clientSecret: string;
  requests: RecordedRequest[];
  state: KeycloakStubState;
  /** Tokens handed out by the token endpoint (not by issueToken()). */
  readonly tokensIssued: number;
  /** Read on every request, so a test can switch the feature off and on. */
  organizationsEnabled: boolean;
  /** A valid admin token without a round trip. */
  issueToken(): string;
  /** Every token issued so far becomes expired; admin calls with them answer 401. */
  expireTokens(): void;
  /** Applies the fault to matching requests, `times` times (default: until clearFaults()). */
  fail(pattern: FaultPattern, fault: StubFault, times?: number): void;
  clearFaults(): void;
  /** Seeds a user as if created through the API (no validation, no request recorded). */
  addUser(user: Partial<Omit<StubUser, 'id'>> & { username: string }): StubUser;
  /** Seeds an organization as if created through the API (no validation, no request recorded). */
  addOrganization(organization: Partial<Omit<StubOrganization, 'id'>> & { name: string }): StubOrganization;
  /** Stops the server and ends every connection, hung requests included. */
  close(): Promise<void>;
}

interface ActiveFault {
  pattern: FaultPattern;
  fault: StubFault;
  remaining: number;
}

interface Exchange {
  request: IncomingMessage;
  response: ServerResponse;
  record: RecordedRequest;
  url: URL;
  body: string;
}

type Handler = () => void | Promise<void>;

// Keycloak answers an unknown path with RESTEasy's generic error, whatever the realm.
const NO_RESOURCE = {
  error: 'Unable to find matching target resource method',
  error_description: 'For more on this error consult the server log.',
};
const UNPARSABLE = { error: 'unknown_error', error_description: 'For more on this error consult the server log.' };
const ALIAS_FORBIDDEN = new Set([' ', ...':/?#@!$&()*+,;=[]\\']);
const EMAIL = /^[^\s@]+@[^\s@]+$/;
const DOMAIN = /^(?!-)[a-z0-9-]+(\.[a-z0-9-]+)+$/i;
const BUILT_IN_CLIENTS = ['account', 'account-console', 'admin-cli', 'broker', 'realm-management', 'security-admin-console'];
const REQUIRED_ACTIONS = new Set([
  'VERIFY_EMAIL',
  'UPDATE_PASSWORD',
  'UPDATE_PROFILE',
  'UPDATE_EMAIL',
  'CONFIGURE_TOTP',
  'TERMS_AND_CONDITIONS',
  'CONFIGURE_RECOVERY_AUTHN_CODES',
  'webauthn-register',
  'webauthn-register-passwordless',
  'delete_account',
  'delete_credential',
  'update_user_locale',
]);
// Keycloak's defaults: organizations and organization members are paged by 10, users by 100.
const ORGANIZATIONS_PAGE = 10;
const USERS_PAGE = 100;

export async function startKeycloakStub(options: KeycloakStubOptions = {}): Promise<KeycloakStub> {
  const realm = options.realm ?? 'breakpilot-dev';
  const lifetimeSeconds = options.tokenLifetimeSeconds ?? 300;
  const declaredAttributes = new Set(options.userProfileAttributes ?? []);
  const tokens = new Map<string, number>();
  let faults: ActiveFault[] = [];
  let tokensIssued = 0;

  const state: KeycloakStubState = {
    organizations: [],
    users: [],
    roles: [...(options.realmRoles ?? ['IT_ADMIN']), 'offline_access', 'uma_authorization', `default-roles-${realm}`].map(
      (name) => ({ id: randomUUID(), name, description: `${name} role` }),
    ),
    roleMappings: {},
    emails: [],
  };

  const newToken = (): string => {
    const token = randomBytes(32).toString('base64url');
    tokens.set(token, Date.now() + lifetimeSeconds * 1000);
    return token;
  };

  const seedUser = (user: Partial<Omit<StubUser, 'id'>> & { username: string }): StubUser => {
    const created: StubUser = {
      id: randomUUID(),
      email: null,
      firstName: null,
      lastName: null,
      enabled: false,
      emailVerified: false,
      requiredActions: [],
      attributes: {},
      createdTimestamp: Date.now(),
      ...user,
      username: user.username.toLowerCase(),
    };
    if (created.email !== null) created.email = created.email.toLowerCase();
    state.users.push(created);
    state.roleMappings[created.id] = [`default-roles-${realm}`];
    return created;
  };

  const seedOrganization = (organization: Partial<Omit<StubOrganization, 'id'>> & { name: string }): StubOrganization => {
    const created: StubOrganization = {
      id: randomUUID(),
      alias: organization.name,
      enabled: true,
      description: null,
      redirectUrl: null,
      domains: [],
      attributes: {},
      members: [],
      ...organization,
    };
    state.organizations.push(created);
    return created;
  };

  const matches = (pattern: FaultPattern, record: RecordedRequest) =>
    (pattern.method === undefined || pattern.method.toUpperCase() === record.method) &&
    (pattern.path === undefined || pattern.path.test(record.path));

  const takeFault = (record: RecordedRequest, mail: boolean): StubFault | null => {
    const found = faults.find((f) => f.remaining > 0 && (f.fault === 'mail-failure') === mail && matches(f.pattern, record));
    if (!found) return null;
    found.remaining -= 1;
    return found.fault;
  };

  // ---- responses ----

  const send = (x: Exchange, status: number, body?: unknown, headers: Record<string, string> = {}) => {
    x.record.status = status;
    if (body === undefined) {
      x.response.writeHead(status, headers).end();
    } else {
      x.response.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
    }
  };
  const errorMessage = (x: Exchange, status: number, message: string) => send(x, status, { errorMessage: message });
  const error = (x: Exchange, status: number, message: string) => send(x, status, { error: message });
  const byMethod = (x: Exchange, handlers: Partial<Record<string, Handler>>) => {
    const handler = handlers[x.record.method];
    return handler ? handler() : error(x, 405, 'HTTP 405 Method Not Allowed');
  };

  const mediaType = (x: Exchange) => (x.request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();

  /** The JSON body, or undefined once a 415 or 400 has been sent. */
  const jsonBody = (x: Exchange): unknown => {
    if (mediaType(x) !== 'application/json') {
      error(x, 415, 'HTTP 415 Unsupported Media Type');
      return undefined;
    }
    try {
      return JSON.parse(x.body) as unknown;
    } catch {
      send(x, 400, UNPARSABLE);
      return undefined;
    }
  };

  /** Url-encoded or multipart form fields, or undefined once a 415 has been sent. */
  const formBody = async (x: Exchange): Promise<Map<string, string> | undefined> => {
    const type = mediaType(x);
    const fields = new Map<string, string>();
    if (type === 'application/x-www-form-urlencoded') {
      for (const [key, value] of new URLSearchParams(x.body)) if (!fields.has(key)) fields.set(key, value);
      return fields;
    }
    if (type === 'multipart/form-data') {
      const contentType = x.request.headers['content-type'] ?? '';
      const form = await new Response(x.body, { headers: { 'content-type': contentType } }).formData();
      for (const [key, value] of form) if (typeof value === 'string' && !fields.has(key)) fields.set(key, value);
      return fields;
    }
    error(x, 415, 'HTTP 415 Unsupported Media Type');
    return undefined;
  };

  const text = (value: unknown): string | null => (typeof value === 'string' ? value : null);
  const isBlank = (value: string | null | undefined) => value === null || value === undefined || value.trim() === '';
  const isRecord = (value: unknown): value is Record<string, unknown> =>
    typeof value === 'object' && value !== null && !Array.isArray(value);
  const page = <T>(items: T[], query: URLSearchParams, size: number): T[] => {
    const first = Number.parseInt(query.get('first') ?? '', 10);
    const max = Number.parseInt(query.get('max') ?? '', 10);
    const start = Number.isInteger(first) && first > 0 ? first : 0;
    return items.slice(start, Number.isInteger(max) && max >= 0 ? start + max : start + size);
  };
  const location = (...segments: string[]) => `${stub.url}/admin/realms/${realm}/${segments.map(encodeURIComponent).join('/')}`;

  // ---- token endpoint ----

  const tokenEndpoint = async (x: Exchange) => {
    if (x.record.method !== 'POST') return error(x, 405, 'HTTP 405 Method Not Allowed');
    const form = await formBody(x);
    if (!form) return;
    const grantType = form.get('grant_type');
    if (grantType === undefined) {
      return send(x, 400, { error: 'invalid_request', error_description: 'Missing form parameter: grant_type' });
    }
    if (grantType !== 'client_credentials') {
      return send(x, 400, { error: 'unsupported_grant_type', error_description: 'Unsupported grant_type' });
    }
    let clientId = form.get('client_id');
    let clientSecret = form.get('client_secret');
    const authorization = x.request.headers.authorization ?? '';
    if (/^basic /i.test(authorization)) {
      const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) {
        try {
          clientId = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
          clientSecret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '));
        } catch {
          clientId = undefined;
        }
      }
    }
    if (isBlank(clientId)) {
      return send(x, 400, { error: 'invalid_client', error_description: 'Missing client_id parameter' });
    }
    const denied = 'Invalid client or Invalid client credentials';
    if (clientId !== stub.clientId) return send(x, 401, { error: 'invalid_client', error_description: denied });
    if (clientSecret !== stub.clientSecret) return send(x, 401, { error: 'unauthorized_client', error_description: denied });
    tokensIssued += 1;
    send(x, 200, {
      access_token: newToken(),
      expires_in: lifetimeSeconds,
      refresh_expires_in: 0,
      token_type: 'Bearer',
      'not-before-policy': 0,
      scope: 'profile email',
    });
  };

  // ---- organizations ----

  const organizationView = (organization: StubOrganization, brief: boolean) => ({
    id: organization.id,
    name: organization.name,
    alias: organization.alias,
    enabled: organization.enabled,
    ...(organization.description === null ? {} : { description: organization.description }),
    ...(organization.redirectUrl === null ? {} : { redirectUrl: organization.redirectUrl }),
    domains: organization.domains.map((domain) => ({ ...domain })),
    ...(brief ? {} : { attributes: structuredClone(organization.attributes) }),
  });

  const memberView = (user: StubUser) => ({ ...userView(user, false), membershipType: 'UNMANAGED' });

  /** Domains from a representation, or a message saying why Keycloak would refuse them. */
  const readDomains = (value: unknown, ownerId: string | null): StubOrganization['domains'] | string => {
    const domains: StubOrganization['domains'] = [];
    for (const entry of Array.isArray(value) ? (value as unknown[]) : []) {
      const name = isRecord(entry) ? text(entry.name) : null;
      if (isBlank(name)) continue;
      const lower = name!.trim().toLowerCase();
      if (!DOMAIN.test(lower)) return `The domain name ${lower} is invalid`;
      const owner = state.organizations.find((o) => o.id !== ownerId && o.domains.some((d) => d.name === lower));
      if (owner) return `Domain ${lower} is already linked to another organization`;
      domains.push({ name: lower, verified: isRecord(entry) && entry.verified === true });
    }
    return domains;
  };

  /**
   * Attributes as Keycloak keeps them: one stored row per value, so a key whose list holds no
   * value is not kept at all (it reads back absent, not as an empty list).
   */
  const readAttributes = (value: unknown): Record<string, string[]> => {
    const attributes: Record<string, string[]> = {};
    if (!isRecord(value)) return attributes;
    for (const [key, values] of Object.entries(value)) {
      const kept = Array.isArray(values) ? values.filter((v): v is string => typeof v === 'string') : [];
      if (kept.length > 0) attributes[key] = kept;
    }
    return attributes;
  };

  const createOrganization = (x: Exchange) => {
    const body = jsonBody(x);
    if (body === undefined) return;
    if (!isRecord(body)) return errorMessage(x, 400, 'Organization cannot be null.');
    const name = text(body.name);
    if (isBlank(name)) return errorMessage(x, 400, 'Name can not be null');
    let alias = text(body.alias);
    if (isBlank(alias)) {
      if (name!.includes(' ')) return errorMessage(x, 400, 'Name contains a reserved character and cannot be used as alias');
      alias = name;
    }
    if (state.organizations.some((o) => o.name === name)) {
      return errorMessage(x, 409, 'A organization with the same name already exists.');
    }
    if (state.organizations.some((o) => o.alias === alias)) {
      return errorMessage(x, 409, 'A organization with the same alias already exists');
    }
    const forbidden = [...alias!].find((c) => ALIAS_FORBIDDEN.has(c));
    if (forbidden !== undefined) return error(x, 400, `Character '${forbidden}' not allowed.`);
    const domains = readDomains(body.domains, null);
    if (typeof domains === 'string') return errorMessage(x, 400, domains);
    const created = seedOrganization({
      name: name!,
      alias: alias!,
      enabled: typeof body.enabled === 'boolean' ? body.enabled : true,
      description: text(body.description),
      redirectUrl: text(body.redirectUrl),
      domains,
      attributes: readAttributes(body.attributes),
    });
    send(x, 201, undefined, { location: location('organizations', created.id), 'content-length': '0' });
  };

  /** Keycloak's attribute search: `key:value` pairs, all of which must hold; `alias` is the alias itself. */
  const queryMatches = (organization: StubOrganization, q: string) =>
    [...q.matchAll(/([^\s:]+):("[^"]*"|\S*)/g)].every(([, key, raw]) => {
      const value = raw!.replace(/^"|"$/g, '');
      return key === 'alias' ? organization.alias === value : (organization.attributes[key!] ?? []).includes(value);
    });

  const searchOrganizations = (x: Exchange) => {
    const query = x.url.searchParams;
    const q = query.get('q') ?? '';
    const search = query.get('search') ?? '';
    const exact = query.get('exact') === 'true';
    const brief = query.get('briefRepresentation') !== 'false';
    const found = state.organizations
      .filter((o) => {
        if (q.trim() !== '') return queryMatches(o, q);
        if (search.trim() === '') return true;
        if (exact) return o.name === search || o.domains.some((d) => d.name === search);
        const needle = search.toLowerCase();
        return o.name.toLowerCase().includes(needle) || o.domains.some((d) => d.name.includes(needle));
      })
      .sort((a, b) => a.name.localeCompare(b.name));
    send(x, 200, page(found, query, ORGANIZATIONS_PAGE).map((o) => organizationView(o, brief)));
  };

  const updateOrganization = (x: Exchange, organization: StubOrganization) => {
    const body = jsonBody(x);
    if (body === undefined) return;
    if (!isRecord(body)) return errorMessage(x, 400, 'Organization cannot be null.');
    const name = text(body.name);
    if (name !== organization.name && state.organizations.some((o) => o.name === name)) {
      return errorMessage(x, 409, 'A organization with the same name already exists.');
    }
    if (isBlank(name)) return errorMessage(x, 400, 'Name can not be null');
    const alias = text(body.alias);
    if (!isBlank(alias) && alias !== organization.alias) return errorMessage(x, 400, 'Cannot change the alias');
    const domains = body.domains === undefined || body.domains === null ? organization.domains : readDomains(body.domains, organization.id);
    if (typeof domains === 'string') return errorMessage(x, 400, domains);
    organization.name = name!;
    organization.domains = domains;
    if (typeof body.enabled === 'boolean') organization.enabled = body.enabled;
    organization.description = text(body.description);
    organization.redirectUrl = text(body.redirectUrl);
    if (isRecord(body.attributes)) organization.attributes = readAttributes(body.attributes);
    send(x, 204);
  };

  const addMember = (x: Exchange, organization: StubOrganization) => {
    if (mediaType(x) !== 'application/json') return error(x, 415, 'HTTP 415 Unsupported Media Type');
    let id = x.body.trim();
    if (id.startsWith('"')) {
      try {
        id = String(JSON.parse(id));
      } catch {
        return send(x, 400, UNPARSABLE);
      }
    }
    const user = state.users.find((u) => u.id === id);
    if (!user) return errorMessage(x, 400, 'User does not exist');
    if (organization.members.includes(user.id)) {
      return errorMessage(x, 409, 'User is already a member of the organization.');
    }
    organization.members.push(user.id);
    send(x, 201, undefined, { location: location('organizations', organization.id, 'members', user.id), 'content-length': '0' });
  };

  const listMembers = (x: Exchange, organization: StubOrganization) => {
    const query = x.url.searchParams;
    const search = (query.get('search') ?? '').toLowerCase();
    const exact = query.get('exact') === 'true';
    const members = organization.members
      .map((id) => state.users.find((u) => u.id === id)!)
      .filter((u) => {
        if (search === '') return true;
        const fields = [u.username, u.email, u.firstName?.toLowerCase(), u.lastName?.toLowerCase()];
        return fields.some((f) => (f ? (exact ? f === search : f.includes(search)) : false));
      })
      .sort((a, b) => a.username.localeCompare(b.username));
    send(x, 200, page(members, query, ORGANIZATIONS_PAGE).map(memberView));
  };

  /** Sends a mail unless a mail-failure fault matches; false once the 500 has been sent. */
  const mail = (x: Exchange, email: SentEmail, failure: string): boolean => {
    if (takeFault(x.record, true)) {
      x.record.fault = 'mail-failure';
      errorMessage(x, 500, failure);
      return false;
    }
    state.emails.push(email);
    return true;
  };

  const invitation = (organization: StubOrganization, to: string, user: StubUser | null): SentEmail => ({
    kind: 'organization-invite',
    to,
    userId: user?.id ?? null,
    organizationId: organization.id,
    actions: [],
    lifespan: null,
    clientId: null,
    redirectUri: null,
    firstName: user?.firstName ?? null,
    lastName: user?.lastName ?? null,
  });

  const inviteUser = async (x: Exchange, organization: StubOrganization) => {
    const form = await formBody(x);
    if (!form) return;
    const email = (form.get('email') ?? '').trim().toLowerCase();
    if (email === '') return errorMessage(x, 400, 'Email is required to invite a member');
    if (!EMAIL.test(email)) return errorMessage(x, 400, 'Invalid email format');
    const user = state.users.find((u) => u.email === email) ?? null;
    if (user && organization.members.includes(user.id)) {
      return errorMessage(x, 409, 'User already a member of the organization');
    }
    const sent = invitation(organization, email, user);
    if (!user) {
      // The form field names changed between releases; both spellings are read.
      sent.firstName = form.get('firstName') ?? form.get('first-name') ?? null;
      sent.lastName = form.get('lastName') ?? form.get('last-name') ?? null;
    }
    if (mail(x, sent, 'Failed to send invite email')) send(x, 204);
  };

  const inviteExistingUser = async (x: Exchange, organization: StubOrganization) => {
    const form = await formBody(x);
    if (!form) return;
    const id = form.get('id') ?? '';
    if (id.trim() === '') return error(x, 400, 'To invite a member you need to provide the user id');
    const user = state.users.find((u) => u.id === id);
    if (!user) return errorMessage(x, 400, 'User does not exist');
    if (user.email === null) return errorMessage(x, 500, 'Failed to send invite email');
    if (mail(x, invitation(organization, user.email, user), 'Failed to send invite email')) send(x, 204);
  };

  const organizations = (x: Exchange, rest: string[]) => {
    if (!stub.organizationsEnabled) return errorMessage(x, 404, 'Organizations not enabled for this realm.');
    const [id, sub, memberId, ...tail] = rest;
    if (id === undefined) return byMethod(x, { POST: () => createOrganization(x), GET: () => searchOrganizations(x) });
    const organization = state.organizations.find((o) => o.id === id);
    if (!organization) return errorMessage(x, 404, 'Organization not found.');
    if (sub === undefined) {
      return byMethod(x, {
        GET: () => send(x, 200, organizationView(organization, false)),
        PUT: () => updateOrganization(x, organization),
        DELETE: () => {
          state.organizations.splice(state.organizations.indexOf(organization), 1);
          send(x, 204);
        },
      });
    }
    if (sub !== 'members' || tail.length > 0) return send(x, 404, NO_RESOURCE);
    if (memberId === undefined) {
      return byMethod(x, { POST: () => addMember(x, organization), GET: () => listMembers(x, organization) });
    }
    if (memberId === 'invite-user') return byMethod(x, { POST: () => inviteUser(x, organization) });
    if (memberId === 'invite-existing-user') return byMethod(x, { POST: () => inviteExistingUser(x, organization) });
    const member = organization.members.includes(memberId) ? state.users.find((u) => u.id === memberId) : undefined;
    if (!member) return error(x, 404, 'HTTP 404 Not Found');
    return byMethod(x, {
      GET: () => send(x, 200, memberView(member)),
      DELETE: () => {
        organization.members.splice(organization.members.indexOf(member.id), 1);
        send(x, 204);
      },
    });
  };

  // ---- users ----

  const userView = (user: StubUser, brief: boolean) => ({
    id: user.id,
    username: user.username,
    ...(user.firstName === null ? {} : { firstName: user.firstName }),
    ...(user.lastName === null ? {} : { lastName: user.lastName }),
    ...(user.email === null ? {} : { email: user.email }),
    emailVerified: user.emailVerified,
    enabled: user.enabled,
    createdTimestamp: user.createdTimestamp,
    ...(brief
      ? {}
      : {
          totp: false,
          requiredActions: [...user.requiredActions],
          notBefore: 0,
          ...(Object.keys(user.attributes).length === 0 ? {} : { attributes: structuredClone(user.attributes) }),
        }),
  });

  const createUser = (x: Exchange) => {
    const body = jsonBody(x);
    if (body === undefined) return;
    if (!isRecord(body)) return send(x, 400, UNPARSABLE);
    const username = text(body.username)?.trim().toLowerCase() ?? '';
    if (username === '') {
      return send(x, 400, { field: 'username', errorMessage: 'error-user-attribute-required', params: ['username'] });
    }
    const email = text(body.email)?.trim().toLowerCase() || null;
    if (email !== null && !EMAIL.test(email)) {
      return send(x, 400, { field: 'email', errorMessage: 'error-invalid-email', params: ['email', email] });
    }
    if (state.users.some((u) => u.username === username)) return errorMessage(x, 409, 'User exists with same username');
    if (email !== null && state.users.some((u) => u.email === email)) return errorMessage(x, 409, 'User exists with same email');
    const attributes = readAttributes(body.attributes);
    for (const key of Object.keys(attributes)) if (!declaredAttributes.has(key)) delete attributes[key];
    const requiredActions = Array.isArray(body.requiredActions)
      ? (body.requiredActions as unknown[]).filter((a): a is string => typeof a === 'string')
      : [];
    const created = seedUser({
      username,
      email,
      firstName: text(body.firstName),
      lastName: text(body.lastName),
      // Keycloak creates a user disabled unless the representation says otherwise.
      enabled: body.enabled === true,
      emailVerified: body.emailVerified === true,
      requiredActions,
      attributes,
    });
    send(x, 201, undefined, { location: location('users', created.id), 'content-length': '0' });
  };

  // PUT replaces what the representation names; attributes are replaced as a whole, and those
  // the user profile does not declare are dropped, as on create.
  const updateUser = (x: Exchange, user: StubUser) => {
    const body = jsonBody(x);
    if (body === undefined) return;
    if (!isRecord(body)) return send(x, 400, UNPARSABLE);
    if (body.attributes !== undefined) {
      const attributes = readAttributes(body.attributes);
      for (const key of Object.keys(attributes)) if (!declaredAttributes.has(key)) delete attributes[key];
      user.attributes = attributes;
    }
    if (typeof body.enabled === 'boolean') user.enabled = body.enabled;
    if (typeof body.firstName === 'string') user.firstName = body.firstName;
    if (typeof body.lastName === 'string') user.lastName = body.lastName;
    send(x, 204);
  };

  const searchUsers = (x: Exchange) => {
    const query = x.url.searchParams;
    const exact = query.get('exact') === 'true';
    const fits = (value: string | null, wanted: string | null) => {
      if (wanted === null) return true;
      const have = (value ?? '').toLowerCase();
      return exact ? have === wanted.toLowerCase() : have.includes(wanted.toLowerCase());
    };
    const search = query.get('search')?.toLowerCase().replace(/\*/g, '') ?? null;
    const found = state.users
      .filter(
        (u) =>
          fits(u.email, query.get('email')) &&
          fits(u.username, query.get('username')) &&
          fits(u.firstName, query.get('firstName')) &&
          fits(u.lastName, query.get('lastName')) &&
          (search === null || [u.username, u.email, u.firstName, u.lastName].some((f) => (f ?? '').toLowerCase().includes(search))),
      )
      .sort((a, b) => a.username.localeCompare(b.username));
    const brief = query.get('briefRepresentation') === 'true';
    send(x, 200, page(found, query, USERS_PAGE).map((u) => userView(u, brief)));
  };

  const executeActionsEmail = (x: Exchange, user: StubUser) => {
    const body = jsonBody(x);
    if (body === undefined) return;
    const actions = Array.isArray(body) ? (body as unknown[]).filter((a): a is string => typeof a === 'string') : [];
    const query = x.url.searchParams;
    const clientId = query.get('client_id');
    const redirectUri = query.get('redirect_uri');
    const lifespan = Number.parseInt(query.get('lifespan') ?? '', 10);
    if (user.email === null) return errorMessage(x, 400, 'User email missing');
    if (!user.enabled) return errorMessage(x, 400, 'User is disabled');
    if (redirectUri !== null && clientId === null) return errorMessage(x, 400, 'Client id missing');
    const knownClients = [...BUILT_IN_CLIENTS, stub.clientId, ...(options.clients ?? [])];
    if (clientId !== null && !knownClients.includes(clientId)) return errorMessage(x, 400, "Client doesn't exist");
    if (actions.some((a) => !REQUIRED_ACTIONS.has(a))) return errorMessage(x, 400, 'Provided invalid required actions');
    const sent: SentEmail = {
      kind: 'execute-actions',
      to: user.email,
      userId: user.id,
      organizationId: null,
      actions,
      lifespan: Number.isInteger(lifespan) ? lifespan : null,
      clientId,
      redirectUri,
      firstName: user.firstName,
      lastName: user.lastName,
    };
    const failure =
      'Failed to send execute actions email: Error when attempting to send the email to the server. More information is available in the server log.';
    if (mail(x, sent, failure)) send(x, 204);
  };

  const roleView = (role: StubRole) => ({
    id: role.id,
    name: role.name,
    description: role.description,
    composite: role.name === `default-roles-${realm}`,
    clientRole: false,
    containerId: realm,
  });

  const addRoleMappings = (x: Exchange, user: StubUser) => {
    const body = jsonBody(x);
    if (body === undefined) return;
    if (!Array.isArray(body)) return send(x, 400, UNPARSABLE);
    const wanted: StubRole[] = [];
    for (const entry of body as unknown[]) {
      const role = isRecord(entry) ? state.roles.find((r) => r.name === entry.name) : undefined;
      // Keycloak looks the role up by name and then insists the id is the same one.
      if (!role || !isRecord(entry) || entry.id !== role.id) return error(x, 404, 'Role not found');
      wanted.push(role);
    }
    const mapped = (state.roleMappings[user.id] ??= []);
    for (const role of wanted) if (!mapped.includes(role.name)) mapped.push(role.name);
    send(x, 204);
  };

  const users = (x: Exchange, rest: string[]) => {
    const [id, sub, ...tail] = rest;
    if (id === undefined) return byMethod(x, { POST: () => createUser(x), GET: () => searchUsers(x) });
    const user = state.users.find((u) => u.id === id);
    if (!user) return error(x, 404, 'User not found');
    if (sub === undefined) {
      return byMethod(x, {
        GET: () => send(x, 200, userView(user, false)),
        PUT: () => updateUser(x, user),
        DELETE: () => {
          state.users.splice(state.users.indexOf(user), 1);
          delete state.roleMappings[user.id];
          for (const organization of state.organizations) {
            organization.members = organization.members.filter((m) => m !== user.id);
          }
          send(x, 204);
        },
      });
    }
    // Stub users never have a password: no call sets one.
    if (sub === 'credentials' && tail.length === 0) return byMethod(x, { GET: () => send(x, 200, []) });
    if (sub === 'execute-actions-email' && tail.length === 0) return byMethod(x, { PUT: () => executeActionsEmail(x, user) });
    if (sub === 'role-mappings' && tail.length === 1 && tail[0] === 'realm') {
      return byMethod(x, {
        POST: () => addRoleMappings(x, user),
        GET: () => {
          const names = state.roleMappings[user.id] ?? [];
          send(x, 200, state.roles.filter((r) => names.includes(r.name)).map(roleView));
        },
      });
    }
    return send(x, 404, NO_RESOURCE);
  };

  const roles = (x: Exchange, rest: string[]) => {
    if (rest.length !== 1) return send(x, 404, NO_RESOURCE);
    const role = state.roles.find((r) => r.name === rest[0]);
    if (!role) return error(x, 404, 'Could not find role');
    return byMethod(x, { GET: () => send(x, 200, roleView(role)) });
  };

  const serverInfo = (x: Exchange) =>
    send(x, 200, {
      systemInfo: { version: '26.4.0', serverTime: new Date().toUTCString(), uptimeMillis: Math.round(process.uptime() * 1000) },
      memoryInfo: { total: 536870912, used: 134217728, free: 402653184 },
      profileInfo: { name: 'community', disabledFeatures: [], previewFeatures: [], experimentalFeatures: [] },
      features: [{ name: 'ORGANIZATION', label: 'Organization', type: 'DEFAULT', enabled: true }],
    });

  // ---- dispatch ----

  const authorized = (x: Exchange) => {
    const match = /^bearer\s+(\S+)$/i.exec(x.request.headers.authorization ?? '');
    const expiresAt = match ? tokens.get(match[1]!) : undefined;
    return expiresAt !== undefined && Date.now() < expiresAt;
  };

  const route = async (x: Exchange) => {
    const segments = x.url.pathname.split('/').filter((s) => s !== '').map(decodeURIComponent);
    const [first, second, third, ...rest] = segments;
    if (first === 'realms' && rest.join('/') === 'openid-connect/token' && third === 'protocol') {
      return second === realm ? tokenEndpoint(x) : error(x, 404, 'Realm does not exist');
    }
    if (first !== 'admin') return send(x, 404, NO_RESOURCE);
    if (!authorized(x)) return error(x, 401, 'HTTP 401 Unauthorized');
    if (second === 'serverinfo' && segments.length === 2) return byMethod(x, { GET: () => serverInfo(x) });
    if (second !== 'realms' || third === undefined) return send(x, 404, NO_RESOURCE);
    if (third !== realm) return error(x, 404, 'Realm not found.');
    const [collection, ...tail] = rest;
    if (collection === 'organizations') return organizations(x, tail);
    if (collection === 'users') return users(x, tail);
    if (collection === 'roles') return roles(x, tail);
    return send(x, 404, NO_RESOURCE);
  };

  const applyFault = (x: Exchange, fault: StubFault) => {
    x.record.fault = fault;
    switch (fault) {
      case 'hang':
        return;
      case 'reset':
        x.request.socket.resetAndDestroy();
        return;
      case 'malformed-json':
        x.record.status = 200;
        x.response.writeHead(200, { 'content-type': 'application/json' }).end('{"id":"6f1c0d2e-3a4b-4c5d-9e8f-');
        return;
      case '401':
        return error(x, 401, 'HTTP 401 Unauthorized');
      case '403':
        return error(x, 403, 'HTTP 403 Forbidden');
      default:
        return send(x, 500, { error: 'unknown_error' });
    }
  };

  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://stub.invalid');
    const { authorization, ...headers } = request.headers;
    const record: RecordedRequest = {
      method: (request.method ?? 'GET').toUpperCase(),
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: Object.fromEntries(
        Object.entries(headers).map(([name, value]) => [name, Array.isArray(value) ? value.join(', ') : (value ?? '')]),
      ),
      authorization: authorization === undefined ? null : schemeOf(authorization),
      body: '',
      status: null,
      fault: null,
    };
    // Recorded on arrival, so the order is the order requests came in, not the order bodies ended.
    stub.requests.push(record);
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      record.body = Buffer.concat(chunks).toString('utf8');
      const x: Exchange = { request, response, record, url, body: record.body };
      const fault = takeFault(record, false);
      if (fault) return applyFault(x, fault);
      route(x).catch((cause: unknown) => {
        if (!response.headersSent) send(x, 500, { error: 'unknown_error', error_description: String(cause) });
      });
    });
  });

  const stub: KeycloakStub = {
    url: '',
    tokenUrl: '',
    realm,
    clientId: options.clientId ?? 'tenant-registry',
    clientSecret: options.clientSecret ?? 'stub-secret',
    requests: [],
    state,
    get tokensIssued() {
      return tokensIssued;
    },
    organizationsEnabled: options.organizationsEnabled ?? true,
    issueToken: newToken,
    expireTokens() {
      for (const token of tokens.keys()) tokens.set(token, 0);
    },
    fail(pattern, fault, times = Number.POSITIVE_INFINITY) {
      faults.push({ pattern, fault, remaining: times });
    },
    clearFaults() {
      faults = [];
    },
    addUser: seedUser,
    addOrganization: seedOrganization,
    close: () =>
      new Promise((resolve, reject) => {
        server.close((cause) => (cause ? reject(cause) : resolve()));
        // Hung requests and idle keep-alive sockets would otherwise hold close() open for ever.
        server.closeAllConnections();
      }),
  };

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  stub.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  stub.tokenUrl = `${stub.url}/realms/${realm}/protocol/openid-connect/token`;
  return stub;
}

function schemeOf(authorization: string): RecordedRequest['authorization'] {
  const scheme = authorization.trim().split(/\s+/)[0]!.toLowerCase();
  return scheme === 'bearer' || scheme === 'basic' ? scheme : 'other';
}
