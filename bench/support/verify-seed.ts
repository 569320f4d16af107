// The data of the verify benchmark, made through the service's own API as an operator would:
// tenants, each granted the product the keys are for, and keys issued by POST /v1/api-keys as
// platform_admin. Every key is verified once here, which fills the service's cache and checks
// that each answer is the one its scenario expects before any load is sent.
import { randomBytes } from 'node:crypto';
import { isWellFormedApiKey } from '../../src/domain/api-key.js';
import { setTimeout as sleep } from 'node:timers/promises';

export const VERIFY_PATH = '/v1/internal/api-keys/verify';
/** What a headless product asks with every key: may it be used for this product and scope. */
export const QUESTION = { product: 'compliance', scope: 'documents:read' } as const;
const KEY_SCOPES = ['documents:read', 'documents:write'];

export interface VerifyFixture {
  /** A registry_service token: the caller of verify. */
  serviceToken: string;
  tenantIds: string[];
  /** The key of the hot scenario. */
  hotKey: string;
  /** The keys of the many-keys scenario (hotKey not among them). */
  keys: string[];
  revokedKey: string;
  /** The hot key's answer as sent: the body the baseline server answers with. */
  validAnswer: string;
}

export const verifyBody = (key: string) => JSON.stringify({ key, ...QUESTION });

/**
 * The registry's settings for the verify benchmarks. Keys are hashed with a random pepper, as
 * outside dev (HMAC-SHA-256), so verify pays for the HMAC it pays in production. One service
 * account sends every request, far past the default budget of /v1/internal (a guard against
 * loops, not a quota): the limiter still runs, with a budget the load cannot reach, so its cost
 * is part of what is measured.
 */
export function verifyRegistryVars(): Record<string, string> {
  return {
    LOG_LEVEL: 'warn',
    API_KEY_PEPPER: randomBytes(24).toString('base64url'),
    RATE_LIMIT_PER_MINUTE: '999999999',
    RATE_LIMIT_SERVICE_PER_MINUTE: '999999999',
    RATE_LIMIT_INTERNAL_PER_MINUTE: '999999999',
  };
}

/** One request; its status must be `expected`. Returns the answer's text. */
export async function expectStatus(baseUrl: string, token: string | null, method: string, path: string, body: unknown, expected: number): Promise<string> {
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? null : JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status !== expected) throw new Error(`${method} ${path} answered ${response.status}, not ${expected}: ${text}`);
  return text;
}

/** A token from the service's embedded development issuer. */
export async function devToken(baseUrl: string, roles: string[]): Promise<string> {
  const text = await expectStatus(baseUrl, null, 'POST', '/dev/token', { roles, sub: `bench-${roles.join('-')}` }, 200);
  return (JSON.parse(text) as { access_token: string }).access_token;
}

/** One verify; the answer's code must be `code`. Returns the answer as sent. */
export async function verifyExpecting(baseUrl: string, token: string, key: string, code: string): Promise<string> {
  const text = await expectStatus(baseUrl, token, 'POST', VERIFY_PATH, { key, ...QUESTION }, 200);
  const answer = JSON.parse(text) as { code: string };
  if (answer.code !== code) throw new Error(`verify answered ${answer.code}, not ${code}: ${text}`);
  return text;
}

async function eachConcurrently<T, R>(items: readonly T[], concurrency: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

export interface SeedOptions {
  tenants: number;
  /** Keys for the many-keys scenario; the hot and the revoked key come on top. */
  keys: number;
  concurrency: number;
}

export async function seedVerify(baseUrl: string, options: SeedOptions): Promise<VerifyFixture> {
  const admin = await devToken(baseUrl, ['platform_admin']);
  const serviceToken = await devToken(baseUrl, ['registry_service']);
  // On PostgreSQL a later run may seed the same database again: slugs must not collide.
  const run = randomBytes(3).toString('hex');
  const tenantIds = await eachConcurrently(Array.from({ length: options.tenants }), options.concurrency, async (_, i) => {
    const text = await expectStatus(baseUrl, admin, 'POST', '/v1/tenants', { slug: `bench-${run}-${i}`, name: `Bench ${run} ${i}`, plan: 'business' }, 201);
    const id = (JSON.parse(text) as { tenant: { id: string } }).tenant.id;
    await expectStatus(baseUrl, admin, 'PUT', `/v1/entitlements/${id}/${QUESTION.product}`, {}, 200);
    return id;
  });

  const issued = await eachConcurrently(Array.from({ length: options.keys + 2 }), options.concurrency, async (_, i) => {
    const body = { tenant_id: tenantIds[i % tenantIds.length], name: `bench key ${i}`, scopes: KEY_SCOPES, products: [QUESTION.product] };
    return JSON.parse(await expectStatus(baseUrl, admin, 'POST', '/v1/api-keys', body, 201)) as { id: string; key: string };
  });
  const [hot, revoked, ...many] = issued;
  const keys = many.map((k) => k.key);

  // Warms the cache with every valid key and checks each is VALID for the question asked.
  const validAnswer = await verifyExpecting(baseUrl, serviceToken, hot!.key, 'VALID');
  await eachConcurrently(keys, options.concurrency, (key) => verifyExpecting(baseUrl, serviceToken, key, 'VALID'));

  // Cached as VALID first, so the revocation has to reach the cache through the invalidation feed.
  await verifyExpecting(baseUrl, serviceToken, revoked!.key, 'VALID');
  await expectStatus(baseUrl, admin, 'DELETE', `/v1/api-keys/${revoked!.id}`, undefined, 204);
  const deadline = performance.now() + 5_000;
  for (;;) {
    try {
      await verifyExpecting(baseUrl, serviceToken, revoked!.key, 'REVOKED');
      break;
    } catch (error) {
      if (performance.now() > deadline) throw error;
      await sleep(20);
    }
  }

  return { serviceToken, tenantIds, hotKey: hot!.key, keys, revokedKey: revoked!.key, validAnswer };
}

/** A key of the right shape whose checksum does not match: the typo case. */
export function mistyped(key: string): string {
  for (const last of ['0', '1']) {
    const candidate = key.slice(0, -1) + last;
    if (candidate !== key && !isWellFormedApiKey(candidate)) return candidate;
  }
  throw new Error('could not make a malformed key');
}
