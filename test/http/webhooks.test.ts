// /v1/webhooks: create (the secret in that answer alone), list and read (never a secret), update,
// delete, rotate-secret, the delivery log, replay; URL refusals for every internal address form
// (and what the allowlist lets through); audit events for each change, none with a secret, and
// none of them a change event; 404s, validation and hostile bodies; the cap on endpoints.
// Deliveries themselves are test/events/webhook-delivery.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllowlist } from '../../src/events/url-guard.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { pruneFeed } from '../../src/store/events.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { problemOf, type Answer } from '../support/http.js';
import { startServer, type TestServer } from '../support/server.js';

type Webhook = {
  id: string;
  url: string;
  description: string | null;
  types: string[];
  tenant_id: string | null;
  enabled: boolean;
  last_seq: number;
  attempts: number;
  next_attempt_at: string | null;
  previous_secret_valid_until: string | null;
  created_at: string;
  updated_at: string;
  created_by: string;
  secret?: string;
};

const WEBHOOK_FIELDS = [
  'id', 'url', 'description', 'types', 'tenant_id', 'enabled', 'last_seq', 'attempts', 'next_attempt_at',
  'previous_secret_valid_until', 'created_at', 'updated_at', 'created_by',
].sort();
const NO_SUCH = '00000000-0000-4000-8000-000000000000';
// Public addresses (documentation ranges): accepted, never connected to here.
const PUBLIC_URL = 'https://203.0.113.10/hooks/registry';

const expectProblem = (answer: Answer, status: number, code: string) => {
  expect(answer.status, answer.text).toBe(status);
  expect(problemOf(answer)).toMatchObject({ status, code });
};

