// last_used_at: written by the batched usage recorder, not by each verify (one statement per
// flush, one row per key), never moved backwards, and its write evicts no cached key.
import { describe, expect, it } from 'vitest';
import { eachDriver } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { iso, START } from '../support/time.js';
import { apiKeysApi, USAGE_WRITE } from './api-keys-harness.js';

eachDriver('API keys: last_used_at', (driver) => {
  const h = apiKeysApi(driver);
  const { clock, createKey, listed, verify } = h;

  describe('last_used_at', () => {
    it('is written by the usage recorder, not by verify: one statement per flush, one row per key', async () => {
      const tenant = await createTenant(h.api);
      const first = await createKey(tenant.id, { scopes: ['a:read'] });
      const second = await createKey(tenant.id);
      const writes = () => h.queries.filter((query) => USAGE_WRITE.test(query.text));
      await h.keys.usage.flush();
      const writesBefore = writes().length;

      for (const offset of [1_000, 2_000, 3_000]) {
        clock.set(START + offset);
        expect((await verify(first.key)).code).toBe('VALID');
      }
      clock.set(START + 4_000);
      expect((await verify(second.key)).code).toBe('VALID');
      // Refused verdicts are no use of the key.
      clock.set(START + 5_000);
      expect((await verify(first.key, { scope: 'a:write' })).code).toBe('INSUFFICIENT_SCOPE');
      expect((await verify(second.key, { product: 'risk' })).code).toBe('NOT_ENTITLED');

      expect((await listed(tenant.id)).map((item) => item.last_used_at)).toEqual([null, null]);
      expect(writes()).toHaveLength(writesBefore);

      await h.keys.usage.flush();
      const written = writes().slice(writesBefore);
      expect(written).toHaveLength(1);
      const ids = written[0]!.params[0] as string[];
      expect([...ids].sort()).toEqual([first.id, second.id].sort());
      const byId = new Map((await listed(tenant.id)).map((item) => [item.id, item.last_used_at]));
      expect(byId.get(first.id)).toBe(iso(START + 3_000));
      expect(byId.get(second.id)).toBe(iso(START + 4_000));

      await h.keys.usage.flush();
      expect(writes()).toHaveLength(writesBefore + 1);
    });

    it('never moves backwards, and its write evicts no cached key', async () => {
      const tenant = await createTenant(h.api);
      const created = await createKey(tenant.id);
      clock.set(START + 10_000);
      expect((await verify(created.key)).code).toBe('VALID');
      await h.keys.usage.flush();
      clock.set(START + 5_000);
      expect((await verify(created.key)).code).toBe('VALID');
      await h.keys.usage.flush();
      expect((await listed(tenant.id))[0]!.last_used_at).toBe(iso(START + 10_000));

      // The notifications of the creation have arrived (pg delivers them a little later), the
      // key is cached, and a use is pending; then the use is written. Had the write published an
      // invalidation, the server would have heard it before the marker after it (heard, not waited 150 ms for), and the next verify would be a miss.
      await h.notificationsArrived();
      clock.set(START + 20_000);
      expect((await verify(created.key)).code).toBe('VALID');
      const misses = h.keys.verifier.cache.misses;
      await h.keys.usage.flush();
      await h.notificationsArrived();
      expect((await verify(created.key)).code).toBe('VALID');
      expect(h.keys.verifier.cache.misses).toBe(misses);
    });
  });
});
