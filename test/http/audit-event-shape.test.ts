// POST /v1/audit and what it keeps: every field of an event stored and answered exactly as sent,
// with id, received and hash; invalid events refused with the field named; a repeated external_id
// answered with the first event; and the events the service writes about its own changes.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant, randomSlug } from '../support/factories.js';
import { problemOf } from '../support/http.js';
import { MINUTE_MS } from '../support/time.js';
import { auditApi, HEX64, type Body } from './audit-api-harness.js';

eachDriver('audit API: events', (driver) => {
  const h = auditApi(driver);
  const { expectValidationError, list, listAll, publish, tick } = h;

  describe('event shape', () => {
    it('stores every field exactly as sent and returns it with id, received and hash', async () => {
      const tenant = await createTenant(h.api);
      const received = tick();
      const body = {
        action: 'report.exported',
        crud: 'r',
        tenant_id: tenant.id,
        product: 'analytics',
        group: { id: tenant.id, name: 'Globex Corporation' },
        actor: {
          id: 'user-42',
          name: 'Dana Scully',
          href: 'https://idp.example.com/users/42',
          fields: { department: 'x-files', 'role:primary': 'agent' },
        },
        target: {
          id: 'report-7',
          name: 'Q3 revenue',
          href: 'https://app.example.com/reports/7',
          type: 'report',
          fields: { format: 'pdf', 'page.count': '12' },
        },
        source_ip: '203.0.113.7',
        created: '2026-11-20T08:15:30.123Z',
        description: 'Exported "Q3 revenue" as PDF, 12 pages',
        is_failure: true,
        is_anonymous: false,
        fields: { rows: '1200', 'filter.region': 'emea' },
        metadata: { user_agent: 'Mozilla/5.0 (X11; Linux x86_64)', 'trace-id': '4bf92f3577b34da6' },
        component: 'reports-api',
        version: '3.4.1',
        external_id: `ext-${randomUUID()}`,
      };
      const answer = await publish(body);
      expect(answer.status).toBe(201);
      expect(Object.keys(answer.body).sort()).toEqual(['hash', 'id']);
      expect(answer.body.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(answer.body.hash).toMatch(HEX64);

      const items = await listAll({ tenant_id: tenant.id, action: 'report.exported' });
      expect(items).toHaveLength(1);
      const event = items[0]!;
      // The chain's first event is tenant.created; this one follows it and links to its hash.
      const [first] = await listAll({ tenant_id: tenant.id, action: 'tenant.created' });
      expect(event).toEqual({
        ...body,
        id: answer.body.id,
        received: received.toISOString(),
        hash: answer.body.hash,
        publisher: { sub: 'operator-1', client: null },
        chain: { key: tenant.id, seq: 2, prev_hash: first!.hash, canonical_version: 2 },
      });
      expect(first!.publisher).toBeNull();
    });

    it('keeps an IPv6 source address as sent', async () => {
      const tenant = await createTenant(h.api);
      for (const ip of ['2001:db8::8a2e:370:7334', '::1', '::ffff:192.0.2.10']) {
        tick();
        const answer = await publish({ action: 'session.started', crud: 'c', tenant_id: tenant.id, actor: { id: 'u-1' }, source_ip: ip });
        expect(answer.status).toBe(201);
        const [event] = (await list({ tenant_id: tenant.id, action: 'session.started', limit: 1 })).body.items;
        expect(event).toMatchObject({ id: answer.body.id, source_ip: ip });
      }
    });

    it('answers absent optional fields as null, and defaults created to received', async () => {
      const tenant = await createTenant(h.api);
      const received = tick();
      const answer = await publish({ action: 'page.viewed', crud: 'r', tenant_id: tenant.id, is_anonymous: true });
      expect(answer.status).toBe(201);
      const [event] = await listAll({ tenant_id: tenant.id, action: 'page.viewed' });
      expect(event).toEqual({
        id: answer.body.id,
        tenant_id: tenant.id,
        action: 'page.viewed',
        crud: 'r',
        product: null,
        group: null,
        actor: null,
        target: null,
        source_ip: null,
        created: received.toISOString(),
        received: received.toISOString(),
        description: null,
        is_failure: false,
        is_anonymous: true,
        fields: null,
        metadata: null,
        component: null,
        version: null,
        external_id: null,
        hash: answer.body.hash,
        publisher: { sub: 'operator-1', client: null },
        chain: { key: tenant.id, seq: 2, prev_hash: expect.stringMatching(HEX64) as string, canonical_version: 2 },
      });
    });

    it('fills the optional members of actor, target and group with null', async () => {
      const tenant = await createTenant(h.api);
      const answer = await publish({
        action: 'member.invited',
        crud: 'c',
        tenant_id: tenant.id,
        group: { id: 'g-1' },
        actor: { id: 'u-1' },
        target: { id: 'u-2' },
      });
      expect(answer.status).toBe(201);
      const [event] = await listAll({ tenant_id: tenant.id, action: 'member.invited' });
      expect(event).toMatchObject({
        group: { id: 'g-1', name: null },
        actor: { id: 'u-1', name: null, href: null, fields: null },
        target: { id: 'u-2', name: null, href: null, type: null, fields: null },
      });
    });

    it('keeps an empty map apart from an absent one', async () => {
      const tenant = await createTenant(h.api);
      expect((await publish({ action: 'map.empty', crud: 'r', tenant_id: tenant.id, actor: { id: 'u' }, fields: {}, metadata: {} })).status).toBe(201);
      const [event] = await listAll({ tenant_id: tenant.id, action: 'map.empty' });
      expect(event).toMatchObject({ fields: {}, metadata: {} });
    });
  });

  describe('validation', () => {
    const valid = { action: 'doc.viewed', crud: 'r', actor: { id: 'u-1' } };
    const map = (entries: number, key = (i: number) => `k${i}`, value = 'v') =>
      Object.fromEntries(Array.from({ length: entries }, (_, i) => [key(i), value]));

    it.each<[string, Body, string]>([
      ['a missing action', { crud: 'r', actor: { id: 'u-1' } }, '/action'],
      ['a missing crud', { action: 'doc.viewed', actor: { id: 'u-1' } }, '/crud'],
      ['crud x', { ...valid, crud: 'x' }, '/crud'],
      ['no actor without is_anonymous', { action: 'doc.viewed', crud: 'r' }, '/actor'],
      ['no actor with is_anonymous false', { action: 'doc.viewed', crud: 'r', is_anonymous: false }, '/actor'],
      ['an actor without id', { ...valid, actor: { name: 'Dana' } }, '/actor/id'],
      ['a target without id', { ...valid, target: { name: 'Report', type: 'report' } }, '/target/id'],
      ['a group without id', { ...valid, group: { name: 'Globex' } }, '/group/id'],
      ['source_ip 1.2.3.999', { ...valid, source_ip: '1.2.3.999' }, '/source_ip'],
      ['source_ip not-an-ip', { ...valid, source_ip: 'not-an-ip' }, '/source_ip'],
      ['source_ip ::g', { ...valid, source_ip: '::g' }, '/source_ip'],
      ['fields with 51 keys', { ...valid, fields: map(51) }, '/fields'],
      ['metadata with 51 keys', { ...valid, metadata: map(51) }, '/metadata'],
      ['a fields key over 40 characters', { ...valid, fields: { ['k'.repeat(41)]: 'v' } }, '/fields'],
      ['a metadata key over 40 characters', { ...valid, metadata: { ['k'.repeat(41)]: 'v' } }, '/metadata'],
      ['a fields value over 500 characters', { ...valid, fields: { note: 'v'.repeat(501) } }, '/fields/note'],
      ['a metadata value over 500 characters', { ...valid, metadata: { note: 'v'.repeat(501) } }, '/metadata/note'],
      ['a non-string fields value', { ...valid, fields: { count: 3 } }, '/fields/count'],
      ['a non-string metadata value', { ...valid, metadata: { nested: { a: 'b' } } }, '/metadata/nested'],
      ['a non-string actor fields value', { ...valid, actor: { id: 'u-1', fields: { admin: true } } }, '/actor/fields/admin'],
      ['an unknown top-level field', { ...valid, severity: 'high' }, '/severity'],
      ['an unknown field inside actor', { ...valid, actor: { id: 'u-1', email: 'dana@example.com' } }, '/actor/email'],
      ['an unknown field inside target', { ...valid, target: { id: 't-1', owner: 'x' } }, '/target/owner'],
      ['an action with a space', { ...valid, action: 'doc viewed' }, '/action'],
      ['an action with *', { ...valid, action: 'doc.*' }, '/action'],
      ['created not a date-time', { ...valid, created: 'yesterday' }, '/created'],
      ['created a date without time', { ...valid, created: '2026-11-27' }, '/created'],
      ['tenant_id not a uuid', { ...valid, tenant_id: 'not-a-uuid' }, '/tenant_id'],
      ['is_failure as a string', { ...valid, is_failure: 'true' }, '/is_failure'],
    ])('refuses %s: 400 naming the field', async (_case, body, path) => {
      expectValidationError(await h.api.post('/v1/audit', { body }), path, 'body');
    });

    it('accepts an event without actor when is_anonymous is true', async () => {
      const action = `anon.${randomSlug('a')}`;
      const answer = await publish({ action, crud: 'r', is_anonymous: true });
      expect(answer.status).toBe(201);
      expect(await listAll({ action })).toHaveLength(1);
    });

    it('accepts maps at their limits: 50 keys, 40-character keys, 500-character values', async () => {
      const fields = map(50, (i) => `${String(i).padStart(2, '0')}${'k'.repeat(38)}`, 'v'.repeat(500));
      const action = `limits.${randomSlug('l')}`;
      // One map at the limits: three would exceed the 64 KiB body limit of the test server.
      const answer = await publish({ ...valid, action, fields });
      expect(answer.status).toBe(201);
      const [event] = await listAll({ action });
      expect(event?.fields).toEqual(fields);
    });

    it('answers 404 not_found for a tenant that does not exist, and appends nothing', async () => {
      const tenantId = randomUUID();
      const action = `ghost.${randomSlug('g')}`;
      const answer = await h.api.post('/v1/audit', { body: { ...valid, action, tenant_id: tenantId } });
      expect(answer.status).toBe(404);
      expect(problemOf(answer).code).toBe('not_found');
      expect(await listAll({ action })).toEqual([]);
      expect(await listAll({ tenant_id: tenantId })).toEqual([]);
    });
  });

  describe('idempotency by external_id', () => {
    it('answers a retry 200 with the original id and hash, and stores one event', async () => {
      const tenant = await createTenant(h.api);
      const body = { action: 'invoice.paid', crud: 'u', tenant_id: tenant.id, actor: { id: 'stripe' }, external_id: 'evt_1' };
      const first = await publish({ ...body, description: 'first' });
      expect(first.status).toBe(201);
      expect(first.headers.get('idempotent-replayed')).toBeNull();
      const retry = await publish({ ...body, description: 'retry' });
      expect(retry.status).toBe(200);
      expect(retry.body).toEqual(first.body);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      const stored = await listAll({ tenant_id: tenant.id, action: 'invoice.paid' });
      expect(stored.map((e) => [e.id, e.description])).toEqual([[first.body.id, 'first']]);
    });

    it('keeps one external_id apart for two tenants', async () => {
      const [a, b] = [await createTenant(h.api), await createTenant(h.api)];
      const answers = await Promise.all(
        [a, b].map((tenant) => publish({ action: 'invoice.paid', crud: 'u', tenant_id: tenant.id, actor: { id: 'stripe' }, external_id: 'evt_shared' })),
      );
      expect(answers.map((answer) => answer.status)).toEqual([201, 201]);
      expect(answers[0]!.body.id).not.toBe(answers[1]!.body.id);
      expect((await listAll({ tenant_id: a.id, action: 'invoice.paid' })).map((e) => e.id)).toEqual([answers[0]!.body.id]);
      expect((await listAll({ tenant_id: b.id, action: 'invoice.paid' })).map((e) => e.id)).toEqual([answers[1]!.body.id]);
    });

    it('lets exactly one of 10 concurrent publishes with one external_id append', async () => {
      const tenant = await createTenant(h.api);
      const answers = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          publish({ action: 'invoice.paid', crud: 'u', tenant_id: tenant.id, actor: { id: `worker-${i}` }, external_id: 'evt_race' }),
        ),
      );
      expect(answers.map((answer) => answer.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
      expect(new Set(answers.map((answer) => answer.body.id)).size).toBe(1);
      expect(new Set(answers.map((answer) => answer.body.hash)).size).toBe(1);
      expect(answers.filter((answer) => answer.headers.get('idempotent-replayed') === 'true')).toHaveLength(9);
      const stored = await listAll({ tenant_id: tenant.id, action: 'invoice.paid' });
      expect(stored.map((e) => e.id)).toEqual([answers[0]!.body.id]);
    });
  });

  describe('events the service writes itself', () => {
    const eventsOf = (tenant: Tenant) => listAll({ tenant_id: tenant.id });

    it('writes tenant.created, tenant.activated and tenant.cancelled with the change', async () => {
      const createdAt = tick(MINUTE_MS);
      const tenant = await createTenant(h.api);
      const activatedAt = tick(MINUTE_MS);
      expect((await h.api.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(200);
      const cancelledAt = tick(MINUTE_MS);
      expect((await h.api.post(`/v1/tenants/${tenant.id}/cancel`)).status).toBe(200);

      const events = await eventsOf(tenant);
      expect(events.map((e) => [e.action, e.crud, e.created])).toEqual([
        ['tenant.cancelled', 'u', cancelledAt.toISOString()],
        ['tenant.activated', 'u', activatedAt.toISOString()],
        ['tenant.created', 'c', createdAt.toISOString()],
      ]);
      for (const event of events) {
        expect(event).toMatchObject({
          tenant_id: tenant.id,
          group: { id: tenant.id, name: tenant.name },
          actor: { id: 'operator-1', name: 'olga.operator', fields: { kind: 'user' } },
          target: { id: tenant.id, type: 'tenant', name: tenant.slug },
          component: 'tenant-registry',
          is_failure: false,
          is_anonymous: false,
        });
        expect(['127.0.0.1', '::ffff:127.0.0.1']).toContain(event.source_ip);
        expect(event.hash).toMatch(HEX64);
      }
      expect(events.map((e) => e.fields)).toEqual([
        { from_status: 'active', to_status: 'frozen' },
        { from_status: 'trial', to_status: 'active' },
        { status: 'trial', kind: 'customer' },
      ]);
    });

    it('writes no event for a refused transition', async () => {
      const tenant = await createTenant(h.api);
      tick();
      expect((await h.api.post(`/v1/tenants/${tenant.id}/cancel`)).status).toBe(200);
      expect((await h.api.post(`/v1/tenants/${tenant.id}/cancel`)).status).toBe(409);
      expect((await eventsOf(tenant)).map((e) => e.action)).toEqual(['tenant.cancelled', 'tenant.created']);

      const demo = await createTenant(h.api, { kind: 'demo' });
      expect((await h.api.post(`/v1/tenants/${demo.id}/activate`)).status).toBe(409);
      expect((await eventsOf(demo)).map((e) => e.action)).toEqual(['tenant.created']);
    });

    it('writes no event for a duplicate slug', async () => {
      const tenant = await createTenant(h.api);
      const before = await listAll({ action: 'tenant.created' });
      const again = await h.api.post('/v1/tenants', { body: { slug: tenant.slug, name: 'Impostor' } });
      expect(again.status).toBe(409);
      const after = await listAll({ action: 'tenant.created' });
      expect(after.map((e) => e.id)).toEqual(before.map((e) => e.id));
      expect(after.filter((e) => e.target?.name === tenant.slug)).toHaveLength(1);
    });
  });
});
