// Small factories: random, valid resources so tests never collide with each other.
import { randomBytes } from 'node:crypto';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import type { Client } from './http.js';

export const randomSlug = (prefix = 't') => `${prefix}-${randomBytes(5).toString('hex')}`;

export async function createTenant(api: Client, overrides: Record<string, unknown> = {}): Promise<Tenant> {
  const slug = randomSlug();
  const answer = await api.post<{ tenant: Tenant }>('/v1/tenants', {
    body: { slug, name: `Tenant ${slug}`, ...overrides },
  });
  if (answer.status !== 201) throw new Error(`createTenant: ${answer.status} ${answer.text}`);
  return answer.body.tenant;
}
