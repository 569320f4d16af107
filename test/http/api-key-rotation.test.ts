// POST /v1/api-keys/:id/rotate: a new key of the same name, scopes and products; the old one valid
// through its grace (at most 7 days, never past its own expiry) and not after; one rotation of ten
// concurrent ones; revoked, expired, already rotated and unknown keys refused.
import { describe, expect, it } from 'vitest';
import { eachDriver } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { problemOf } from '../support/http.js';
import { identities } from '../support/identities.js';
import { iso, START } from '../support/time.js';
import { apiKeysApi, API_KEY_FIELDS, NO_SUCH_KEY } from './api-keys-harness.js';

eachDriver('API keys: rotation', (driver) => {
  const h = apiKeysApi(driver);
  const { clock, createKey, listed, revoke, rotate, verify, events, expectProblem, storedRow } = h;

  describe('POST /v1/api-keys/:id/rotate', () => {
    it('answers 201 with a new key of the same name, scopes and products', async () => {
      const tenant = await createTenant(h.api);
      const old = await createKey(tenant.id, { name: 'Rolled', scopes: ['x:y'], products: ['api'] });
      clock.set(START + 1_000);
      const answer = await rotate(old.id, { grace_seconds: 60 });
      expect(answer.status, answer.text).toBe(201);
      const fresh = answer.body;
      expect(answer.headers.get('location')).toBe(`/v1/api-keys/${fresh.id}`);
      expect(Object.keys(fresh).sort()).toEqual([...API_KEY_FIELDS, 'key'].sort());
      expect(fresh).toMatchObject({
        tenant_id: tenant.id,
        name: 'Rolled',
        scopes: ['x:y'],
        products: ['api'],
        created_at: iso(START + 1_000),
        revoked_at: null,
        last_used_at: null,
        prefix: fresh.key.slice(0, 7),
        last4: fresh.key.slice(-4),
      });
      expect(fresh.id).not.toBe(old.id);
      expect(fresh.key).not.toBe(old.key);
      expect(fresh.key).toMatch(/^bp_[0-9A-Za-z]{39}$/);
      expect((await storedRow(old.id)).rotated_to).toBe(fresh.id);
      expect((await verify(fresh.key)).code).toBe('VALID');

      const [event] = await events(tenant.id, 'api_key.rotated');
      expect(event).toMatchObject({
        crud: 'c',
        target: { id: fresh.id, type: 'api_key', name: `${fresh.prefix}…${fresh.last4}` },
        fields: { name: 'Rolled', replaces: old.id, grace_seconds: '60' },
      });
    });

    it('with grace_seconds=0, or none given, ends the old key at once', async () => {
      const tenant = await createTenant(h.api);
      for (const body of [{ grace_seconds: 0 }, {}]) {
        const old = await createKey(tenant.id);
        const answer = await rotate(old.id, body);
        expect(answer.status, answer.text).toBe(201);
        expect((await verify(old.key)).code).toBe('EXPIRED');
        expect((await verify(answer.body.key)).code).toBe('VALID');
      }
    });

    // The body is optional (openapi.yaml: requestBody.required false): a client that sends none,
    // not even a content type, or an empty one with a JSON content type, gets the defaults.
    it('rotates without a body or content type, and with an empty JSON body', async () => {
      const tenant = await createTenant(h.api);
      for (const options of [{}, { raw: '', headers: { 'content-type': 'application/json' } }]) {
        const old = await createKey(tenant.id);
        const answer = await h.api.post<{ id: string; key: string }>(`/v1/api-keys/${old.id}/rotate`, options);
        expect(answer.status, answer.text).toBe(201);
        expect(answer.headers.get('location')).toBe(`/v1/api-keys/${answer.body.id}`);
        // grace_seconds defaults to 0: the old key ends at once.
        expect((await verify(old.key)).code).toBe('EXPIRED');
        expect((await verify(answer.body.key)).code).toBe('VALID');
      }
    });

    it('with grace_seconds=3600 keeps the old key VALID until the grace has passed', async () => {
      const tenant = await createTenant(h.api);
      const old = await createKey(tenant.id);
      expect((await rotate(old.id, { grace_seconds: 3600 })).status).toBe(201);
      expect((await verify(old.key)).code).toBe('VALID');
      clock.set(START + 3_599_999);
      expect((await verify(old.key)).code).toBe('VALID');
      clock.set(START + 3_600_000);
      const expired = await verify(old.key);
      expect(expired).toMatchObject({ valid: false, code: 'EXPIRED', expires_at: iso(START + 3_600_000) });
      const shown = (await listed(tenant.id)).find((item) => item.id === old.id);
      expect(shown?.expires_at).toBe(iso(START + 3_600_000));
    });

    it("never extends the old key past its own expires_at", async () => {
      const tenant = await createTenant(h.api);
      const old = await createKey(tenant.id, { expires_at: iso(START + 600_000) });
      expect((await rotate(old.id, { grace_seconds: 3600 })).status).toBe(201);
      expect((await storedRow(old.id)).expires_at).toEqual(new Date(START + 600_000));
      clock.set(START + 599_999);
      expect((await verify(old.key)).code).toBe('VALID');
      clock.set(START + 600_000);
      expect((await verify(old.key)).code).toBe('EXPIRED');
    });

    it('answers 400 for a grace over 7 days, negative or fractional, and takes exactly 7 days', async () => {
      const tenant = await createTenant(h.api);
      const old = await createKey(tenant.id);
      for (const grace of [604_801, -1, 1.5, '60']) {
        const problem = expectProblem(await rotate(old.id, { grace_seconds: grace }), 400, 'validation_failed');
        expect(problem.errors).toContainEqual(expect.objectContaining({ path: '/grace_seconds', in: 'body' }));
      }
      expectProblem(await rotate(old.id, { grace_seconds: 60, extra: true }), 400, 'validation_failed');
      // Nothing was rotated by the refused calls.
      expect(await listed(tenant.id)).toHaveLength(1);
      expect((await rotate(old.id, { grace_seconds: 604_800 })).status).toBe(201);
      expect((await storedRow(old.id)).expires_at).toEqual(new Date(START + 604_800_000));
    });

    it('answers 409 key_revoked for a revoked key and 409 key_expired for an expired one', async () => {
      const tenant = await createTenant(h.api);
      const revoked = await createKey(tenant.id);
      expect((await revoke(revoked.id)).status).toBe(204);
      const problem = expectProblem(await rotate(revoked.id), 409, 'key_revoked');
      expect(problem.key).toBeUndefined();

      const expiring = await createKey(tenant.id, { expires_at: iso(START + 60_000) });
      clock.set(START + 60_000);
      expectProblem(await rotate(expiring.id), 409, 'key_expired');
      expect((await listed(tenant.id)).map((item) => item.id)).toEqual([expiring.id]);
      expect(await events(tenant.id, 'api_key.rotated')).toEqual([]);
    });

    it('answers 409 key_rotated for a key in its rotation grace, naming the successor, writing nothing', async () => {
      const tenant = await createTenant(h.api);
      const old = await createKey(tenant.id, { name: 'Rolled' });
      const first = await rotate(old.id, { grace_seconds: 3600 });
      expect(first.status).toBe(201);
      const stored = await storedRow(old.id);
      const keysBefore = await listed(tenant.id, '&include_revoked=true');
      const eventsBefore = await events(tenant.id, 'api_key.*');

      clock.set(START + 60_000);
      for (const body of [{ grace_seconds: 3600 }, {}, { grace_seconds: 0 }]) {
        const problem = expectProblem(await rotate(old.id, body), 409, 'key_rotated');
        expect(problem.rotated_to).toBe(first.body.id);
        expect(problem.detail).toMatch(/successor/);
        expect(problem.key).toBeUndefined();
      }
      // An IT admin of the tenant is refused the same way.
      const itAdmin = await h.server.as(identities.itAdmin(tenant.id));
      expectProblem(await itAdmin.post(`/v1/api-keys/${old.id}/rotate`, { body: {} }), 409, 'key_rotated');

      expect(await storedRow(old.id)).toEqual(stored);
      expect(await listed(tenant.id, '&include_revoked=true')).toEqual(keysBefore);
      expect(await events(tenant.id, 'api_key.*')).toEqual(eventsBefore);
      // Both keys keep answering as the one rotation left them.
      expect((await verify(old.key)).code).toBe('VALID');
      expect((await verify(first.body.key)).code).toBe('VALID');

      // The successor is what rotates next, and the chain goes on from there.
      const second = await rotate(first.body.id, { grace_seconds: 60 });
      expect(second.status).toBe(201);
      expect((await storedRow(first.body.id)).rotated_to).toBe(second.body.id);
      expect((await storedRow(old.id)).rotated_to).toBe(first.body.id);
    });

    it('answers key_rotated, not key_expired, for a rotated key whose grace has ended', async () => {
      const tenant = await createTenant(h.api);
      const old = await createKey(tenant.id);
      const fresh = await rotate(old.id);
      expect(fresh.status).toBe(201);
      expect((await verify(old.key)).code).toBe('EXPIRED');
      expect(problemOf(await rotate(old.id))).toMatchObject({ code: 'key_rotated', rotated_to: fresh.body.id });
      expect(await listed(tenant.id)).toHaveLength(2);
    });

    it('rotates once of ten concurrent rotations of one key', async () => {
      const tenant = await createTenant(h.api);
      const old = await createKey(tenant.id);
      const answers = await Promise.all(Array.from({ length: 10 }, () => rotate(old.id, { grace_seconds: 600 })));
      expect(answers.map((answer) => answer.status).sort()).toEqual([201, ...Array.from({ length: 9 }, () => 409)]);
      const winner = answers.find((answer) => answer.status === 201)!;
      for (const answer of answers.filter((a) => a.status === 409)) {
        expect(problemOf(answer)).toMatchObject({ code: 'key_rotated', rotated_to: winner.body.id });
      }
      expect(await listed(tenant.id)).toHaveLength(2);
      expect(await events(tenant.id, 'api_key.rotated')).toHaveLength(1);
    });

    it('answers 404 for an unknown key', async () => {
      expectProblem(await rotate(NO_SUCH_KEY), 404, 'not_found');
    });
  });
});