eachDriver('webhooks API', (driver) => {
  let server: TestServer;
  let tenant: Tenant;
  beforeAll(async () => {
    server = await startServer(driver, { webhooks: { allowPrivate: parseAllowlist(['127.0.0.2', '10.20.0.0/16', 'fd12:3456::/32']) } });
    tenant = await createTenant(server.api);
  });
  afterAll(() => server?.close());

  const create = (body: Record<string, unknown>, headers?: Record<string, string>) =>
    server.api.post<Webhook>('/v1/webhooks', { body, ...(headers && { headers }) });
  const createOk = async (body: Record<string, unknown> = {}) => {
    const answer = await create({ url: PUBLIC_URL, ...body });
    expect(answer.status, answer.text).toBe(201);
    return answer.body;
  };
  const auditOf = async (id: string) =>
    (await server.api.get<{ items: Array<Record<string, unknown>> }>(`/v1/audit?target_id=${id}&limit=200`)).body.items;

  describe('create and read', () => {
    it('answers 201 with Location, the webhook and its secret; it starts at the newest event', async () => {
      const head = (await server.db.query<{ last_seq: number }>(`SELECT last_seq FROM change_event_heads WHERE scope = 'global'`))[0]!.last_seq;
      const answer = await create({ url: PUBLIC_URL, description: '  Billing  ', types: ['tenant.*', 'entitlement.granted'], tenant_id: tenant.id });
      expect(answer.status, answer.text).toBe(201);
      const body = answer.body;
      expect(answer.headers.get('location')).toBe(`/v1/webhooks/${body.id}`);
      expect(Object.keys(body).sort()).toEqual([...WEBHOOK_FIELDS, 'secret'].sort());
      expect(body).toMatchObject({
        url: PUBLIC_URL,
        description: 'Billing',
        types: ['tenant.*', 'entitlement.granted'],
        tenant_id: tenant.id,
        enabled: true,
        last_seq: head,
        attempts: 0,
        next_attempt_at: null,
        previous_secret_valid_until: null,
        created_by: 'olga.operator',
      });
      // Standard Webhooks: whsec_ and the base64 of 24 to 64 random bytes.
      expect(body.secret).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
      expect(Buffer.from(body.secret!.slice(6), 'base64').length).toBe(32);
    });

    it('never shows the secret again: not in a read, the list, an edit or the audit log', async () => {
      const created = await createOk({ description: 'secret keeper' });
      const secret = created.secret!;
      const read = await server.api.get<Webhook>(`/v1/webhooks/${created.id}`);
      expect(read.status).toBe(200);
      expect(Object.keys(read.body).sort()).toEqual(WEBHOOK_FIELDS);
      const listed = await server.api.get<{ items: Webhook[] }>('/v1/webhooks');
      expect(listed.body.items.map((item) => item.id)).toContain(created.id);
      const edited = await server.api.request<Webhook>('PATCH', `/v1/webhooks/${created.id}`, { body: { description: 'renamed' } });
      const rotated = await server.api.post<Webhook>(`/v1/webhooks/${created.id}/rotate-secret`);
      for (const answer of [read, listed, edited]) expect(answer.text).not.toContain(secret.slice(6));
      expect(rotated.text).not.toContain(secret.slice(6));
      const audit = await auditOf(created.id);
      expect(audit.map((event) => event.action).sort()).toEqual(['webhook.created', 'webhook.secret_rotated', 'webhook.updated']);
      const written = JSON.stringify(audit);
      expect(written).not.toContain(secret.slice(6));
      expect(written).not.toContain(rotated.body.secret!.slice(6));
      expect(written).not.toContain('whsec_');
    });

    it('an Idempotency-Key retry answers the same webhook without its secret and creates no second one', async () => {
      const headers = { 'idempotency-key': `wh-${Math.random()}` };
      const first = await create({ url: PUBLIC_URL, description: 'once' }, headers);
      const again = await create({ url: PUBLIC_URL, description: 'once' }, headers);
      expect(first.status).toBe(201);
      expect(again.status).toBe(201);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect(again.body.id).toBe(first.body.id);
      expect(again.body.secret).toBeUndefined();
      const stored = await server.db.query<{ body: string }>('SELECT body FROM idempotency_keys WHERE key = $1', [headers['idempotency-key']]);
      expect(stored).toHaveLength(1);
      expect(stored[0]!.body).toContain(first.body.id);
      expect(stored[0]!.body).not.toContain('whsec_');
    });

    it('writes webhook.created to the platform chain, with the URL but not its query, and no change event', async () => {
      const chainBefore = (await server.db.query<{ last_seq: number }>(`SELECT last_seq FROM audit_chains WHERE chain_key = 'platform'`))[0]?.last_seq ?? 0;
      const created = await createOk({ url: 'https://203.0.113.11/in?token=do-not-log', types: ['api_key.*'] });
      const [event] = await auditOf(created.id);
      expect(event).toMatchObject({
        action: 'webhook.created',
        tenant_id: null,
        target: expect.objectContaining({ id: created.id, type: 'webhook' }) as unknown,
        fields: { url: 'https://203.0.113.11/in', types: 'api_key.*', tenant_id: '', enabled: 'true', from_seq: String(created.last_seq + 1) },
      });
      expect(JSON.stringify(event)).not.toContain('do-not-log');
      const [chain] = await server.db.query<{ last_seq: number }>(`SELECT last_seq FROM audit_chains WHERE chain_key = 'platform'`);
      expect(chain!.last_seq).toBe(chainBefore + 1);
      const feed = await server.api.get<{ items: Array<{ type: string }> }>('/v1/events?types=webhook.*&limit=500');
      expect(feed.status).toBe(200);
      expect(feed.body.items).toEqual([]);
    });

    it('from_seq starts at a kept event; one past the newest is refused', async () => {
      const created = await createOk({ from_seq: 1 });
      expect(created.last_seq).toBe(0);
      const head = (await server.db.query<{ last_seq: number }>(`SELECT last_seq FROM change_event_heads WHERE scope = 'global'`))[0]!.last_seq;
      const ahead = await create({ url: PUBLIC_URL, from_seq: head + 2 });
      expectProblem(ahead, 400, 'validation_failed');
      expect(problemOf(ahead).errors).toEqual([expect.objectContaining({ path: '/from_seq', in: 'body' })]);
    });

    it('a tenant filter must name a tenant', async () => {
      const answer = await create({ url: PUBLIC_URL, tenant_id: NO_SUCH });
      expectProblem(answer, 400, 'validation_failed');
      expect(problemOf(answer).errors).toEqual([expect.objectContaining({ path: '/tenant_id' })]);
    });
  });

  describe('URLs', () => {
    it.each([
      ['loopback', 'http://127.0.0.1:8080/hook'],
      ['loopback, elsewhere in 127/8', 'http://127.1.2.3/'],
      ['loopback written as a number', 'http://2130706433/'],
      ['private 10/8', 'http://10.0.0.5/hook'],
      ['private 172.16/12', 'http://172.20.1.1/'],
      ['private 192.168/16', 'http://192.168.1.10/'],
      ['the cloud metadata service', 'http://169.254.169.254/latest/meta-data/'],
      ['unspecified', 'http://0.0.0.0:9000/'],
      ['CGNAT', 'http://100.64.0.1/'],
      ['multicast', 'http://224.0.0.1/'],
      ['broadcast', 'http://255.255.255.255/'],
      ['IPv6 loopback', 'http://[::1]:8080/'],
      ['IPv6 unspecified', 'http://[::]/'],
      ['IPv4-mapped loopback', 'http://[::ffff:127.0.0.1]/'],
      ['IPv4-mapped metadata', 'http://[::ffff:a9fe:a9fe]/'],
      ['NAT64 private', 'http://[64:ff9b::10.0.0.1]/'],
      ['6to4 loopback', 'http://[2002:7f00:1::]/'],
      ['IPv6 unique local', 'http://[fd00::1]/'],
      ['IPv6 link-local', 'http://[fe80::1]/'],
      ['a name resolving to loopback', 'http://localhost:3000/hook'],
      ['a name that does not resolve', 'https://no-such-host.invalid/hook'],
    ])('refuses %s: 400 webhook_url_refused', async (_what, url) => {
      const answer = await create({ url });
      expectProblem(answer, 400, 'webhook_url_refused');
      expect(problemOf(answer).errors).toEqual([{ path: '/url', in: 'body', message: 'is refused' }]);
    });

    it.each([
      ['an allowed address', 'http://127.0.0.2:9/hook'],
      ['an address in an allowed range', 'http://10.20.3.4/hook'],
      ['an IPv6 address in an allowed range', 'http://[fd12:3456::1]/hook'],
      ['a public address', 'https://198.51.100.7:8443/hook?x=1'],
    ])('accepts %s', async (_what, url) => {
      expect((await create({ url })).status).toBe(201);
    });

    it.each([
      ['not a URL', 'hooks here'],
      ['another scheme', 'ftp://203.0.113.10/'],
      ['a file URL', 'file:///etc/passwd'],
      ['credentials', 'https://user:pass@203.0.113.10/'],
      ['a fragment', 'https://203.0.113.10/#x'],
      ['too long', `https://203.0.113.10/${'a'.repeat(2_000)}`],
      ['empty', ''],
    ])('refuses %s: 400 validation_failed on /url', async (_what, url) => {
      const answer = await create({ url });
      expectProblem(answer, 400, 'validation_failed');
      expect(problemOf(answer).errors).toEqual([expect.objectContaining({ path: '/url', in: 'body' })]);
    });

    it('PATCH checks a new URL the same way and leaves the webhook unchanged', async () => {
      const created = await createOk();
      expectProblem(await server.api.request('PATCH', `/v1/webhooks/${created.id}`, { body: { url: 'http://169.254.169.254/' } }), 400, 'webhook_url_refused');
      expect((await server.api.get<Webhook>(`/v1/webhooks/${created.id}`)).body.url).toBe(PUBLIC_URL);
    });
  });

  describe('validation and hostile bodies', () => {
    it.each([
      ['no url', {}],
      ['an unknown field', { url: PUBLIC_URL, secret: 'whsec_mine' }],
      ['a bad type filter', { url: PUBLIC_URL, types: ['Tenant Created'] }],
      ['a filter with a wildcard inside', { url: PUBLIC_URL, types: ['*.created'] }],
      ['too many filters', { url: PUBLIC_URL, types: Array.from({ length: 21 }, (_, i) => `t${i}.x`) }],
      ['repeated filters', { url: PUBLIC_URL, types: ['tenant.*', 'tenant.*'] }],
      ['a url that is not a string', { url: ['http://203.0.113.10/'] }],
      ['a control character in the description', { url: PUBLIC_URL, description: 'a\u0000b' }],
      ['from_seq 0', { url: PUBLIC_URL, from_seq: 0 }],
      ['from_seq as text', { url: PUBLIC_URL, from_seq: '5' }],
      ['a huge from_seq', { url: PUBLIC_URL, from_seq: 1e20 }],
      ['a tenant id that is not a uuid', { url: PUBLIC_URL, tenant_id: "1' OR '1'='1" }],
      ['enabled as text', { url: PUBLIC_URL, enabled: 'yes' }],
    ])('refuses %s: 400', async (_what, body) => {
      expectProblem(await create(body), 400, 'validation_failed');
    });

    it('refuses a body that is not an object, and a __proto__ smuggled in', async () => {
      expectProblem(await server.api.post('/v1/webhooks', { raw: '[1,2]', headers: { 'content-type': 'application/json' } }), 400, 'validation_failed');
      expectProblem(await server.api.post('/v1/webhooks', { raw: 'null', headers: { 'content-type': 'application/json' } }), 400, 'validation_failed');
      const smuggled = await server.api.post('/v1/webhooks', {
        raw: `{"url":"${PUBLIC_URL}","__proto__":{"enabled":false}}`,
        headers: { 'content-type': 'application/json' },
      });
      expect(smuggled.status).toBe(400);
    });

    it('PATCH takes at least one known field', async () => {
      const created = await createOk();
      expectProblem(await server.api.request('PATCH', `/v1/webhooks/${created.id}`, { body: {} }), 400, 'validation_failed');
      expectProblem(await server.api.request('PATCH', `/v1/webhooks/${created.id}`, { body: { last_seq: 0 } }), 400, 'validation_failed');
    });

    it('a deliveries cursor that was not issued is 400 invalid_cursor', async () => {
      const created = await createOk();
      // The last one is past PostgreSQL's bigint: it answered 500 once.
      const tooLarge = Buffer.from('["9999999999999999999"]').toString('base64url');
      for (const cursor of ['nope', Buffer.from('["-1"]').toString('base64url'), Buffer.from('[1]').toString('base64url'), tooLarge]) {
        expectProblem(await server.api.get(`/v1/webhooks/${created.id}/deliveries?cursor=${cursor}`), 400, 'invalid_cursor');
      }
    });
  });

  describe('update, rotate, replay, delete', () => {
    it('PATCH changes what it names and records old and new values; enabled false keeps the cursor', async () => {
      const created = await createOk({ types: ['tenant.*'] });
      const answer = await server.api.request<Webhook>('PATCH', `/v1/webhooks/${created.id}`, {
        body: { url: 'https://203.0.113.12/v2', types: ['api_key.created'], tenant_id: tenant.id, enabled: false, description: null },
      });
      expect(answer.status, answer.text).toBe(200);
      expect(answer.body).toMatchObject({ url: 'https://203.0.113.12/v2', types: ['api_key.created'], tenant_id: tenant.id, enabled: false, description: null, last_seq: created.last_seq });
      const updated = (await auditOf(created.id)).find((event) => event.action === 'webhook.updated');
      expect(updated?.fields).toEqual({
        url_old: PUBLIC_URL, url_new: 'https://203.0.113.12/v2',
        types_old: 'tenant.*', types_new: 'api_key.created',
        tenant_id_old: '', tenant_id_new: tenant.id,
        enabled_old: 'true', enabled_new: 'false',
      });
      const cleared = await server.api.request<Webhook>('PATCH', `/v1/webhooks/${created.id}`, { body: { tenant_id: null, types: [] } });
      expect(cleared.body).toMatchObject({ tenant_id: null, types: [] });
    });

    it('a new URL or enabling makes a backed-off endpoint due at once, keeping its count of attempts', async () => {
      const created = await createOk();
      const backOff = () => server.db.query(`UPDATE webhooks SET attempts = 4, next_attempt_at = now() + interval '5 hours' WHERE id = $1`, [created.id]);
      await backOff();
      const renamed = await server.api.request<Webhook>('PATCH', `/v1/webhooks/${created.id}`, { body: { description: 'only a name' } });
      expect(renamed.body).toMatchObject({ attempts: 4, next_attempt_at: expect.any(String) as unknown });
      const moved = await server.api.request<Webhook>('PATCH', `/v1/webhooks/${created.id}`, { body: { url: 'https://203.0.113.13/fixed' } });
      expect(moved.body).toMatchObject({ attempts: 4, next_attempt_at: null });
      await server.api.request('PATCH', `/v1/webhooks/${created.id}`, { body: { enabled: false } });
      await backOff();
      const enabled = await server.api.request<Webhook>('PATCH', `/v1/webhooks/${created.id}`, { body: { enabled: true } });
      expect(enabled.body).toMatchObject({ attempts: 4, next_attempt_at: null });
    });

    it('rotate-secret answers a new secret once; the old one signs for 24 more hours', async () => {
      const created = await createOk();
      const before = Date.now();
      const rotated = await server.api.post<Webhook>(`/v1/webhooks/${created.id}/rotate-secret`);
      expect(rotated.status).toBe(200);
      expect(rotated.body.secret).toMatch(/^whsec_/);
      expect(rotated.body.secret).not.toBe(created.secret);
      const until = Date.parse(rotated.body.previous_secret_valid_until!);
      expect(until).toBeGreaterThanOrEqual(before + 24 * 3_600_000 - 1_000);
      expect(until).toBeLessThanOrEqual(Date.now() + 24 * 3_600_000 + 1_000);
      const [row] = await server.db.query<{ secret: string; previous_secret: string }>('SELECT secret, previous_secret FROM webhooks WHERE id = $1', [created.id]);
      expect(row).toEqual({ secret: rotated.body.secret, previous_secret: created.secret });
    });

    it('replay moves the cursor to just before from_seq and resets the attempts; beyond the head is 400', async () => {
      const created = await createOk();
      await server.db.query('UPDATE webhooks SET attempts = 3, next_attempt_at = now() + interval \'1 hour\' WHERE id = $1', [created.id]);
      const replayed = await server.api.post<Webhook>(`/v1/webhooks/${created.id}/replay`, { body: { from_seq: 2 } });
      expect(replayed.status, replayed.text).toBe(200);
      expect(replayed.body).toMatchObject({ last_seq: 1, attempts: 0, next_attempt_at: null });
      const event = (await auditOf(created.id)).find((item) => item.action === 'webhook.replayed');
      expect(event?.fields).toEqual({ from_seq: '2', previous_last_seq: String(created.last_seq) });
      const head = (await server.db.query<{ last_seq: number }>(`SELECT last_seq FROM change_event_heads WHERE scope = 'global'`))[0]!.last_seq;
      expectProblem(await server.api.post(`/v1/webhooks/${created.id}/replay`, { body: { from_seq: head + 2 } }), 400, 'validation_failed');
      expect((await server.api.post(`/v1/webhooks/${created.id}/replay`, { body: { from_seq: head + 1 } })).status).toBe(200);
      expectProblem(await server.api.post(`/v1/webhooks/${created.id}/replay`, { body: {} }), 400, 'validation_failed');
    });

    it('DELETE answers 204 and records webhook.deleted; the webhook and its log are gone', async () => {
      const created = await createOk();
      await server.api.post(`/v1/webhooks/${created.id}/test`);
      const deleted = await server.api.request('DELETE', `/v1/webhooks/${created.id}`);
      expect(deleted.status).toBe(204);
      expectProblem(await server.api.get(`/v1/webhooks/${created.id}`), 404, 'not_found');
      expectProblem(await server.api.request('DELETE', `/v1/webhooks/${created.id}`), 404, 'not_found');
      expect((await auditOf(created.id)).map((event) => event.action)).toContain('webhook.deleted');
      expect(await server.db.query('SELECT 1 FROM webhook_deliveries WHERE webhook_id = $1', [created.id])).toEqual([]);
    });

    it.each([
      ['GET', ''],
      ['PATCH', ''],
      ['DELETE', ''],
      ['POST', '/rotate-secret'],
      ['GET', '/deliveries'],
      ['POST', '/replay'],
      ['POST', '/test'],
    ])('%s /v1/webhooks/{unknown id}%s answers 404 not_found', async (method, suffix) => {
      const body = suffix === '/replay' ? { from_seq: 1 } : method === 'PATCH' ? { enabled: false } : undefined;
      expectProblem(await server.api.request(method, `/v1/webhooks/${NO_SUCH}${suffix}`, body ? { body } : {}), 404, 'not_found');
    });

    it('an id that is not a uuid is 400', async () => {
      expectProblem(await server.api.get('/v1/webhooks/not-a-uuid'), 400, 'validation_failed');
    });

    it('the test ping of an unreachable endpoint answers how it failed, and the log says so', async () => {
      // Port 9 on an allowed loopback address: nothing listens, the connection is refused at once.
      const created = await createOk({ url: 'http://127.0.0.2:9/hook' });
      const ping = await server.api.post<{ outcome: string; error: string; http_status: number | null; id: string }>(`/v1/webhooks/${created.id}/test`);
      expect(ping.status).toBe(200);
      expect(ping.body).toMatchObject({ outcome: 'failed', error: 'connection_refused', http_status: null });
      const log = await server.api.get<{ items: Array<Record<string, unknown>> }>(`/v1/webhooks/${created.id}/deliveries`);
      expect(log.body.items).toEqual([
        expect.objectContaining({ event_id: ping.body.id, seq: null, type: 'webhook.test', outcome: 'failed', error: 'connection_refused', attempt: 1 }),
      ]);
    });

    it('replay from before the retention mark is 410 cursor_expired', async () => {
      for (let i = 0; i < 3; i++) await createTenant(server.api);
      const created = await createOk({ from_seq: 1 });
      // Retention deletes the two oldest events.
      expect(await pruneFeed(server.db, new Date(Date.now() + 60_000), 2)).toBe(2);
      const expired = await server.api.post(`/v1/webhooks/${created.id}/replay`, { body: { from_seq: 1 } });
      expectProblem(expired, 410, 'cursor_expired');
      expect(problemOf(expired).oldest_seq).toBe(3);
      expectProblem(await create({ url: PUBLIC_URL, from_seq: 2 }), 410, 'cursor_expired');
      expect((await server.api.post(`/v1/webhooks/${created.id}/replay`, { body: { from_seq: 3 } })).status).toBe(200);
    });
  });
});

