// createKeyVerifier against a real registry: what it answers, and which answers cost a registry
// call (counted at its fetch). Time-bound eviction lives in invalidation.test.ts (timed group).
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey } from '../../../src/domain/api-key.js';
import { VERIFY_CODES as REGISTRY_CODES } from '../../../src/domain/key-verdict.js';
import type { Tenant } from '../../../src/http/schemas/tenant.js';
import type { TestServer } from '../../../test/support/server.js';
import type { Client } from '../../../test/support/http.js';
import { createTenant } from '../../../test/support/factories.js';
import { createKeyVerifier, VERIFY_CODES as PACKAGE_CODES } from '../src/index.js';
import { createKey, inventedKey, ok, startRegistry, until, verifiersFor } from './support.js';

let server: TestServer;
let api: Client;
let token: string;
let tenant: Tenant;
const verifiers = verifiersFor(() => ({ url: server.url, token }));
const verifierWith = verifiers.make;

beforeAll(async () => {
  ({ server, api, token } = await startRegistry());
  tenant = await createTenant(api, { plan: 'business' });
  await ok(api, 'PUT', `/v1/entitlements/${tenant.id}/compliance`);
  // Answers about a tenant that changed a moment ago are asked again a second later (a registry
  // replica may not have heard of the change yet): let the setup's changes settle, so the tests
  // count only the calls they cause.
  await sleep(1_100);
});
afterAll(async () => {
  await server.close();
});
describe('answers', () => {
  it('the registry verdict on first sight, then the same answer from memory without a registry call', async () => {
    const { verifier, calls } = await verifierWith();
    const created = await createKey(api, tenant.id, { scopes: ['documents:read'] });
    const first = await verifier.verify(created.key, { product: 'compliance' });
    expect(first).toMatchObject({ valid: true, code: 'VALID', key_id: created.id, tenant_id: tenant.id, slug: tenant.slug, scopes: ['documents:read'] });
    expect(calls.verifyCalls).toBe(1);
    for (let i = 0; i < 100; i += 1) expect(await verifier.verify(created.key, { product: 'compliance' })).toEqual(first);
    expect(calls.verifyCalls).toBe(1);
    expect(verifier.stats()).toMatchObject({ live: true, keys: 1, registryCalls: 1, hits: 100 });
    // The question never carries a scope: scopes are checked here, from the answer's list.
    expect(calls.verifyBodies.map((body) => Object.keys(JSON.parse(body) as object).sort())).toEqual([['key', 'product']]);
  });

  it('checks scopes in process: the answer for a product holds for every scope', async () => {
    const { verifier, calls } = await verifierWith({ product: 'compliance' });
    const created = await createKey(api, tenant.id, { scopes: ['documents:read', 'reports:read'] });
    expect((await verifier.verify(created.key, { scope: 'documents:read' })).code).toBe('VALID');
    expect((await verifier.verify(created.key, { scope: 'reports:read' })).code).toBe('VALID');
    expect(await verifier.verify(created.key, { scope: 'documents:write' })).toMatchObject({
      valid: false,
      code: 'INSUFFICIENT_SCOPE',
      scopes: ['documents:read', 'reports:read'],
    });
    expect(calls.verifyCalls).toBe(1);
    // The registry agrees with the scope verdict made here.
    const direct = await (await server.as({ ...(await import('../../../test/support/identities.js')).identities.service() })).post(
      '/v1/internal/api-keys/verify',
      { body: { key: created.key, product: 'compliance', scope: 'documents:write' } },
    );
    expect(direct.body.code).toBe('INSUFFICIENT_SCOPE');
  });

  it('asks once per product: another product is another question, and NOT_ENTITLED is held like VALID', async () => {
    const { verifier, calls } = await verifierWith();
    const created = await createKey(api, tenant.id);
    expect((await verifier.verify(created.key, { product: 'compliance' })).code).toBe('VALID');
    expect((await verifier.verify(created.key, { product: 'risk' })).code).toBe('NOT_ENTITLED');
    expect((await verifier.verify(created.key)).code).toBe('VALID');
    expect(calls.verifyCalls).toBe(3);
    expect((await verifier.verify(created.key, { product: 'risk' })).code).toBe('NOT_ENTITLED');
    expect((await verifier.verify(created.key, { product: 'compliance', scope: 'x:y' })).code).toBe('INSUFFICIENT_SCOPE');
    expect(calls.verifyCalls).toBe(3);
    expect(verifier.stats().keys).toBe(1);
  });

  it('computes expiry at read time: past expires_at the held answer reads EXPIRED without asking', async () => {
    const { verifier, calls } = await verifierWith();
    const expiresAt = new Date(Date.now() + 1_500);
    const created = await createKey(api, tenant.id, { expires_at: expiresAt.toISOString() });
    const answer = await verifier.verify(created.key);
    expect(answer).toMatchObject({ valid: true, code: 'VALID', expires_at: expiresAt.toISOString() });
    await until(() => Date.now() > expiresAt.getTime(), 'the expiry');
    expect(await verifier.verify(created.key)).toMatchObject({ valid: false, code: 'EXPIRED', key_id: created.id });
    expect(calls.verifyCalls).toBe(1);
    // The registry says the same.
    const direct = createKeyVerifier({ registryUrl: server.url, token, followChanges: false });
    expect((await direct.verify(created.key)).code).toBe('EXPIRED');
    await direct.close();
  });

  it('asks again once valid_until passes: a trial that ends changes the verdict with no event', async () => {
    const trialTenant = await createTenant(api);
    const created = await createKey(api, trialTenant.id);
    // Following the stream only from here: tenant.created, arriving after the first question (or a second before the next), would have the answer asked again.
    const { verifier, calls } = await verifierWith();
    // The trial ends in a moment; written to the database directly, so no change event is sent
    // (the trial-end job would send one later): only valid_until can tell the verifier.
    const endsAt = new Date(Date.now() + 1_500);
    await server.db.query('UPDATE tenants SET trial_ends_at = $2 WHERE id = $1', [trialTenant.id, endsAt]);
    await until(async () => (await verifier.verify(created.key)).valid_until === endsAt.toISOString(), 'the new trial end to be answered');
    const asked = calls.verifyCalls;
    expect((await verifier.verify(created.key)).code).toBe('VALID');
    expect(calls.verifyCalls).toBe(asked);
    await until(() => Date.now() > endsAt.getTime(), 'the trial end');
    expect(await verifier.verify(created.key)).toMatchObject({ valid: false, code: 'TENANT_INACTIVE', tenant_status: 'frozen' });
    expect(calls.verifyCalls).toBe(asked + 1);
  });

  it('shares one registry call among concurrent first sights of a key', async () => {
    const { verifier, calls } = await verifierWith();
    const created = await createKey(api, tenant.id, { scopes: ['a:b'] });
    const answers = await Promise.all(
      Array.from({ length: 50 }, (_, i) => verifier.verify(created.key, { product: 'compliance', scope: i % 2 === 0 ? 'a:b' : 'c:d' })),
    );
    expect(calls.verifyCalls).toBe(1);
    expect(answers.filter((answer) => answer.code === 'VALID')).toHaveLength(25);
    expect(answers.filter((answer) => answer.code === 'INSUFFICIENT_SCOPE')).toHaveLength(25);
  });

  it('holds unknown keys briefly: a flood of bad keys costs one call per key, then none until the TTL passes', async () => {
    const { verifier, calls } = await verifierWith({ unknownKeyTtlMs: 600 });
    const unknown = Array.from({ length: 30 }, () => generateApiKey());
    const malformed = inventedKey();
    for (const key of unknown) expect(await verifier.verify(key)).toEqual({ valid: false, code: 'NOT_FOUND' });
    expect(await verifier.verify(malformed)).toEqual({ valid: false, code: 'MALFORMED' });
    expect(calls.verifyCalls).toBe(31);
    for (let round = 0; round < 3; round += 1) {
      for (const key of unknown) expect((await verifier.verify(key)).code).toBe('NOT_FOUND');
      expect((await verifier.verify(malformed)).code).toBe('MALFORMED');
    }
    expect(calls.verifyCalls).toBe(31);
    // Unknown keys never push known ones out: they are held apart.
    expect(verifier.stats()).toMatchObject({ keys: 0, unknown: 31 });
    await sleep(700);
    expect((await verifier.verify(unknown[0]!)).code).toBe('NOT_FOUND');
    expect(calls.verifyCalls).toBe(32);
  });

  it('answers MALFORMED without asking for what the registry would refuse to read (empty, over 200 characters)', async () => {
    const { verifier, calls } = await verifierWith();
    expect(await verifier.verify('')).toEqual({ valid: false, code: 'MALFORMED' });
    expect(await verifier.verify('x'.repeat(201))).toEqual({ valid: false, code: 'MALFORMED' });
    expect(calls.verifyCalls).toBe(0);
    await expect(verifier.verify(generateApiKey(), { product: 'Not A Product' })).rejects.toThrow(TypeError);
    expect(() => createKeyVerifier({ registryUrl: server.url, token, product: 'BAD', followChanges: false })).toThrow(TypeError);
  });

  it('keeps at most maxEntries keys, the least recently used (to within a second) going first', async () => {
    const { verifier, calls } = await verifierWith({ maxEntries: 3 });
    const keys = await Promise.all([1, 2, 3, 4].map(() => createKey(api, tenant.id)));
    const [k1, k2, k3, k4] = keys.map((created) => created.key) as [string, string, string, string];
    for (const key of [k1, k2, k3]) await verifier.verify(key);
    expect(calls.verifyCalls).toBe(3);
    // A key used again within a second keeps its place (cache.ts); after one it moves.
    await sleep(1_100);
    await verifier.verify(k1); // k1 is now the most recently used; k2 the least
    expect(calls.verifyCalls).toBe(3);
    await verifier.verify(k4);
    expect(calls.verifyCalls).toBe(4);
    expect(verifier.stats().keys).toBe(3);
    await verifier.verify(k1);
    await verifier.verify(k3);
    await verifier.verify(k4);
    expect(calls.verifyCalls).toBe(4);
    expect((await verifier.verify(k2)).code).toBe('VALID');
    expect(calls.verifyCalls).toBe(5);
  });

  it('verifyNow answers from memory only: nothing for a key never seen, the held verdict after a verify', async () => {
    const { verifier, calls } = await verifierWith({});
    const created = await createKey(api, tenant.id);
    expect(verifier.verifyNow(created.key)).toBeUndefined();
    expect(verifier.verifyNow('')).toEqual({ valid: false, code: 'MALFORMED' });
    expect(() => verifier.verifyNow(created.key, { product: 'Not A Code' })).toThrow(TypeError);
    expect(calls.verifyCalls).toBe(0);
    const asked = await verifier.verify(created.key);
    expect(asked.code).toBe('VALID');
    expect(verifier.verifyNow(created.key)).toBe(asked);
    expect(verifier.verifyNow(created.key, { scope: 'nobody:has-this' })).toMatchObject({ valid: false, code: 'INSUFFICIENT_SCOPE' });
    const unknown = generateApiKey();
    expect(verifier.verifyNow(unknown)).toBeUndefined();
    expect((await verifier.verify(unknown)).code).toBe('NOT_FOUND');
    expect(verifier.verifyNow(unknown)).toEqual({ valid: false, code: 'NOT_FOUND' });
    expect(calls.verifyCalls).toBe(2);
  });

  it('keeps no key in plaintext: the cache knows each key by its SHA-256 alone', async () => {
    const errors: string[] = [];
    const { verifier } = await verifierWith({ onError: (error) => errors.push(String(error)) });
    const created = await createKey(api, tenant.id);
    const unknown = generateApiKey();
    await verifier.verify(created.key);
    await verifier.verify(unknown);
    const hashes = verifier.cachedHashes();
    const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
    expect(hashes.sort()).toEqual([sha256(created.key), sha256(unknown)].sort());
    expect(JSON.stringify(hashes)).not.toContain(created.key.slice(3, 20));
    expect(errors).toEqual([]);
  });
});

