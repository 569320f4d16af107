// The tenant cache against a scripted database, so every query it makes is counted: misses share
// one query, hits make none, and each kind of invalidation scope drops what it names (a scope it
// cannot read drops everything).
import { describe, expect, it } from 'vitest';
import type { InvalidationScope } from '../../src/caching/scope.js';
import { TenantCache } from '../../src/caching/tenant-cache.js';
import type { Database } from '../../src/store/database.js';

const ACME = { id: '0a2b0e39-6a57-4a36-9a51-0c4f4a0d7a01', slug: 'acme' };
const GLOBEX = { id: '0a2b0e39-6a57-4a36-9a51-0c4f4a0d7a02', slug: 'globex' };

/** Answers loadTenantFacts from `rows` (by id or slug, its only parameter); can hold its answers. */
function scriptedDatabase(rows: Array<{ id: string; slug: string; status?: string }>) {
  let queries = 0;
  let gate: Promise<void> | null = null;
  const query = async <Row,>(_text: string, params: readonly unknown[] = []): Promise<Row[]> => {
    queries += 1;
    const wanted = params[0];
    const found = rows.find((row) => row.id === wanted || row.slug === wanted);
    // The row is read when the query runs; the answer may arrive later (see hold()).
    const answer = found ? [{ status: 'active', ...found, entitlements: [] } as Row] : [];
    if (gate) await gate;
    return answer;
  };
  return {
    db: { query } as unknown as Database,
    rows,
    get queries() {
      return queries;
    },
    hold(): () => void {
      let release = () => {};
      gate = new Promise<void>((resolve) => (release = resolve));
      return () => {
        gate = null;
        release();
      };
    },
  };
}

const tenantScope = (tenantId: string): InvalidationScope => ({ kind: 'tenant', tenantId });

describe('TenantCache', () => {
  it('shares one query among concurrent misses, then answers from memory by id and by slug', async () => {
    const scripted = scriptedDatabase([{ ...ACME }]);
    const cache = new TenantCache(scripted.db);
    const release = scripted.hold();
    const waiting = Array.from({ length: 10 }, () => cache.byIdOrSlug({ id: ACME.id }));
    release();
    for (const facts of await Promise.all(waiting)) expect(facts?.tenant.slug).toBe('acme');
    expect(scripted.queries).toBe(1);
    expect((await cache.byIdOrSlug({ slug: 'acme' }))?.tenant.id).toBe(ACME.id);
    expect((await cache.byIdOrSlug({ id: ACME.id.toUpperCase() }))?.tenant.id).toBe(ACME.id);
    expect(scripted.queries).toBe(1);
  });

  it('does not remember an unknown slug: a tenant created a moment later is found at once', async () => {
    const scripted = scriptedDatabase([]);
    const cache = new TenantCache(scripted.db);
    expect(await cache.byIdOrSlug({ slug: 'acme' })).toBeUndefined();
    scripted.rows.push({ ...ACME });
    expect((await cache.byIdOrSlug({ slug: 'acme' }))?.tenant.id).toBe(ACME.id);
  });

  it("drops the tenant a tenant scope names, and only it; a key scope drops nothing", async () => {
    const scripted = scriptedDatabase([{ ...ACME }, { ...GLOBEX }]);
    const cache = new TenantCache(scripted.db);
    await cache.byIdOrSlug({ id: ACME.id });
    await cache.byIdOrSlug({ id: GLOBEX.id });
    expect(scripted.queries).toBe(2);

    cache.invalidate({ kind: 'key', keyHashHex: 'ab'.repeat(32) });
    await cache.byIdOrSlug({ id: ACME.id });
    expect(scripted.queries).toBe(2);

    cache.invalidate(tenantScope(ACME.id));
    await cache.byIdOrSlug({ slug: 'acme' });
    await cache.byIdOrSlug({ id: GLOBEX.id });
    expect(scripted.queries).toBe(3);
  });

  it('drops every tenant for a scope it cannot read, as for invalidateAll', async () => {
    const scripted = scriptedDatabase([{ ...ACME }, { ...GLOBEX }]);
    const cache = new TenantCache(scripted.db);
    const warm = async () => {
      await cache.byIdOrSlug({ id: ACME.id });
      await cache.byIdOrSlug({ id: GLOBEX.id });
    };
    await warm();
    cache.invalidate({ kind: 'unrecognized' });
    await warm();
    expect(scripted.queries).toBe(4);
    cache.invalidateAll();
    await warm();
    expect(scripted.queries).toBe(6);
  });

  it('does not keep facts whose query a change of the tenant overtook: the next lookup reads again', async () => {
    const scripted = scriptedDatabase([{ ...ACME }]);
    const cache = new TenantCache(scripted.db);
    const release = scripted.hold();
    const first = cache.byIdOrSlug({ id: ACME.id });
    // The tenant is cancelled while its facts are on their way from the database.
    scripted.rows[0]!.status = 'cancelled';
    cache.invalidate(tenantScope(ACME.id));
    release();
    expect((await first)?.tenant.status).toBe('active');
    expect((await cache.byIdOrSlug({ id: ACME.id }))?.tenant.status).toBe('cancelled');
    expect(scripted.queries).toBe(2);
  });
});
