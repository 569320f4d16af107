// The server of the access tests: it checks an audience (tokens must carry aud=tenant-registry),
// so that a token for another client is one more kind of caller; a platform admin client and two
// tenants, A and B, made before the tests. Call audienceCheckedServer(driver) inside a describe
// block: it starts the server before the block's tests and closes it after them.
import { afterAll, beforeAll, expect } from 'vitest';
import type { JWTPayload } from 'jose';
import { discoveredKeys } from '../../src/auth/discovery.js';
import { createTokenVerifier, type TokenVerifier } from '../../src/auth/verifier.js';
import { parseAllowlist } from '../../src/events/url-guard.js';
import type { AuditEvent } from '../../src/http/schemas/audit.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import type { DriverName } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { client, type Answer, type Client } from '../support/http.js';
import { identities, ROLE_NAMES } from '../support/identities.js';
import { startServer, type TestServer } from '../support/server.js';

export const AUDIENCE = 'tenant-registry';

export const eventsIn = (answer: Answer) => (answer.body as unknown as { items: AuditEvent[] }).items;

export function expectOnlyEventsOf(events: Array<{ tenant_id: string | null }>, target: Tenant): void {
  // Every tenant here has at least its tenant.created event.
  expect(events.length).toBeGreaterThan(0);
  expect(new Set(events.map((event) => event.tenant_id))).toEqual(new Set([target.id]));
}

/**
 * One request, as http.ts's call() makes it, except that only JSON documents are parsed: the
 * export answers NDJSON, which is read line by line.
 */
/** The body; of an event stream, which never ends, its first chunk. */
async function bodyText(response: Response): Promise<string> {
  if (!(response.headers.get('content-type') ?? '').startsWith('text/event-stream') || response.body === null) return response.text();
  const reader = response.body.getReader();
  const first = await reader.read();
  await reader.cancel();
  return new TextDecoder().decode(first.value as Uint8Array | undefined);
}

export async function send(
  baseUrl: string,
  method: string,
  path: string,
  token: string | undefined,
  body?: unknown,
  extraHeaders: Record<string, string> = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...extraHeaders, ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(new URL(path, baseUrl), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await bodyText(response);
  const isJson = /^application\/(problem\+)?json\b/.test(response.headers.get('content-type') ?? '');
  return { status: response.status, headers: response.headers, body: isJson && text !== '' ? (JSON.parse(text) as Record<string, unknown>) : {}, text };
}

export function audienceCheckedServer(driver: DriverName) {
  let started: { server: TestServer; admin: Client; tenantA: Tenant; tenantB: Tenant } | undefined;
  let verifier: TokenVerifier | undefined;

  beforeAll(async () => {
    // The issuer is made by startServer, so the verifier that checks the audience is bound to
    // it once the server is up; no request arrives before that.
    const server = await startServer(driver, {
      auth: {
        verifier: { verify: (token) => (verifier ? verifier.verify(token) : Promise.reject(new Error('verifier not set'))) },
        devIssuer: null,
      },
      // The matrix's webhooks point at a closed port on loopback.
      webhooks: { allowPrivate: parseAllowlist(['127.0.0.1']) },
    });
    verifier = createTokenVerifier({
      issuer: server.issuer.url,
      audience: AUDIENCE,
      roles: ROLE_NAMES,
      rolesClient: 'tenant-registry',
      keys: discoveredKeys(server.issuer.url, { cooldownMs: 0 }),
    });
    const admin = client(server.url, await server.issuer.mint(identities.platformAdmin(), { audience: AUDIENCE }));
    const [tenantA, tenantB] = await Promise.all([createTenant(admin), createTenant(admin)]);
    started = { server, admin, tenantA, tenantB };
  });
  afterAll(() => started?.server.close());

  const state = () => {
    if (!started) throw new Error('the server starts in beforeAll');
    return started;
  };
  return {
    get server() {
      return state().server;
    },
    /** A client calling as a platform admin. */
    get admin() {
      return state().admin;
    },
    get tenantA() {
      return state().tenantA;
    },
    get tenantB() {
      return state().tenantB;
    },
    /** A token of these claims, for this server's audience. */
    mint: (claims: JWTPayload) => state().server.issuer.mint(claims, { audience: AUDIENCE }),
  };
}
