// Publishing through POST /v1/audit: who published is recorded (and hashed), the registry's own
// action namespaces are closed to publishers, `created` stays near the time of receipt, and no
// event larger than MAX_EVENT_BYTES is stored.
import { randomUUID } from 'node:crypto';
import type { JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CREATED_MAX_AHEAD_MS,
  CREATED_MAX_BEHIND_MS,
  MAX_EVENT_BYTES,
  PLATFORM_CHAIN,
  eventBytes,
  hashRecord,
  toRecord,
  type AuditEventInput,
  type AuditPublisher,
} from '../../src/domain/audit.js';
import { fromAuditEvent } from '../../src/http/audit-view.js';
import type { AuditEvent } from '../../src/http/schemas/audit.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant, randomSlug } from '../support/factories.js';
import { problemOf, type Answer, type Client } from '../support/http.js';
import { identities, ROLE_NAMES } from '../support/identities.js';
import { startServer, type TestServer } from '../support/server.js';
import { iso, MINUTE_MS, START, TestClock } from '../support/time.js';

interface Appended {
  id: string;
  hash: string;
  [member: string]: unknown;
}
interface Page {
  items: AuditEvent[];
  next_cursor: string | null;
}


/** A registry_service token issued to a client that names itself by azp and by client_id. */
const serviceWithAzp = (): JWTPayload => ({
  sub: 'service-account-reports',
  azp: 'reports-backend',
  client_id: 'reports-legacy-id',
  resource_access: { 'tenant-registry': { roles: [ROLE_NAMES.service] } },
});
/** An operator whose token was issued to the admin console (azp). */
const adminWithAzp = (): JWTPayload => ({ ...identities.platformAdmin(), sub: 'operator-2', azp: 'admin-console' });

/** A string map of `count` entries whose values are `value`, keys k000, k001, ... */
const bigMap = (count: number, value: string, prefix = 'k') =>
  Object.fromEntries(Array.from({ length: count }, (_, i) => [`${prefix}${String(i).padStart(3, '0')}`, value]));

