import { afterAll, beforeAll, expect, it } from 'vitest';
import { verifyChain } from '../../src/domain/audit-chain.js';
import { recordExpiredTrials } from '../../src/jobs/trial-expiry.js';
import { chainHead, walkChain } from '../../src/store/audit.js';
import type { Database } from '../../src/store/database.js';
import { startTrial } from '../../src/store/entitlements.js';
import { openPg } from '../../src/store/pg-driver.js';
import { insertTenant } from '../../src/store/tenants.js';
import { eachDriver, openMigratedDatabase, type TestDatabase } from '../support/drivers.js';
import { randomSlug } from '../support/factories.js';
import { DAY_MS } from '../support/time.js';

const NOW = new Date('2026-11-27T12:00:00.000Z');
const at = (offsetMs: number) => new Date(NOW.getTime() + offsetMs);

async function tenantWithTrials(db: Database, ends: Record<string, Date>): Promise<string> {
  const tenant = await insertTenant(db, {
    slug: randomSlug(),
    name: 'Trialist',
    status: 'trial',
    kind: 'customer',
    plan: null,
    trialEndsAt: null,
    erpId: null,
    stripeId: null,
    salesOwner: null,
  });
  for (const [product, endsAt] of Object.entries(ends)) await startTrial(db, tenant.id, product, at(-30 * DAY_MS), endsAt);
  return tenant.id;
}

const expiryEvents = (db: Database, tenantId: string) =>
  db.query<{ product: string; fields: Record<string, string> }>(
    `SELECT product, fields FROM audit_log WHERE tenant_id = $1 AND action = 'entitlement.trial_expired' ORDER BY product`,
    [tenantId],
  );

eachDriver('trial expiry job', (driver) => {
  let database: TestDatabase;
  let db: Database;
  beforeAll(async () => {
    database = await openMigratedDatabase(driver);
    db = database.db;
  });
  afterAll(() => database.close());

  it('writes one event per ended trial, none for running ones, and nothing on the next round', async () => {
    const tenantId = await tenantWithTrials(db, { risk: at(-DAY_MS), compliance: at(0), training: at(DAY_MS) });
    expect(await recordExpiredTrials(db, NOW)).toBeGreaterThanOrEqual(2);
    expect(await expiryEvents(db, tenantId)).toEqual([
      { product: 'compliance', fields: { trial_ends_at: at(0).toISOString() } },
      { product: 'risk', fields: { trial_ends_at: at(-DAY_MS).toISOString() } },
    ]);
    expect(await recordExpiredTrials(db, NOW)).toBe(0);
    expect(await expiryEvents(db, tenantId)).toHaveLength(2);

    // A day later the third trial has ended too: exactly one more event.
    await recordExpiredTrials(db, at(DAY_MS));
    expect((await expiryEvents(db, tenantId)).map((e) => e.product)).toEqual(['compliance', 'risk', 'training']);
    expect(await verifyChain(walkChain(db, tenantId), await chainHead(db, tenantId))).toMatchObject({ ok: true });
  });

  it('records a backlog larger than one batch', async () => {
    const ends = Object.fromEntries(Array.from({ length: 130 }, (_, i) => [`product-${i}`, at(-DAY_MS)]));
    const tenantId = await tenantWithTrials(db, ends);
    await recordExpiredTrials(db, NOW);
    expect(await expiryEvents(db, tenantId)).toHaveLength(130);
  });

  it('writes each event exactly once with two workers at the same time', async () => {
    const ends = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`p-${i}`, at(-DAY_MS)]));
    const tenantId = await tenantWithTrials(db, ends);
    // On PostgreSQL the second worker is a second pool, like a second replica; PGlite has one
    // connection, so there the two rounds interleave on it.
    const second = database.url ? openPg({ url: database.url, poolSize: 2 }) : db;
    try {
      const counts = await Promise.all([recordExpiredTrials(db, NOW), recordExpiredTrials(second, NOW), recordExpiredTrials(db, NOW)]);
      expect(counts.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(0);
      // A worker that found the lock taken skipped its round; one more round picks up the rest.
      await recordExpiredTrials(second, NOW);
    } finally {
      if (second !== db) await second.close();
    }
    const events = await expiryEvents(db, tenantId);
    expect(events).toHaveLength(40);
    expect(new Set(events.map((e) => e.product)).size).toBe(40);
  });

  it('moves each tenant whose trial ended to frozen with one tenant.trial_ended event, with two workers at once', async () => {
    const ids: string[] = [];
    // More than a batch, ended; and one still running.
    for (let i = 0; i < 130; i += 1) {
      const tenant = await insertTenant(db, {
        slug: randomSlug('ended'),
        name: 'Ended trial',
        status: 'trial',
        kind: 'customer',
        plan: null,
        trialEndsAt: at(-i * 60_000),
        erpId: null,
        stripeId: null,
        salesOwner: null,
      });
      ids.push(tenant.id);
    }
    const running = await insertTenant(db, {
      slug: randomSlug('running'),
      name: 'Running trial',
      status: 'trial',
      kind: 'customer',
      plan: null,
      trialEndsAt: at(1),
      erpId: null,
      stripeId: null,
      salesOwner: null,
    });
    const second = database.url ? openPg({ url: database.url, poolSize: 2 }) : db;
    try {
      await Promise.all([recordExpiredTrials(db, NOW), recordExpiredTrials(second, NOW), recordExpiredTrials(db, NOW)]);
      await recordExpiredTrials(second, NOW);
    } finally {
      if (second !== db) await second.close();
    }
    const rows = await db.query<{ id: string; status: string; trial_ends_at: Date | null; events: number }>(
      `SELECT t.id, t.status, t.trial_ends_at,
              (SELECT count(*) FROM audit_log a WHERE a.tenant_id = t.id AND a.action = 'tenant.trial_ended')::int AS events
       FROM tenants t WHERE t.id = ANY($1::uuid[])`,
      [[...ids, running.id]],
    );
    const byId = new Map(rows.map((row) => [row.id, row]));
    for (const id of ids) expect(byId.get(id)).toMatchObject({ status: 'frozen', trial_ends_at: null, events: 1 });
    expect(byId.get(running.id)).toMatchObject({ status: 'trial', events: 0 });
    for (const id of ids.slice(0, 3)) expect(await verifyChain(walkChain(db, id), await chainHead(db, id))).toMatchObject({ ok: true });
  });
});
