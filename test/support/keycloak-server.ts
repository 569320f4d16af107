// The real Keycloak of the tests (scripts/keycloak), and a fresh realm per test file made from the
// realm the project ships (keycloak/realm.json).
//
// `npm test` starts one server for the whole run and names its state file in KEYCLOAK_TEST_STATE
// (scripts/with-keycloak); the server may still be booting when a file gets here, so this waits
// for it. A file run on its own (npx vitest run test/keycloak-live/...) starts its own server.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = new URL('../..', import.meta.url).pathname;
// Booting is not a measurement: a cold start on two busy cores takes minutes, not seconds.
export const KEYCLOAK_BOOT_WAIT_MS = 600_000;
const ADMIN_PASSWORD = process.env.KEYCLOAK_ADMIN_PASSWORD ?? 'admin';

export interface KeycloakServer {
  url: string;
  /** A master-realm admin token, fetched again when the last one is near its end. */
  adminToken(): Promise<string>;
  /** Stops the server when this process started it; a shared one is left to its owner. */
  release(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function readState(path: string, waitMs: number): Promise<{ url: string }> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    if (existsSync(path)) return JSON.parse(await readFile(path, 'utf8')) as { url: string };
    const failed = `${path}.failed`;
    if (existsSync(failed)) throw new Error(`Keycloak did not start: ${await readFile(failed, 'utf8')}`);
    if (Date.now() > deadline) throw new Error(`Keycloak's state file ${path} did not appear within ${waitMs / 1000} s`);
    await sleep(1_000);
  }
}

export async function keycloakServer(): Promise<KeycloakServer> {
  let ownState: string | null = null;
  let url: string;
  const shared = process.env.KEYCLOAK_TEST_STATE;
  if (shared) {
    ({ url } = await readState(shared, KEYCLOAK_BOOT_WAIT_MS));
  } else {
    ownState = join(await mkdtemp(join(tmpdir(), 'registry-keycloak-')), 'state.json');
    await run(join(ROOT, 'scripts/keycloak'), ['start', ownState], { timeout: KEYCLOAK_BOOT_WAIT_MS });
    ({ url } = await readState(ownState, 0));
  }
  let token: { value: string; until: number } | undefined;
  return {
    url,
    async adminToken() {
      if (token && token.until > Date.now()) return token.value;
      const response = await fetch(`${url}/realms/master/protocol/openid-connect/token`, {
        method: 'POST',
        body: new URLSearchParams({ grant_type: 'password', client_id: 'admin-cli', username: 'admin', password: ADMIN_PASSWORD }),
      });
      if (!response.ok) throw new Error(`the master admin token was refused: ${response.status}`);
      const body = (await response.json()) as { access_token: string; expires_in: number };
      token = { value: body.access_token, until: Date.now() + (body.expires_in - 10) * 1000 };
      return token.value;
    },
    async release() {
      if (ownState) await run(join(ROOT, 'scripts/keycloak'), ['stop', ownState]);
    },
  };
}

export interface TestRealm {
  name: string;
  /** The issuer of the realm's tokens, exactly as Keycloak writes `iss`. */
  issuer: string;
  /** The registry's confidential client and its secret (made up for this realm). */
  clientId: string;
  clientSecret: string;
  /** An Admin API call on this realm as the master admin: path relative to /admin/realms/{realm}. */
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; location: string | null; body: unknown }>;
  /** A user's access token from the realm's real token endpoint (password grant, dev client). */
  userToken(username: string, password: string, scope?: string): Promise<string>;
  /** A user with a password and realm roles, made directly (not through the registry). */
  createUser(user: { username: string; email: string; password: string; realmRoles?: string[] }): Promise<string>;
  remove(): Promise<void>;
}

/** The parts of keycloak/realm.json a test realm changes. */
interface ShippedRealm {
  realm: string;
  smtpServer: Record<string, string>;
  clients: Array<{ clientId: string; secret?: string }>;
  users: Array<{ username: string }>;
}

/** A realm made from keycloak/realm.json under a unique name, mailing through `smtpPort`. */
export async function createTestRealm(server: KeycloakServer, options: { smtpPort: number }): Promise<TestRealm> {
  const realm = JSON.parse(await readFile(join(ROOT, 'keycloak/realm.json'), 'utf8')) as ShippedRealm;
  const name = `registry-test-${randomBytes(5).toString('hex')}`;
  const clientSecret = randomBytes(24).toString('base64url');
  realm.realm = name;
  realm.smtpServer = { ...realm.smtpServer, port: String(options.smtpPort) };
  for (const client of realm.clients) if (client.clientId === 'tenant-registry') client.secret = clientSecret;
  // The shipped realm's development operator has a well-known password; tests make their own users.
  realm.users = realm.users.filter((user) => user.username !== 'operator');

  const admin = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${server.url}/admin/realms/${encodeURIComponent(name)}${path}`, {
      method,
      headers: { authorization: `Bearer ${await server.adminToken()}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? null : JSON.parse(text);
    } catch {
      // left as text
    }
    return { status: response.status, location: response.headers.get('location'), body: parsed };
  };

  const created = await fetch(`${server.url}/admin/realms`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await server.adminToken()}`, 'content-type': 'application/json' },
    body: JSON.stringify(realm),
  });
  if (created.status !== 201) throw new Error(`the test realm was refused: ${created.status} ${await created.text()}`);

  return {
    name,
    issuer: `${server.url}/realms/${name}`,
    clientId: 'tenant-registry',
    clientSecret,
    admin,
    async userToken(username, password, scope) {
      const response = await fetch(`${server.url}/realms/${encodeURIComponent(name)}/protocol/openid-connect/token`, {
        method: 'POST',
        body: new URLSearchParams({ grant_type: 'password', client_id: 'registry-dev-cli', username, password, ...(scope ? { scope } : {}) }),
      });
      const body = (await response.json()) as { access_token?: string; error_description?: string };
      if (!body.access_token) throw new Error(`no token for ${username}: ${response.status} ${body.error_description ?? ''}`);
      return body.access_token;
    },
    async createUser(user) {
      const made = await admin('POST', '/users', {
        username: user.username,
        email: user.email,
        firstName: 'Test',
        lastName: 'User',
        enabled: true,
        emailVerified: true,
        credentials: [{ type: 'password', value: user.password, temporary: false }],
      });
      if (made.status !== 201 || !made.location) throw new Error(`user ${user.username} was refused: ${made.status}`);
      const id = made.location.split('/').pop()!;
      for (const role of user.realmRoles ?? []) {
        const found = await admin('GET', `/roles/${encodeURIComponent(role)}`);
        const { id: roleId } = found.body as { id: string };
        await admin('POST', `/users/${id}/role-mappings/realm`, [{ id: roleId, name: role }]);
      }
      return id;
    },
    async remove() {
      await fetch(`${server.url}/admin/realms/${encodeURIComponent(name)}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${await server.adminToken()}` },
      });
    },
  };
}

/** The claims of a JWT, read without verifying it (for assertions about what Keycloak put in). */
export function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}