eachDriver('audit publishing', (driver) => {
  let server: TestServer;
  let api: Client;
  const clock = new TestClock();

  beforeAll(async () => {
    server = await startServer(driver, { clock: clock.now });
    api = server.api;
  });
  afterAll(() => server.close());

  const publishAs = (client: Client, body: object) => client.post<Appended>('/v1/audit', { body });

  /** How many events a chain holds, by its rows and by its head (both must agree). */
  async function chainLength(chainKey: string): Promise<number> {
    const [rows] = await server.db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log WHERE chain_key = $1', [chainKey]);
    const [head] = await server.db.query<{ last_seq: number }>('SELECT last_seq FROM audit_chains WHERE chain_key = $1', [chainKey]);
    expect(head?.last_seq ?? 0).toBe(rows!.n);
    return rows!.n;
  }

  async function listAll(query: Record<string, string>): Promise<AuditEvent[]> {
    const items: AuditEvent[] = [];
    let cursor: string | null = null;
    do {
      const params = new URLSearchParams({ ...query, limit: '200', ...(cursor ? { cursor } : {}) });
      const answer: Answer<Page> = await api.get<Page>(`/v1/audit?${params.toString()}`);
      expect(answer.status, answer.text).toBe(200);
      items.push(...answer.body.items);
      cursor = answer.body.next_cursor;
    } while (cursor !== null);
    return items;
  }

  async function exportNdjson(query: Record<string, string>): Promise<AuditEvent[]> {
    const response = await fetch(new URL(`/v1/audit/export?${new URLSearchParams(query).toString()}`, server.url), {
      headers: { authorization: `Bearer ${api.token}` },
    });
    const text = await response.text();
    expect(response.status, text).toBe(200);
    return text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as AuditEvent);
  }

  const eventById = async (tenantId: string, id: string): Promise<AuditEvent> => {
    const found = (await listAll({ tenant_id: tenantId })).find((event) => event.id === id);
    if (!found) throw new Error(`event ${id} not listed`);
    return found;
  };

  describe('the publisher', () => {
    let tenant: Tenant;
    let published: Array<{ id: string; publisher: AuditPublisher }>;

    beforeAll(async () => {
      tenant = await createTenant(api);
      expect((await api.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(200);
      const callers: Array<[JWTPayload, AuditPublisher]> = [
        [identities.service(), { sub: 'service-account-portal', client: 'portal' }],
        [serviceWithAzp(), { sub: 'service-account-reports', client: 'reports-backend' }],
        [identities.platformAdmin(), { sub: 'operator-1', client: null }],
        [adminWithAzp(), { sub: 'operator-2', client: 'admin-console' }],
      ];
      published = [];
      for (const [i, [claims, publisher]] of callers.entries()) {
        const answer = await publishAs(await server.as(claims), {
          action: 'document.shared',
          crud: 'u',
          tenant_id: tenant.id,
          actor: { id: `user-${i}` },
          description: `published by ${publisher.sub}`,
        });
        expect(answer.status, answer.text).toBe(201);
        published.push({ id: answer.body.id, publisher });
      }
    });

    it('records the token subject and its client (azp, else client_id, else null) on each published event, in the list', async () => {
      const listed = await listAll({ tenant_id: tenant.id, action: 'document.shared' });
      expect(listed).toHaveLength(published.length);
      for (const { id, publisher } of published) {
        expect(listed.find((event) => event.id === id)?.publisher).toEqual(publisher);
      }
    });

    it('carries the same publishers in the NDJSON export', async () => {
      const exported = await exportNdjson({ tenant_id: tenant.id, action: 'document.shared' });
      expect(exported.map((event) => [event.id, event.publisher]).sort()).toEqual(
        published.map(({ id, publisher }) => [id, publisher]).sort(),
      );
    });

    it("leaves publisher null on the registry's own events, in the list and in the export", async () => {
      for (const events of [await listAll({ tenant_id: tenant.id, action: 'tenant.*' }), await exportNdjson({ tenant_id: tenant.id, action: 'tenant.*' })]) {
        expect(events.map((event) => event.action).sort()).toEqual(['tenant.activated', 'tenant.created']);
        for (const event of events) expect(event.publisher).toBeNull();
      }
    });

    it('covers the publisher with the hash: the chain verifies, and another publisher would give another hash', async () => {
      expect((await api.get(`/v1/audit/verify?tenant_id=${tenant.id}`)).body).toEqual({ ok: true, checked: 2 + published.length });
      for (const { id } of published) {
        const record = fromAuditEvent(await eventById(tenant.id, id));
        expect(record.canonical_version).toBe(2);
        expect(hashRecord(record)).toBe(record.hash);
        expect(hashRecord({ ...record, publisher: { sub: 'someone-else', client: record.publisher!.client } })).not.toBe(record.hash);
        expect(hashRecord({ ...record, publisher: null })).not.toBe(record.hash);
      }
    });

    it('keeps the first publisher when another caller retries with the same external_id', async () => {
      const body = { action: 'invoice.sent', crud: 'c', tenant_id: tenant.id, actor: { id: 'billing' }, external_id: `ext-${randomUUID()}` };
      const first = await publishAs(await server.as(identities.service()), body);
      expect(first.status).toBe(201);
      const retry = await publishAs(await server.as(serviceWithAzp()), body);
      expect(retry.status).toBe(200);
      expect(retry.body).toEqual(first.body);
      expect((await eventById(tenant.id, first.body.id)).publisher).toEqual({ sub: 'service-account-portal', client: 'portal' });
    });

    it.each<[string, unknown]>([
      ['a publisher object', { sub: 'someone-else', client: 'forged' }],
      ['publisher null', null],
    ])('refuses a body that sets %s: 400 validation_failed at /publisher, nothing appended', async (_case, publisher) => {
      const before = await chainLength(tenant.id);
      const answer = await publishAs(await server.as(identities.service()), {
        action: 'document.shared',
        crud: 'u',
        tenant_id: tenant.id,
        actor: { id: 'u-1' },
        publisher,
      });
      expect(answer.status).toBe(400);
      const problem = problemOf(answer);
      expect(problem.code).toBe('validation_failed');
      expect(problem.errors).toContainEqual(expect.objectContaining({ path: '/publisher', in: 'body' }));
      expect(await chainLength(tenant.id)).toBe(before);
    });
  });

  describe('reserved action namespaces', () => {
    let tenant: Tenant;
    beforeAll(async () => {
      tenant = await createTenant(api);
    });

    const reserved = [
      'tenant.activated',
      'tenant',
      'Tenant:activated',
      'TENANT/deleted',
      'tenant.created',
      'api_key.created',
      'api-key.revoked',
      'Api-Key:rotated',
      'entitlement.granted',
      'Entitlement/revoked',
      'catalog.product_requested',
      'keycloak.invite_sent',
      'KEYCLOAK:org_created',
    ];
    const callers: Array<[string, () => JWTPayload]> = [
      ['a service token', identities.service],
      ['a platform_admin token', identities.platformAdmin],
    ];

    describe.each(callers)('published with %s', (_caller, claims) => {
      it.each(reserved)('refuses %s: 400 reserved_action, problem+json, nothing appended to the tenant chain', async (action) => {
        const before = await chainLength(tenant.id);
        const answer = await publishAs(await server.as(claims()), { action, crud: 'u', tenant_id: tenant.id, actor: { id: 'u-1' } });
        expect(answer.status).toBe(400);
        expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        const problem = problemOf(answer);
        expect(problem.code).toBe('reserved_action');
        expect(problem.errors).toContainEqual(expect.objectContaining({ path: '/action', in: 'body' }));
        expect(await chainLength(tenant.id)).toBe(before);
        expect(await listAll({ tenant_id: tenant.id, action })).toEqual(action === 'tenant.created' ? [expect.objectContaining({ publisher: null })] : []);
      });

      it('refuses a reserved action on the platform chain too, and for a tenant that does not exist (before the lookup)', async () => {
        const platformBefore = await chainLength(PLATFORM_CHAIN);
        const client = await server.as(claims());
        const platform = await publishAs(client, { action: 'tenant.deleted', crud: 'd', actor: { id: 'u-1' } });
        expect(platform.status).toBe(400);
        expect(problemOf(platform).code).toBe('reserved_action');
        expect(await chainLength(PLATFORM_CHAIN)).toBe(platformBefore);
        const ghost = await publishAs(client, { action: 'api_key.created', crud: 'c', tenant_id: randomUUID(), actor: { id: 'u-1' } });
        expect(ghost.status).toBe(400);
        expect(problemOf(ghost).code).toBe('reserved_action');
      });
    });

    it.each([
      'tenants.listed',
      'document.tenant.moved',
      'apikey.created',
      'tenant_admin.invited',
      'my-tenant.created',
      'entitlements.viewed',
      'catalogue.browsed',
      'keycloak-sync.finished',
      'report:tenant',
    ])('accepts %s, whose first word is not a reserved namespace', async (action) => {
      const before = await chainLength(tenant.id);
      const answer = await publishAs(await server.as(identities.service()), { action, crud: 'r', tenant_id: tenant.id, actor: { id: 'u-1' } });
      expect(answer.status, answer.text).toBe(201);
      expect(await chainLength(tenant.id)).toBe(before + 1);
      expect((await listAll({ tenant_id: tenant.id, action })).map((event) => event.id)).toEqual([answer.body.id]);
    });
  });

  describe('created near the time of receipt', () => {
    let tenant: Tenant;
    beforeAll(async () => {
      clock.reset();
      tenant = await createTenant(api);
    });

    const publishCreated = (created: string) =>
      publishAs(api, { action: 'clock.checked', crud: 'r', tenant_id: tenant.id, actor: { id: 'u-1' }, created });

    const expectRefused = async (created: string) => {
      const before = await chainLength(tenant.id);
      const answer = await publishCreated(created);
      expect(answer.status, `created ${created}`).toBe(400);
      const problem = problemOf(answer);
      expect(problem.code).toBe('validation_failed');
      expect(problem.errors).toContainEqual(expect.objectContaining({ path: '/created', in: 'body' }));
      expect(await chainLength(tenant.id)).toBe(before);
    };

    const expectAccepted = async (created: string, stored = created) => {
      const answer = await publishCreated(created);
      expect(answer.status, `created ${created}: ${answer.text}`).toBe(201);
      expect((await eventById(tenant.id, answer.body.id)).created).toBe(stored);
    };

    it('accepts created exactly 30 days before and exactly 5 minutes after receipt', async () => {
      await expectAccepted(iso(clock.ms - CREATED_MAX_BEHIND_MS));
      await expectAccepted(iso(clock.ms + CREATED_MAX_AHEAD_MS));
      await expectAccepted(iso(clock.ms));
    });

    it('refuses created one millisecond outside either bound: 400 at /created, nothing appended', async () => {
      await expectRefused(iso(clock.ms - CREATED_MAX_BEHIND_MS - 1));
      await expectRefused(iso(clock.ms + CREATED_MAX_AHEAD_MS + 1));
    });

    it('applies the bounds to the instant, whatever offset the time is written with', async () => {
      // START + 5 min, written at UTC+01:00 and at UTC-05:30.
      await expectAccepted('2026-11-27T11:05:00.000+01:00', iso(START + CREATED_MAX_AHEAD_MS));
      await expectAccepted('2026-11-27T04:35:00-05:30', iso(START + CREATED_MAX_AHEAD_MS));
      await expectRefused('2026-11-27T11:05:00.001+01:00');
      await expectRefused('2026-10-28T09:59:59.999Z');
    });

    it.each(['9999-12-31T23:59:59.999Z', '2100-01-01T00:00:00Z', '1970-01-01T00:00:00Z', '0001-01-01T00:00:00Z'])(
      'refuses %s, far outside the window',
      async (created) => {
        await expectRefused(created);
      },
    );

    it('keeps the newest-first log headed by real events: an event dated 9999 is refused, not put on top', async () => {
      await expectRefused('9999-12-31T23:59:59.999Z');
      const recent = await publishAs(api, { action: 'clock.recent', crud: 'r', tenant_id: tenant.id, actor: { id: 'u-1' } });
      expect(recent.status).toBe(201);
      const [top] = (await api.get<Page>(`/v1/audit?tenant_id=${tenant.id}&limit=1`)).body.items;
      expect(Date.parse(top!.created)).toBeLessThanOrEqual(clock.ms + CREATED_MAX_AHEAD_MS);
      const [globalTop] = (await api.get<Page>('/v1/audit?limit=1')).body.items;
      expect(Date.parse(globalTop!.created)).toBeLessThanOrEqual(clock.ms + CREATED_MAX_AHEAD_MS);
    });

    it("measures the window from the registry's clock at receipt, not from the publisher's", async () => {
      const tenMinutesAhead = iso(clock.ms + 10 * MINUTE_MS);
      await expectRefused(tenMinutesAhead);
      clock.advance(6 * MINUTE_MS);
      await expectAccepted(tenMinutesAhead);
      // And the far edge moves with it: what was 30 days back is now 30 days and 6 minutes back.
      await expectRefused(iso(START - CREATED_MAX_BEHIND_MS));
    });
  });

  describe('size cap', () => {
    let tenant: Tenant;
    const publisher: AuditPublisher = { sub: 'operator-1', client: null };

    beforeAll(async () => {
      clock.set(START + 60 * MINUTE_MS);
      tenant = await createTenant(api);
    });

    /** The canonical size the event will have once stored as the chain's next event (any UUID has the same length). */
    async function storedSizeOf(body: AuditEventInput): Promise<number> {
      const seq = (await chainLength(body.tenant_id ?? PLATFORM_CHAIN)) + 1;
      return eventBytes(toRecord(body, { id: randomUUID(), chainSeq: seq, prevHash: 'f'.repeat(64), received: clock.now(), publisher }));
    }

    /**
     * The size the event would have at the largest position a chain can reach (seq 2^53 - 1, after
     * a hash): the size it is admitted by, so that it fits wherever it lands.
     */
    const largestSizeOf = async (body: AuditEventInput): Promise<number> =>
      eventBytes(toRecord(body, { id: randomUUID(), chainSeq: Number.MAX_SAFE_INTEGER, prevHash: 'f'.repeat(64), received: clock.now(), publisher }));

    /** An event whose canonical form, as `measure` measures it, is exactly `bytes` long (ASCII only). */
    async function eventOfSize(bytes: number, measure = storedSizeOf): Promise<AuditEventInput> {
      const event: AuditEventInput = {
        action: `size.${randomSlug('s')}`,
        crud: 'c',
        tenant_id: tenant.id,
        actor: { id: 'u-1' },
        fields: bigMap(50, 'f'.repeat(500)),
        metadata: {},
        description: 'x',
      };
      // Whole 500-character entries up to within a description's reach, then the description.
      for (let i = 0; (await measure(event)) + 1999 < bytes; i += 1) event.metadata![`m${String(i).padStart(3, '0')}`] = 'm'.repeat(500);
      event.description = 'x'.repeat(bytes - (await measure(event)) + 1);
      expect(await measure(event)).toBe(bytes);
      return event;
    }

    const expectTooLarge = async (body: AuditEventInput) => {
      const before = await chainLength(tenant.id);
      const answer = await publishAs(api, body);
      expect(answer.status, answer.text).toBe(413);
      expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(problemOf(answer).code).toBe('event_too_large');
      expect(await chainLength(tenant.id)).toBe(before);
      expect(await listAll({ tenant_id: tenant.id, action: body.action })).toEqual([]);
    };

    it('accepts an event just under the cap, and stores it whole at the size it was measured', async () => {
      const body = await eventOfSize(MAX_EVENT_BYTES - 100);
      const answer = await publishAs(api, body);
      expect(answer.status, answer.text).toBe(201);
      const stored = await eventById(tenant.id, answer.body.id);
      expect(stored.description).toBe(body.description);
      expect(eventBytes(fromAuditEvent(stored))).toBe(MAX_EVENT_BYTES - 100);
    });

    it('accepts an event that fits at any chain position with exactly MAX_EVENT_BYTES, and refuses one byte more', async () => {
      const fits = await eventOfSize(MAX_EVENT_BYTES, largestSizeOf);
      const answer = await publishAs(api, fits);
      expect(answer.status, answer.text).toBe(201);
      // Stored at a real (short) position, it is smaller still.
      expect(eventBytes(fromAuditEvent(await eventById(tenant.id, answer.body.id)))).toBeLessThan(MAX_EVENT_BYTES);
      await expectTooLarge(await eventOfSize(MAX_EVENT_BYTES + 1, largestSizeOf));
    });

    it('refuses an event whose stored canonical form would be one byte over MAX_EVENT_BYTES', async () => {
      await expectTooLarge(await eventOfSize(MAX_EVENT_BYTES + 1));
    });

    it('refuses an event well over the cap (both maps full): 413 event_too_large, nothing appended', async () => {
      await expectTooLarge({
        action: `size.${randomSlug('s')}`,
        crud: 'c',
        tenant_id: tenant.id,
        actor: { id: 'u-1' },
        fields: bigMap(50, 'f'.repeat(500)),
        metadata: bigMap(50, 'm'.repeat(500)),
      });
    });

    it('refuses an event 100 bytes over the cap', async () => {
      await expectTooLarge(await eventOfSize(MAX_EVENT_BYTES + 100));
    });

    it('counts UTF-8 bytes, not characters: 30,000 characters taking 40,000 bytes are refused', async () => {
      // 50 ASCII values of 500 characters, and 10 of 500 three-byte characters.
      const body: AuditEventInput = {
        action: `size.${randomSlug('s')}`,
        crud: 'c',
        tenant_id: tenant.id,
        actor: { id: 'u-1' },
        fields: bigMap(50, 'f'.repeat(500)),
        metadata: bigMap(10, '€'.repeat(500)),
      };
      const text = JSON.stringify(toRecord(body, { id: randomUUID(), chainSeq: 1, prevHash: null, received: clock.now() }));
      expect(text.length).toBeLessThan(MAX_EVENT_BYTES);
      expect(Buffer.byteLength(text)).toBeGreaterThan(MAX_EVENT_BYTES);
      await expectTooLarge(body);
    });
  });
});