describe('the registry unreachable', () => {
  it('fail-closed (the default): a key not decided in memory answers REGISTRY_UNAVAILABLE, and no error names the key', async () => {
    const errors: string[] = [];
    const verifier = createKeyVerifier({ registryUrl: 'http://127.0.0.1:9', token, onError: (error) => errors.push(String(error)), requestTimeoutMs: 500 });
    verifiers.closeAfter(verifier);
    const key = generateApiKey();
    expect(await verifier.verify(key)).toEqual({ valid: false, code: 'REGISTRY_UNAVAILABLE' });
    expect(verifier.stats().live).toBe(false);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors.join('\n')).not.toContain(key);
  });

  it('answers with a problem-free token function: it is called for each request and may be async', async () => {
    let tokenCalls = 0;
    const { verifier } = await verifierWith({
      token: async () => {
        tokenCalls += 1;
        return token;
      },
    });
    const created = await createKey(api, tenant.id);
    expect((await verifier.verify(created.key)).code).toBe('VALID');
    expect(tokenCalls).toBeGreaterThanOrEqual(2);
  });
});

// The package keeps its own copy of the registry's codes (it imports nothing of the service): this
// holds the copy to the registry's list, so a code added there cannot arrive here unknown.
describe('the verdict codes', () => {
  it('are the registry\'s, in its order, then REGISTRY_UNAVAILABLE', () => {
    expect(PACKAGE_CODES).toEqual([...REGISTRY_CODES, 'REGISTRY_UNAVAILABLE']);
  });
});
