// The roles are checked before the body is read: a caller whose roles do not allow a route gets
// 403 whatever it sends, without the body being received, parsed or validated. A caller with the
// right role sending a hostile body (25,000 unknown fields) gets a short 400 listing at most ten
// of the problems.
import { once } from 'node:events';
import net from 'node:net';
import type { JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_FIELD_ERRORS } from '../../src/http/validation.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant, randomSlug } from '../support/factories.js';
import { problemOf, type Answer, type Client } from '../support/http.js';
import { identities } from '../support/identities.js';
import { startServer, type TestServer } from '../support/server.js';

const BODY_LIMIT = 256 * 1024;
const UNKNOWN_FIELDS = 25_000;

/**
 * A JSON object of `fields` plus UNKNOWN_FIELDS fields no schema knows, padded to just under
 * the body limit.
 */
function hostileBody(fields: Record<string, unknown>): string {
  const known = JSON.stringify(fields).slice(1, -1);
  const unknown = Array.from({ length: UNKNOWN_FIELDS }, (_, i) => `"u${i.toString(36).padStart(4, '0')}":0`);
  const unpadded = `{${[known, ...unknown].filter((part) => part !== '').join(',')}}`;
  // The first unknown field carries the padding, so the count stays exact.
  const padding = BODY_LIMIT - 64 - Buffer.byteLength(unpadded);
  const body = unpadded.replace('"u0000":0', `"u0000":"${'p'.repeat(padding - 2)}"`);
  expect(Buffer.byteLength(body)).toBeGreaterThan(BODY_LIMIT - 100);
  expect(Buffer.byteLength(body)).toBeLessThanOrEqual(BODY_LIMIT);
  return body;
}

/** Bodies no parser would get through: what each gets from a caller allowed to send it. */
interface Hostile {
  name: string;
  contentType: string;
  body: string;
  allowed: { status: number; code: string };
}

const hostileBodies = (validFields: Record<string, unknown>): Hostile[] => [
  {
    name: 'a 256 KiB body of 25,000 unknown fields',
    contentType: 'application/json',
    body: hostileBody(validFields),
    allowed: { status: 400, code: 'validation_failed' },
  },
  {
    name: 'a 256 KiB body that is not JSON',
    contentType: 'application/json',
    body: `{"slug": "x", "name": ${'['.repeat(10)}${'x'.repeat(BODY_LIMIT - 100)}`,
    allowed: { status: 400, code: 'malformed_json' },
  },
  {
    name: 'a body of a media type the server cannot parse',
    contentType: 'text/plain',
    body: 'x'.repeat(BODY_LIMIT - 100),
    allowed: { status: 415, code: 'unsupported_media_type' },
  },
  {
    name: 'a form-encoded body',
    contentType: 'application/x-www-form-urlencoded',
    body: 'slug=acme&name=Acme',
    allowed: { status: 415, code: 'unsupported_media_type' },
  },
  {
    name: 'JSON nested 10,000 levels deep',
    contentType: 'application/json',
    body: `${'['.repeat(10_000)}${']'.repeat(10_000)}`,
    allowed: { status: 400, code: 'validation_failed' },
  },
  {
    name: 'a body over the size limit',
    contentType: 'application/json',
    body: `{"pad": "${'x'.repeat(BODY_LIMIT + 1024)}"}`,
    allowed: { status: 413, code: 'payload_too_large' },
  },
];