eachDriver('webhooks API: allowlist by name, and the cap', (driver) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(driver, { webhooks: { allowPrivate: parseAllowlist(['localhost']) } });
  });
  afterAll(() => server?.close());

  it('a host allowed by name may resolve to loopback; its address typed in is still refused', async () => {
    expect((await server.api.post('/v1/webhooks', { body: { url: 'http://localhost:9/hook' } })).status).toBe(201);
    expectProblem(await server.api.post('/v1/webhooks', { body: { url: 'http://127.0.0.1:9/hook' } }), 400, 'webhook_url_refused');
  });

  it('keeps at most 100 webhooks: the next is 409 webhook_limit until one is deleted', async () => {
    const existing = (await server.api.get<{ items: Webhook[] }>('/v1/webhooks')).body.items.length;
    const ids: string[] = [];
    for (let i = existing; i < 100; i++) {
      const answer = await server.api.post<Webhook>('/v1/webhooks', { body: { url: `https://203.0.113.${(i % 200) + 1}/h` } });
      expect(answer.status).toBe(201);
      ids.push(answer.body.id);
    }
    const over = await server.api.post('/v1/webhooks', { body: { url: PUBLIC_URL } });
    expectProblem(over, 409, 'webhook_limit');
    expect((await server.api.get<{ items: Webhook[] }>('/v1/webhooks')).body.items).toHaveLength(100);
    expect((await server.api.request('DELETE', `/v1/webhooks/${ids[0]}`)).status).toBe(204);
    expect((await server.api.post('/v1/webhooks', { body: { url: PUBLIC_URL } })).status).toBe(201);
  });
});
