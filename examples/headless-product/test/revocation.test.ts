// The example product against a real registry (in process, with its real event stream): a key
// created at the registry opens the product's API; revoked, it is refused within a second. The
// product imports @tenant-registry/verify as any product would (the workspace package). In the
// timed group (vitest.config.ts): it times the refusal.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { createKeyVerifier, type KeyVerifier } from '@tenant-registry/verify';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ApiKey } from '../../../src/http/schemas/api-key.js';
import { DRIVERS } from '../../../test/support/drivers.js';
import { createTenant } from '../../../test/support/factories.js';
import { call } from '../../../test/support/http.js';
import { identities } from '../../../test/support/identities.js';
import { startServer, type TestServer } from '../../../test/support/server.js';
import { PRODUCT, buildProduct } from '../src/app.js';

let registry: TestServer;
let verifier: KeyVerifier;
let product: FastifyInstance;
let productUrl = '';

beforeAll(async () => {
  registry = await startServer(DRIVERS[0]!, { eventStream: { heartbeatMs: 1_000 } });
  const service = await registry.as(identities.service());
  verifier = createKeyVerifier({ registryUrl: registry.url, token: service.token!, heartbeatMs: 1_000 });
  product = await buildProduct(verifier);
  productUrl = await product.listen({ host: '127.0.0.1', port: 0 });
  await verifier.whenLive();
});
afterAll(async () => {
  await product?.close();
  await verifier?.close();
  await registry?.close();
});

it('serves a key the registry issued, and refuses it within a second of its revocation', async () => {
  const { api } = registry;
  const tenant = await createTenant(api);
  expect((await api.request('PUT', `/v1/entitlements/${tenant.id}/${PRODUCT}`, { body: {} })).status).toBe(200);
  const created = await api.post<ApiKey & { key: string }>('/v1/api-keys', { body: { tenant_id: tenant.id, name: 'product' } });
  expect(created.status).toBe(201);
  const documents = () => call(productUrl, 'GET', '/v1/documents', { headers: { authorization: `Bearer ${created.body.key}` } });

  const served = await documents();
  expect(served.status, served.text).toBe(200);
  expect(served.body).toMatchObject({ tenant: tenant.slug });
  expect((await call(productUrl, 'GET', '/v1/documents')).status).toBe(401);
  expect((await call(productUrl, 'GET', '/healthz')).status).toBe(200);

  const revoked = await api.request('DELETE', `/v1/api-keys/${created.body.id}`, { body: {} });
  expect(revoked.status, revoked.text).toBeLessThan(300);
  const at = performance.now();
  // Polls the product as a client would until it refuses; a second is the promise.
  let refusal = await documents();
  while (refusal.status === 200 && performance.now() - at < 1_000) {
    await sleep(10);
    refusal = await documents();
  }
  const elapsed = performance.now() - at;
  expect(refusal.status, `still ${refusal.status} after ${Math.round(elapsed)} ms`).toBe(401);
  expect(refusal.body).toMatchObject({ code: 'api_key_revoked' });
  expect(elapsed).toBeLessThan(1_000);
});