eachDriver('access before body', (driver) => {
  let server: TestServer;
  let tenant: Tenant;

  beforeAll(async () => {
    server = await startServer(driver, { config: { appEnv: 'dev', bodyLimitBytes: BODY_LIMIT } });
    tenant = await createTenant(server.api);
  });
  afterAll(() => server.close());

  const send = (client: Client, path: string, hostile: Pick<Hostile, 'contentType' | 'body'>) =>
    client.post(path, { raw: hostile.body, headers: { 'content-type': hostile.contentType } });

  const expectForbidden = (answer: Answer) => {
    expect(answer.status, answer.text.slice(0, 300)).toBe(403);
    expect(problemOf(answer).code).toBe('forbidden');
    expect(answer.text.length).toBeLessThan(1024);
  };

  // Platform-admin-only and publish routes, each with a caller its roles do not allow.
  const refusals: Array<[string, string, () => JWTPayload, Record<string, unknown>]> = [
    ['a member of a tenant', '/v1/tenants', () => identities.member(tenant.id), { slug: 'acme-corp', name: 'Acme' }],
    ['a token with no roles and no tenant', '/v1/tenants', () => ({ sub: 'nobody', realm_access: { roles: [] } }), { slug: 'acme-corp', name: 'Acme' }],
    ['an IT_ADMIN', '/v1/audit', () => identities.itAdmin(tenant.id), { action: 'doc.viewed', crud: 'r', actor: { id: 'u-1' } }],
    ['a token with no roles and no tenant', '/v1/audit', () => ({ sub: 'nobody', realm_access: { roles: [] } }), { action: 'doc.viewed', crud: 'r', actor: { id: 'u-1' } }],
  ];

  describe.each(refusals)('%s on POST %s', (_caller, path, claims, validFields) => {
    it.each(hostileBodies(validFields).map((hostile) => [hostile.name, hostile] as const))(
      'answers 403 forbidden to %s, where an allowed caller gets a parse or validation error',
      async (_name, hostile) => {
        expectForbidden(await send(await server.as(claims()), path, hostile));
        const allowed = await send(server.api, path, hostile);
        expect(allowed.status).toBe(hostile.allowed.status);
        expect(problemOf(allowed).code).toBe(hostile.allowed.code);
      },
    );

    it('answers 403 before the body is even sent: headers announcing 200 KB, then nothing', async () => {
      const token = (await server.as(claims())).token!;
      const socket = net.connect(Number(new URL(server.url).port), '127.0.0.1');
      socket.on('error', () => {});
      await once(socket, 'connect');
      let received = '';
      socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
      socket.write(
        `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\n` +
          'Content-Type: application/json\r\nContent-Length: 200000\r\n\r\n{"slug": ',
      );
      // A wait for the answer, not a measurement: a busy machine may take a while to send it.
      const deadline = performance.now() + 30_000;
      while (!received.includes('\r\n\r\n') && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      socket.destroy();
      expect(received).toMatch(/^HTTP\/1\.1 403 /);
      expect(received).toContain('"code":"forbidden"');
    });
  });

  describe('a caller whose roles allow the route', () => {
    it('is not answered before its body arrives: the server waits to read what it may read', async () => {
      const socket = net.connect(Number(new URL(server.url).port), '127.0.0.1');
      socket.on('error', () => {});
      await once(socket, 'connect');
      let received = '';
      socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
      socket.write(
        `POST /v1/tenants HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${server.api.token!}\r\n` +
          'Content-Type: application/json\r\nContent-Length: 200000\r\n\r\n{"slug": ',
      );
      await new Promise((r) => setTimeout(r, 500));
      socket.destroy();
      expect(received).toBe('');
    });

    const expectBoundedValidation = (answer: Answer, count: number) => {
      expect(answer.status).toBe(400);
      const problem = problemOf(answer);
      expect(problem.code).toBe('validation_failed');
      const errors = problem.errors as Array<{ path: string; in: string; message: string }>;
      expect(errors.length).toBeGreaterThan(0);
      expect(errors.length).toBeLessThanOrEqual(MAX_FIELD_ERRORS);
      expect(MAX_FIELD_ERRORS).toBe(10);
      for (const error of errors) expect(error).toEqual({ path: expect.stringMatching(/^\/u[0-9a-z]{4}$/) as string, in: 'body', message: 'is not a known field' });
      expect(problem.detail).toContain(`${count} problems`);
      expect(Buffer.byteLength(answer.text)).toBeLessThan(4096);
    };

    it('a platform admin creating a tenant with 25,000 unknown fields gets 400 with at most ten errors and the total count', async () => {
      const slug = randomSlug();
      const answer = await send(server.api, '/v1/tenants', { contentType: 'application/json', body: hostileBody({ slug, name: 'Hostile' }) });
      expectBoundedValidation(answer, UNKNOWN_FIELDS);
      expect((await server.api.get(`/v1/tenants/by-slug/${slug}`)).status).toBe(404);
    });

    it('a service publishing an audit event with 25,000 unknown fields gets the same bounded 400, and nothing is appended', async () => {
      const action = `hostile.${randomSlug('h')}`;
      const service = await server.as(identities.service());
      const answer = await send(service, '/v1/audit', {
        contentType: 'application/json',
        body: hostileBody({ action, crud: 'r', tenant_id: tenant.id, actor: { id: 'u-1' } }),
      });
      expectBoundedValidation(answer, UNKNOWN_FIELDS);
      expect((await server.api.get<{ items: unknown[] }>(`/v1/audit?action=${action}`)).body.items).toEqual([]);
    });

    it('lists every problem, with no count in the detail, when there are ten or fewer', async () => {
      const answer = await server.api.post('/v1/tenants', { body: { slug: randomSlug(), name: 'Few', a: 1, b: 2, c: 3 } });
      expect(answer.status).toBe(400);
      const problem = problemOf(answer);
      expect((problem.errors as Array<{ path: string }>).map((e) => e.path).sort()).toEqual(['/a', '/b', '/c']);
      expect(problem.detail).not.toMatch(/problems/);
    });
  });
});
