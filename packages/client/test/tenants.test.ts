// The client against a real registry (test/support/server.ts) on both drivers: the tenant routes
// through the typed paths, problems typed by their code, and the Idempotency-Key the client adds.
// The `@ts-expect-error` lines are the type-level half: the root typecheck (tsc over this file)
// fails if any of those calls ever compiles, and each is also sent, to show what the registry says.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { eachDriver } from '../../../test/support/drivers.js';
import { identities } from '../../../test/support/identities.js';
import { startServer, type TestServer } from '../../../test/support/server.js';
import { createRegistryClient, isProblem, paginate, RegistryProblem, unwrap, type RegistryClient, type Tenant } from '../src/index.js';

const newSlug = () => `client-${randomUUID().slice(0, 8)}`;

eachDriver('the client on the tenant routes', (driver) => {
  let server: TestServer;
  let registry: RegistryClient;
  /** Every request the client sent, as it left (after the client's own headers were added). */
  const sent: Request[] = [];

  beforeAll(async () => {
    server = await startServer(driver);
    registry = createRegistryClient({
      baseUrl: server.url,
      token: () => server.issuer.mint(identities.platformAdmin()),
      fetch: (request) => {
        sent.push(request.clone());
        return fetch(request);
      },
    });
  });
  afterAll(() => server?.close());

  it('creates, lists, reads and patches a tenant through the typed paths', async () => {
    const slug = newSlug();
    const created = await registry.POST('/v1/tenants', { body: { slug, name: 'Client Co', kind: 'customer' } });
    expect(created.response.status).toBe(201);
    const tenant: Tenant = created.data!.tenant;
    expect(tenant).toMatchObject({ slug, name: 'Client Co', kind: 'customer', status: 'trial' });

    const listed = await unwrap(registry.GET('/v1/tenants', { params: { query: { q: slug, status: 'trial' } } }));
    expect(listed.items.map((item) => item.id)).toEqual([tenant.id]);

    const read = await registry.GET('/v1/tenants/{id}', { params: { path: { id: tenant.id } } });
    expect(read.data).toEqual(tenant);
    const etag = read.response.headers.get('etag');
    expect(etag).toBeTruthy();

    const patched = await unwrap(registry.PATCH('/v1/tenants/{id}', { params: { path: { id: tenant.id }, header: { 'if-match': etag! } }, body: { name: 'Client Co Renamed', plan: 'pro' } }));
    expect(patched).toMatchObject({ id: tenant.id, name: 'Client Co Renamed', plan: 'pro' });

    // The same ETag again is stale now: the problem's code is one the operation declares.
    const stale = await registry.PATCH('/v1/tenants/{id}', { params: { path: { id: tenant.id }, header: { 'if-match': etag! } }, body: { name: 'Lost Update' } });
    expect(stale.response.status).toBe(412);
    expect(stale.error?.code).toBe('precondition_failed');
    expect((await unwrap(registry.GET('/v1/tenants/by-slug/{slug}', { params: { path: { slug } } }))).name).toBe('Client Co Renamed');
  });

  it('surfaces a problem by its typed code: a second tenant with the slug is slug_taken', async () => {
    const slug = newSlug();
    await unwrap(registry.POST('/v1/tenants', { body: { slug, name: 'First' } }));

    const again = await registry.POST('/v1/tenants', { body: { slug, name: 'Second' } });
    expect(again.response.status).toBe(409);
    expect(again.response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    // `code` is narrowed to what createTenant declares for its answers; a switch over it is checked.
    const code = again.error?.code;
    expect(code).toBe('slug_taken');
    expect(isProblem(again.error, 'slug_taken')).toBe(true);
    expect(isProblem(again.error, 'not_found')).toBe(false);
    expect(again.error?.request_id).toBe(again.response.headers.get('x-request-id'));

    const thrown = await unwrap(registry.POST('/v1/tenants', { body: { slug, name: 'Third' } })).catch((error: unknown) => error);
    expect(thrown).toBeInstanceOf(RegistryProblem);
    expect(thrown).toMatchObject({ code: 'slug_taken', status: 409, title: expect.any(String) as string });
    expect(isProblem(thrown, 'slug_taken', 'idempotency_in_progress')).toBe(true);
    // Every call got a key of its own: the registry did not take the copies for a replay.
    const keys = sent.filter((request) => request.method === 'POST' && new URL(request.url).pathname === '/v1/tenants').map((request) => request.headers.get('idempotency-key'));
    expect(keys.every((key) => key !== null && /^[0-9a-f-]{36}$/.test(key))).toBe(true);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('adds an Idempotency-Key to the operations the contract marks, keeps a caller-chosen one, and adds none elsewhere', async () => {
    sent.length = 0;
    const slug = newSlug();
    const key = `caller-key-${randomUUID()}`;
    const first = await registry.POST('/v1/tenants', { params: { header: { 'idempotency-key': key } }, body: { slug, name: 'Keyed' } });
    const replay = await registry.POST('/v1/tenants', { params: { header: { 'idempotency-key': key } }, body: { slug, name: 'Keyed' } });
    expect(replay.response.status).toBe(201);
    expect(replay.response.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.data?.tenant.id).toBe(first.data?.tenant.id);

    const id = first.data!.tenant.id;
    await unwrap(registry.POST('/v1/tenants/{id}/activate', { params: { path: { id } } }));
    await unwrap(registry.GET('/v1/tenants/{id}', { params: { path: { id } } }));
    expect(sent.map((request) => [request.method, new URL(request.url).pathname, request.headers.get('idempotency-key')])).toEqual([
      ['POST', '/v1/tenants', key],
      ['POST', '/v1/tenants', key],
      ['POST', `/v1/tenants/${id}/activate`, null],
      ['GET', `/v1/tenants/${id}`, null],
    ]);
    // The bearer token went on every request, fetched from the provider.
    expect(sent.every((request) => request.headers.get('authorization')?.startsWith('Bearer ey'))).toBe(true);
  });

  it('walks a paged list to its end with paginate(), a page at a time', async () => {
    const prefix = `page-${randomUUID().slice(0, 6)}`;
    const ids = [];
    for (let i = 0; i < 5; i += 1) ids.push((await unwrap(registry.POST('/v1/tenants', { body: { slug: `${prefix}-${i}`, name: `Paged ${i}` } }))).tenant.id);
    const cursors: Array<string | undefined> = [];
    const walked: string[] = [];
    for await (const tenant of paginate((cursor) => {
      cursors.push(cursor);
      return registry.GET('/v1/tenants', { params: { query: { q: prefix, limit: 2, cursor } } });
    })) {
      walked.push(tenant.id);
    }
    // Newest first, three pages of at most two.
    expect(walked).toEqual([...ids].reverse());
    expect(cursors).toHaveLength(3);
    expect(cursors[0]).toBeUndefined();

    // A page function that forgets the cursor would loop: it is stopped on the repeated cursor.
    const forgetful = paginate(() => registry.GET('/v1/tenants', { params: { query: { q: prefix, limit: 2 } } }));
    const items: string[] = [];
    await expect(
      (async () => {
        for await (const tenant of forgetful) items.push(tenant.id);
      })(),
    ).rejects.toThrow('same next_cursor');
    expect(items.length).toBeLessThanOrEqual(4);
  });

  it('streams an export through fetch(), with the token, from a path relative to baseUrl', async () => {
    const { tenant } = await unwrap(registry.POST('/v1/tenants', { body: { slug: newSlug(), name: 'Exported' } }));
    const response = await registry.fetch(`/v1/tenants/${tenant.id}/export`);
    expect(response.status).toBe(200);
    const lines = (await response.text()).trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(JSON.stringify(lines)).toContain(tenant.id);
    expect(sent.at(-1)?.headers.get('authorization')).toMatch(/^Bearer /);
  });

  it('refuses wrong paths, parameters and bodies at compile time; the registry refuses them too', async () => {
    const slug = newSlug();
    // @ts-expect-error: there is no such path.
    const noPath = await registry.GET('/v1/tenant');
    expect(noPath.response.status).toBe(404);

    // @ts-expect-error: `slug` is required.
    const noSlug = await registry.POST('/v1/tenants', { body: { name: 'No Slug' } });
    expect(noSlug.error?.code).toBe('validation_failed');

    // @ts-expect-error: `name` is a string.
    const numericName = await registry.POST('/v1/tenants', { body: { slug, name: 42 } });
    expect(numericName.error?.code).toBe('validation_failed');

    // A field the body does not have is not refused by the compiler (openapi-fetch infers the
    // options generically, and TypeScript checks excess properties only on a literal's own
    // declared type); the registry refuses it.
    const unknownField = await registry.POST('/v1/tenants', { body: { slug, name: 'Extra', colour: 'red' } });
    expect(unknownField.error?.code).toBe('validation_failed');

    // @ts-expect-error: `kind` is customer or demo.
    const badKind = await registry.POST('/v1/tenants', { body: { slug, name: 'Bad Kind', kind: 'partner' } });
    expect(badKind.error?.code).toBe('validation_failed');

    // @ts-expect-error: `status` is one of the lifecycle's statuses.
    const badStatus = await registry.GET('/v1/tenants', { params: { query: { status: 'sleeping' } } });
    expect(badStatus.error?.code).toBe('validation_failed');

    // @ts-expect-error: the path parameter `id` is required.
    const noId = await registry.GET('/v1/tenants/{id}', {});
    expect(noId.error?.code).toBe('validation_failed');

    // @ts-expect-error: PUT is no method of /v1/tenants.
    const wrongMethod = await registry.PUT('/v1/tenants', { body: { slug, name: 'Put' } });
    expect(wrongMethod.response.status).toBe(405);

    // @ts-expect-error: createTenant never answers key_revoked, so this comparison cannot be true.
    expect(noSlug.error?.code === 'key_revoked').toBe(false);
    // @ts-expect-error: a Tenant has no `colour`.
    expect((await unwrap(registry.GET('/v1/tenants', { params: { query: { q: slug } } }))).items[0]?.colour).toBeUndefined();
  });
});
