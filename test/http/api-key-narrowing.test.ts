// PATCH /v1/api-keys/{id}: a key can be renamed and its scopes and products narrowed, never
// widened (409 key_widening, nothing changed); each change is one api_key.updated event naming
// the old and new values; the next verify of the key sees the narrowing at once; a revoked or
// expired key cannot change; the key's own tenant's IT admin may, another tenant's sees 404.
import { describe, expect, it } from 'vitest';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { identities } from '../support/identities.js';
import { DAY_MS, iso, START } from '../support/time.js';
import { apiKeysApi, NO_SUCH_KEY, type CreatedKey } from './api-keys-harness.js';

eachDriver('API keys: renaming and narrowing', (driver) => {
  const h = apiKeysApi(driver);
  const { clock, createKey, get, update, revoke, rotate, verify, events, expectProblem, storedRow } = h;

  const grant = async (tenantId: string, product: string) =>
    expect((await h.api.request('PUT', `/v1/entitlements/${tenantId}/${product}`, { body: {} })).status).toBe(200);
  const shown = ({ key: _key, ...rest }: CreatedKey) => rest;
  /** The key's row and its events, to show that a refused change changed nothing. */
  const snapshot = async (key: CreatedKey) => ({
    row: await storedRow(key.id),
    updates: (await events(key.tenant_id, 'api_key.updated')).length,
  });

  describe('what may change', () => {
    it('renames a key (trimmed), with an api_key.updated event naming both names', async () => {
      const tenant = await createTenant(h.api);
      const created = await createKey(tenant.id, { name: 'CI deploy', scopes: ['docs:read'] });
      clock.set(START + 60_000);
      const answer = await update(created.id, { name: '  Nightly export  ' });
      expect(answer.status, answer.text).toBe(200);
      expect(answer.body).toEqual({ ...shown(created), name: 'Nightly export' });
      expect((await get(created.id)).body).toEqual(answer.body);
      const [event, ...more] = await events(tenant.id, 'api_key.updated');
      expect(more).toEqual([]);
      expect(event).toMatchObject({
        crud: 'u',
        tenant_id: tenant.id,
        actor: { id: 'operator-1', name: 'olga.operator' },
        target: { id: created.id, type: 'api_key', name: `${created.prefix}…${created.last4}` },
        fields: { changed: 'name', 'name.old': 'CI deploy', 'name.new': 'Nightly export' },
        created: iso(START + 60_000),
      });
      expect(JSON.stringify(event)).not.toContain(created.key.slice(7, -4));
      expect((await verify(created.key, { scope: 'docs:read' })).code).toBe('VALID');
    });

    it('narrows scopes and products, and the very next verify answers by the narrowed key', async () => {
      const tenant = await createTenant(h.api);
      await grant(tenant.id, 'risk');
      await grant(tenant.id, 'compliance');
      const created = await createKey(tenant.id, { scopes: ['docs:read', 'docs:write', 'reports:read'], products: ['risk', 'compliance'] });
      // Warm the cache with the answers the change must overturn.
      expect((await verify(created.key, { scope: 'docs:write' })).code).toBe('VALID');
      expect((await verify(created.key, { product: 'compliance' })).code).toBe('VALID');

      const answer = await update(created.id, { scopes: ['reports:read', 'docs:read'], products: ['risk'] });
      expect(answer.status, answer.text).toBe(200);
      expect(answer.body).toMatchObject({ scopes: ['reports:read', 'docs:read'], products: ['risk'] });
      expect((await verify(created.key, { scope: 'docs:write' })).code).toBe('INSUFFICIENT_SCOPE');
      expect((await verify(created.key, { product: 'compliance' })).code).toBe('NOT_ENTITLED');
      expect(await verify(created.key, { scope: 'docs:read', product: 'risk' })).toMatchObject({
        code: 'VALID',
        scopes: ['reports:read', 'docs:read'],
        products: ['risk'],
      });
      const [event] = await events(tenant.id, 'api_key.updated');
      expect(event!.fields).toEqual({
        changed: 'scopes,products',
        'scopes.old': 'docs:read,docs:write,reports:read',
        'scopes.new': 'reports:read,docs:read',
        'products.old': 'risk,compliance',
        'products.new': 'risk',
      });
    });

    it('takes every scope away, and changes all three fields in one event', async () => {
      const tenant = await createTenant(h.api);
      const created = await createKey(tenant.id, { name: 'old', scopes: ['a:b'], products: ['risk', 'api'] });
      const answer = await update(created.id, { name: 'new', scopes: [], products: ['api'] });
      expect(answer.body).toMatchObject({ name: 'new', scopes: [], products: ['api'] });
      expect((await verify(created.key, { scope: 'a:b' })).code).toBe('INSUFFICIENT_SCOPE');
      expect((await events(tenant.id, 'api_key.updated'))[0]!.fields).toEqual({
        changed: 'name,scopes,products',
        'name.old': 'old',
        'name.new': 'new',
        'scopes.old': 'a:b',
        'scopes.new': '',
        'products.old': 'risk,api',
        'products.new': 'api',
      });
    });

    it('limits a key without a limit to products the tenant may use now: granted, or in a running trial', async () => {
      const tenant = await createTenant(h.api);
      await grant(tenant.id, 'compliance');
      expect((await h.api.post('/v1/catalog/trial-request', { body: { tenant_id: tenant.id, product: 'risk' } })).status).toBe(201);
      const created = await createKey(tenant.id);
      expect((await verify(created.key, { product: 'risk' })).code).toBe('VALID');
      const answer = await update(created.id, { products: ['compliance'] });
      expect(answer.status, answer.text).toBe(200);
      expect(answer.body.products).toEqual(['compliance']);
      expect((await verify(created.key, { product: 'risk' })).code).toBe('NOT_ENTITLED');
      expect((await verify(created.key, { product: 'compliance' })).code).toBe('VALID');
      expect((await events(tenant.id, 'api_key.updated'))[0]!.fields).toEqual({ changed: 'products', 'products.old': '', 'products.new': 'compliance' });

      const other = await createKey(tenant.id);
      expect((await update(other.id, { products: ['risk', 'compliance'] })).status).toBe(200);
    });

    it('changes nothing and records nothing when the values are the ones the key has, in any order', async () => {
      const tenant = await createTenant(h.api);
      const created = await createKey(tenant.id, { name: 'same', scopes: ['a:b', 'c:d'], products: ['risk', 'api'] });
      const before = await snapshot(created);
      for (const body of [{ name: 'same' }, { name: ' same ' }, { scopes: ['c:d', 'a:b'] }, { products: ['api', 'risk'] }, { name: 'same', scopes: ['a:b', 'c:d'] }]) {
        const answer = await update(created.id, body);
        expect(answer.status).toBe(200);
        expect(answer.body).toEqual(shown(created));
      }
      expect(await snapshot(created)).toEqual(before);
    });
  });

  describe('what is refused', () => {
    let tenant: Tenant;
    const setUp = async () => {
      tenant = await createTenant(h.api);
      await grant(tenant.id, 'risk');
    };

    it.each([
      ['a scope the key lacks', { scopes: ['a:b'], products: ['risk'] }, { scopes: ['a:b', 'admin:all'] }, 'scopes', 'admin:all'],
      ['a scope for a key with none', { scopes: [] }, { scopes: ['a:b'] }, 'scopes', 'a:b'],
      ['a product beyond the limit', { products: ['risk'] }, { products: ['risk', 'compliance'] }, 'products', 'limited to risk'],
      ['lifting the product limit (an empty list)', { products: ['risk', 'api'] }, { products: [] }, 'products', 'lift'],
      ['limiting a key without a limit to a product the tenant may not use', {}, { products: ['risk', 'compliance'] }, 'products', 'compliance'],
    ])('refuses %s with 409 key_widening, changing nothing', async (_case, created, body, field, named) => {
      await setUp();
      const key = await createKey(tenant.id, created);
      const before = await snapshot(key);
      const answer = await update(key.id, { name: 'renamed too', ...body });
      const problem = expectProblem(answer, 409, 'key_widening');
      expect(problem.field).toBe(field);
      expect(problem.detail).toContain(named);
      expect(problem.detail).toContain('create a new key');
      expect(answer.text).not.toContain(key.key.slice(7, -4));
      expect(await snapshot(key)).toEqual(before);
    });

    it("refuses products the tenant asked for, revoked, or whose trial ended, as the tenant may not use them", async () => {
      await setUp();
      expect((await h.api.post('/v1/catalog/request', { body: { tenant_id: tenant.id, product: 'compliance' } })).status).toBe(202);
      await grant(tenant.id, 'api');
      expect((await h.api.request('DELETE', `/v1/entitlements/${tenant.id}/api`)).status).toBe(204);
      expect((await h.api.post('/v1/catalog/trial-request', { body: { tenant_id: tenant.id, product: 'training' } })).status).toBe(201);
      const key = await createKey(tenant.id);
      clock.set(START + 60 * DAY_MS);
      for (const product of ['compliance', 'api', 'training']) {
        expect(expectProblem(await update(key.id, { products: ['risk', product] }), 409, 'key_widening').detail).toContain(product);
      }
      expect((await update(key.id, { products: ['risk'] })).status).toBe(200);
    });

    it('answers 404 unknown_product for a product the catalog lacks', async () => {
      await setUp();
      const key = await createKey(tenant.id, { products: ['risk'] });
      expect(expectProblem(await update(key.id, { products: ['teleport'] }), 404, 'unknown_product').detail).toContain('teleport');
    });

    it('refuses a revoked key with 409 key_revoked and an expired one with 409 key_expired', async () => {
      await setUp();
      const revoked = await createKey(tenant.id, { scopes: ['a:b'] });
      expect((await revoke(revoked.id)).status).toBe(204);
      expectProblem(await update(revoked.id, { scopes: [] }), 409, 'key_revoked');
      expectProblem(await update(revoked.id, { name: 'x' }), 409, 'key_revoked');

      const expiring = await createKey(tenant.id, { expires_at: iso(START + DAY_MS) });
      expect((await update(expiring.id, { name: 'still fine' })).status).toBe(200);
      clock.set(START + DAY_MS);
      expectProblem(await update(expiring.id, { name: 'too late' }), 409, 'key_expired');

      // A rotation without grace ends the old key at once.
      const rotated = await createKey(tenant.id);
      expect((await rotate(rotated.id, { grace_seconds: 0 })).status).toBe(201);
      expectProblem(await update(rotated.id, { name: 'x' }), 409, 'key_expired');
    });

    it('answers 400 for an empty body, no body, or a field it does not take', async () => {
      await setUp();
      const key = await createKey(tenant.id);
      for (const body of [{}, { name: '' }, { name: '  ' }, { name: 'x'.repeat(101) }, { scopes: ['Bad Scope'] }, { scopes: ['a:b', 'a:b'] }, { expires_at: iso(START + DAY_MS) }, { key: 'bp_x' }, { tenant_id: tenant.id }]) {
        expectProblem(await update(key.id, body), 400, 'validation_failed');
      }
      expectProblem(await h.api.request('PATCH', `/v1/api-keys/${key.id}`), 400, 'validation_failed');
      const problem = expectProblem(await update('not-a-uuid', { name: 'x' }), 400, 'validation_failed');
      expect(problem.errors).toContainEqual(expect.objectContaining({ path: '/id', in: 'params' }));
    });

    it('answers 404 for an unknown key', async () => {
      expectProblem(await update(NO_SUCH_KEY, { name: 'x' }), 404, 'not_found');
    });

    it("lets the key's own IT admin narrow it; another tenant's IT admin gets 404, a member 403", async () => {
      await setUp();
      const other = await createTenant(h.api);
      const key = await createKey(tenant.id, { scopes: ['a:b', 'c:d'] });
      const own = await update(key.id, { scopes: ['a:b'] }, await h.server.as(identities.itAdmin(tenant.id)));
      expect(own.status, own.text).toBe(200);
      const [event] = await events(tenant.id, 'api_key.updated');
      expect(event!.actor).toMatchObject({ id: `it-admin-${tenant.id}`, name: 'ivan.itadmin' });

      expectProblem(await update(key.id, { scopes: [] }, await h.server.as(identities.itAdmin(other.id))), 404, 'not_found');
      expectProblem(await update(key.id, { scopes: [] }, await h.server.as(identities.member(tenant.id))), 403, 'forbidden');
      expectProblem(await update(key.id, { scopes: [] }, h.service), 403, 'forbidden');
      expect((await get(key.id)).body.scopes).toEqual(['a:b']);
    });

    it('applies one of two narrowings made at once and refuses the other, which would widen what the first left', async () => {
      await setUp();
      for (let round = 0; round < 5; round += 1) {
        const key = await createKey(tenant.id, { scopes: ['a:b', 'c:d'] });
        const answers = await Promise.all([update(key.id, { scopes: ['a:b'] }), update(key.id, { scopes: ['c:d'] })]);
        expect(answers.map((a) => a.status).sort()).toEqual([200, 409]);
        const won = answers.find((a) => a.status === 200)!;
        expect((await get(key.id)).body.scopes).toEqual(won.body.scopes);
        const updates = (await events(tenant.id, 'api_key.updated')).filter((e) => e.target?.id === key.id);
        expect(updates).toHaveLength(1);
      }
    });
  });
});
