// /v1/api-keys: create (the plaintext in that answer alone, its HMAC under the pepper stored),
// list (newest first, never a secret), read one key (its metadata alone, to its own tenant
// alone), revoke (idempotent, and verify says REVOKED); and no plaintext ever shown again, in any
// list, rotation, audit event or error. Changing a key is api-key-narrowing.test.ts.
import { createHmac } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../src/domain/api-key.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import type { Answer } from '../support/http.js';
import { TEST_PEPPER } from '../support/server.js';
import { identities } from '../support/identities.js';
import { DAY_MS, iso, START } from '../support/time.js';
import { apiKeysApi, API_KEY_FIELDS, NO_SUCH_KEY, NO_SUCH_TENANT, type CreatedKey } from './api-keys-harness.js';

eachDriver('API keys', (driver) => {
  const h = apiKeysApi(driver);
  const { clock, create, createKey, list, listed, get, revoke, rotate, verify, events, expectProblem, storedRow } = h;

  describe('POST /v1/api-keys', () => {
    let tenant: Tenant;
    beforeAll(async () => {
      tenant = await createTenant(h.api);
    });

    it('answers 201 with Location, the key object and its plaintext', async () => {
      clock.set(START + 5_000);
      const expiresAt = iso(START + 30 * DAY_MS);
      const answer = await create({
        tenant_id: tenant.id,
        name: '  Nightly export  ',
        scopes: ['documents:read', 'reports.export'],
        products: ['compliance', 'api'],
        expires_at: expiresAt,
      });
      expect(answer.status, answer.text).toBe(201);
      const body = answer.body;
      expect(answer.headers.get('location')).toBe(`/v1/api-keys/${body.id}`);
      expect(Object.keys(body).sort()).toEqual([...API_KEY_FIELDS, 'key'].sort());
      expect(body.key).toMatch(/^bp_[0-9A-Za-z]{39}$/);
      expect(body).toEqual({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/) as string,
        tenant_id: tenant.id,
        name: 'Nightly export',
        prefix: body.key.slice(0, 7),
        last4: body.key.slice(-4),
        scopes: ['documents:read', 'reports.export'],
        products: ['compliance', 'api'],
        created_at: iso(START + 5_000),
        expires_at: expiresAt,
        last_used_at: null,
        revoked_at: null,
        key: body.key,
      });
    });

    it('stores the HMAC of the key under the pepper, and the plaintext nowhere', async () => {
      const created = await createKey(tenant.id, { scopes: ['a:b'], products: ['risk'], expires_at: iso(START + 3_600_000) });
      const row = await storedRow(created.id);
      const expected = createHmac('sha256', TEST_PEPPER).update(created.key).digest();
      expect(Buffer.from(row.key_hash as Uint8Array).equals(expected)).toBe(true);
      expect(row).toMatchObject({
        prefix: created.key.slice(0, 7),
        last4: created.key.slice(-4),
        scopes: ['a:b'],
        products: ['risk'],
        tenant_id: tenant.id,
        revoked_at: null,
        rotated_to: null,
      });
      expect((row.expires_at as Date).toISOString()).toBe(iso(START + 3_600_000));

      // Every column as the database prints it, and every other table the create wrote to.
      const [text] = await h.database.db.query<{ row: string }>('SELECT row_to_json(k)::text AS row FROM api_keys k WHERE id = $1', [
        created.id,
      ]);
      const middle = created.key.slice(7, -4);
      expect(text!.row).not.toContain(middle);
      for (const table of ['audit_log', 'cache_invalidations', 'tenants']) {
        const rows = await h.database.db.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM ${table} t`);
        for (const { row: dumped } of rows) expect(dumped).not.toContain(middle);
      }
    });

    it('answers 404 unknown_product for a product the catalog lacks, and stores nothing', async () => {
      const before = (await listed(tenant.id)).length;
      const problem = expectProblem(await create({ tenant_id: tenant.id, name: 'x', products: ['api', 'teleport'] }), 404, 'unknown_product');
      expect(problem.detail).toContain('teleport');
      expect(await listed(tenant.id)).toHaveLength(before);
    });

    it('answers 400 naming /expires_at for an expiry now or in the past', async () => {
      for (const expiresAt of [iso(START - 1), iso(START), '2001-01-01T00:00:00Z']) {
        const problem = expectProblem(await create({ tenant_id: tenant.id, name: 'x', expires_at: expiresAt }), 400, 'validation_failed');
        expect(problem.errors).toEqual([{ path: '/expires_at', in: 'body', message: 'must be in the future' }]);
      }
      expect((await create({ tenant_id: tenant.id, name: 'x', expires_at: iso(START + 1) })).status).toBe(201);
    });

    it('answers 400 for a bad scope, naming it', async () => {
      for (const scope of ['Documents:Read', 'has space', '', ':leading', 'x'.repeat(65)]) {
        const problem = expectProblem(await create({ tenant_id: tenant.id, name: 'x', scopes: ['ok:scope', scope] }), 400, 'validation_failed');
        expect(problem.errors).toContainEqual(expect.objectContaining({ path: '/scopes/1', in: 'body' }));
      }
      expectProblem(await create({ tenant_id: tenant.id, name: 'x', scopes: ['a:b', 'a:b'] }), 400, 'validation_failed');
    });

    it('answers 400 naming /name without a usable name', async () => {
      for (const body of [{ tenant_id: tenant.id }, { tenant_id: tenant.id, name: '' }, { tenant_id: tenant.id, name: '   ' }]) {
        const problem = expectProblem(await create(body), 400, 'validation_failed');
        expect(problem.errors).toContainEqual(expect.objectContaining({ path: '/name', in: 'body' }));
      }
      expectProblem(await create({ tenant_id: tenant.id, name: 'x', key: generateApiKey() }), 400, 'validation_failed');
    });

    it('answers 404 not_found for a tenant that does not exist', async () => {
      const problem = expectProblem(await create({ tenant_id: NO_SUCH_TENANT, name: 'x' }), 404, 'not_found');
      expect(problem.detail).toBe('tenant not found');
    });

    it('writes api_key.created naming the key by id and display parts only', async () => {
      const created = await createKey(tenant.id, { name: 'Audited' });
      const [event] = (await events(tenant.id, 'api_key.created')).filter((e) => e.target?.id === created.id);
      expect(event).toMatchObject({
        action: 'api_key.created',
        crud: 'c',
        tenant_id: tenant.id,
        target: { id: created.id, type: 'api_key', name: `${created.prefix}…${created.last4}` },
        fields: { name: 'Audited' },
        actor: { id: 'operator-1', name: 'olga.operator' },
      });
      expect(JSON.stringify(event)).not.toContain(created.key.slice(7, -4));
    });
  });

  describe('GET /v1/api-keys', () => {
    it('lists newest first with exactly the documented fields, never a secret', async () => {
      const tenant = await createTenant(h.api);
      const other = await createTenant(h.api);
      const created: CreatedKey[] = [];
      for (let i = 0; i < 3; i += 1) {
        clock.set(START + i * 1_000);
        created.push(await createKey(tenant.id, { name: `key ${i}` }));
      }
      await createKey(other.id);
      const answer = await list(tenant.id);
      expect(answer.status).toBe(200);
      expect(answer.body.items.map((item) => item.id)).toEqual(created.map((key) => key.id).reverse());
      for (const item of answer.body.items) expect(Object.keys(item).sort()).toEqual(API_KEY_FIELDS);
      expect(answer.body.items).toEqual(created.map(({ key: _key, ...shown }) => shown).reverse());
      for (const { key } of created) expect(answer.text).not.toContain(key.slice(7, -4));
    });

    it('lists revoked keys only with include_revoked=true', async () => {
      const tenant = await createTenant(h.api);
      const kept = await createKey(tenant.id);
      clock.set(START + 1_000);
      const gone = await createKey(tenant.id);
      clock.set(START + 2_000);
      expect((await revoke(gone.id)).status).toBe(204);
      expect((await listed(tenant.id)).map((item) => item.id)).toEqual([kept.id]);
      expect((await listed(tenant.id, '&include_revoked=false')).map((item) => item.id)).toEqual([kept.id]);
      const all = await listed(tenant.id, '&include_revoked=true');
      expect(all.map((item) => item.id)).toEqual([gone.id, kept.id]);
      expect(all[0]!.revoked_at).toBe(iso(START + 2_000));
      expect(all[1]!.revoked_at).toBeNull();
    });

    it('answers 404 for an unknown tenant and 400 without a tenant_id', async () => {
      expectProblem(await list(NO_SUCH_TENANT), 404, 'not_found');
      expectProblem(await h.api.get('/v1/api-keys'), 400, 'validation_failed');
      expectProblem(await list(NO_SUCH_TENANT, '&include_revoked=maybe'), 400, 'validation_failed');
    });
  });

  describe('GET /v1/api-keys/:id', () => {
    it('answers the key as the list shows it: the documented fields, never the key or its hash', async () => {
      const tenant = await createTenant(h.api);
      const created = await createKey(tenant.id, { scopes: ['a:b'], products: ['risk'], expires_at: iso(START + DAY_MS) });
      const answer = await get(created.id);
      expect(answer.status).toBe(200);
      expect(Object.keys(answer.body).sort()).toEqual(API_KEY_FIELDS);
      const { key, ...shown } = created;
      expect(answer.body).toEqual(shown);
      expect(answer.body).toEqual((await listed(tenant.id))[0]);
      expect(answer.text).not.toContain(key.slice(7, -4));
      const hash = Buffer.from((await storedRow(created.id)).key_hash as Uint8Array);
      expect(answer.text).not.toContain(hash.toString('hex'));
      expect(answer.text).not.toContain(hash.toString('base64'));
    });

    it('answers a revoked key too, with its revoked_at', async () => {
      const tenant = await createTenant(h.api);
      const created = await createKey(tenant.id);
      clock.set(START + 1_000);
      expect((await revoke(created.id)).status).toBe(204);
      expect((await get(created.id)).body).toMatchObject({ id: created.id, revoked_at: iso(START + 1_000) });
    });

    it("answers the tenant's own IT admin, and another tenant's with 404 as if the key did not exist", async () => {
      const [tenant, other] = [await createTenant(h.api), await createTenant(h.api)];
      const created = await createKey(tenant.id);
      const own = await get(created.id, await h.server.as(identities.itAdmin(tenant.id)));
      expect(own.status).toBe(200);
      expect(own.body.id).toBe(created.id);
      const foreign = await get(created.id, await h.server.as(identities.itAdmin(other.id)));
      const missing = await get(NO_SUCH_KEY, await h.server.as(identities.itAdmin(other.id)));
      const { request_id: _a, ...foreignProblem } = expectProblem(foreign, 404, 'not_found');
      const { request_id: _b, ...missingProblem } = expectProblem(missing, 404, 'not_found');
      expect(foreignProblem).toEqual(missingProblem);
      expectProblem(await get(created.id, await h.server.as(identities.member(tenant.id))), 403, 'forbidden');
      expectProblem(await get(created.id, h.service), 403, 'forbidden');
    });

    it('answers 404 for an unknown key and 400 for an id that is not a UUID', async () => {
      expectProblem(await get(NO_SUCH_KEY), 404, 'not_found');
      const problem = expectProblem(await get('bp_not-a-uuid'), 400, 'validation_failed');
      expect(problem.errors).toContainEqual(expect.objectContaining({ path: '/id', in: 'params' }));
    });
  });

  describe('DELETE /v1/api-keys/:id', () => {
    // Verdicts right after a change with a warm cache are the subject of test/keys/invalidation.test.ts.
    it('answers 204, again 204, writes one api_key.revoked, and verify says REVOKED', async () => {
      const tenant = await createTenant(h.api);
      const created = await createKey(tenant.id, { name: 'Doomed' });

      clock.set(START + 60_000);
      const first = await revoke(created.id);
      expect(first.status).toBe(204);
      expect(first.text).toBe('');
      expect((await verify(created.key)).code).toBe('REVOKED');

      clock.set(START + 120_000);
      expect((await revoke(created.id)).status).toBe(204);
      const revoked = await events(tenant.id, 'api_key.revoked');
      expect(revoked).toHaveLength(1);
      expect(revoked[0]).toMatchObject({
        crud: 'd',
        target: { id: created.id, type: 'api_key', name: `${created.prefix}…${created.last4}` },
        fields: { name: 'Doomed' },
      });
      // The first revocation's time stands.
      expect((await listed(tenant.id, '&include_revoked=true'))[0]!.revoked_at).toBe(iso(START + 60_000));
    });

    it('answers 404 for an unknown key and 400 for an id that is not a UUID', async () => {
      expectProblem(await revoke(NO_SUCH_KEY), 404, 'not_found');
      const problem = expectProblem(await revoke('bp_not-a-uuid'), 400, 'validation_failed');
      expect(problem.errors).toContainEqual(expect.objectContaining({ path: '/id', in: 'params' }));
    });
  });

  it('never shows a plaintext again: not in lists, other rotations, audit events or errors', async () => {
    const tenant = await createTenant(h.api);
    const first = await createKey(tenant.id, { scopes: ['a:b'] });
    const second = await createKey(tenant.id);
    const rotated = await rotate(second.id, { grace_seconds: 10 });
    expect(rotated.status).toBe(201);
    const secrets = [first.key, second.key];
    const afterwards: Answer[] = [
      await list(tenant.id),
      await list(tenant.id, '&include_revoked=true'),
      await revoke(second.id),
      await rotate(second.id),
      await rotate(first.id, { grace_seconds: 10_000_000 }),
      await create({ tenant_id: tenant.id, name: 'x', products: ['nope'] }),
      await h.api.get(`/v1/audit?tenant_id=${tenant.id}&limit=200`),
    ];
    // The export is NDJSON, which the JSON client of the harness cannot parse as one document.
    const exported = await fetch(new URL(`/v1/audit/export?tenant_id=${tenant.id}`, h.server.url), {
      headers: { authorization: `Bearer ${h.api.token}` },
    });
    expect(exported.status).toBe(200);
    const exportText = await exported.text();
    expect(exportText).toContain('api_key.rotated');
    // The rotation answer carries only its own new key.
    expect(rotated.text).not.toContain(second.key);
    expect(rotated.text).not.toContain(first.key);
    secrets.push(rotated.body.key);
    for (const text of [...afterwards.map((answer) => answer.text), exportText]) {
      for (const secret of secrets) expect(text).not.toContain(secret.slice(7, -4));
    }
  });
});
