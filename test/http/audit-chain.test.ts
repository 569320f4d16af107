import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_CHAIN, hashRecord } from '../../src/domain/audit.js';
import type { ChainReport } from '../../src/domain/audit-chain.js';
import type { AuditEvent } from '../../src/http/schemas/audit.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { appendEvent, walkChain, type StoredEvent } from '../../src/store/audit.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { type Client } from '../support/http.js';
import { startServer, type TestServer } from '../support/server.js';
import { tamper } from '../support/tamper.js';
import { START } from '../support/time.js';

const NOW = new Date(START);
/** Events published after tenant.created, so a seeded chain has EVENTS + 1 rows. */
const EVENTS = 10;

interface ChainRow {
  id: string;
  chain_seq: number;
  prev_hash: string | null;
  hash: string | null;
}

eachDriver('audit chain', (driver) => {
  let server: TestServer;
  let api: Client;
  beforeAll(async () => {
    server = await startServer(driver, { clock: () => NOW });
    api = server.api;
  });
  afterAll(() => server.close());

  const rowsOf = (chainKey: string) =>
    server.db.query<ChainRow>('SELECT id, chain_seq, prev_hash, hash FROM audit_log WHERE chain_key = $1 ORDER BY chain_seq', [
      chainKey,
    ]);

  const verify = async (tenantId?: string) => {
    const answer = await api.get<ChainReport>(tenantId ? `/v1/audit/verify?tenant_id=${tenantId}` : '/v1/audit/verify');
    expect(answer.status).toBe(200);
    return answer.body;
  };

  const event = (tenantId: string | undefined, i: number) => ({
    action: i % 2 === 0 ? 'document.edited' : 'document.viewed',
    crud: i % 2 === 0 ? 'u' : 'r',
    ...(tenantId ? { tenant_id: tenantId } : {}),
    actor: { id: `user-${i % 3}`, name: `User ${i % 3}`, fields: { role: 'editor' } },
    target: { id: `doc-${i}`, type: 'document', name: `Document ${i}` },
    description: `event number ${i}`,
    source_ip: '198.51.100.23',
    fields: { n: String(i) },
    metadata: { trace: `trace-${i}` },
  });

  const publish = async (body: Record<string, unknown>) => {
    const answer = await api.post<{ id: string; hash: string }>('/v1/audit', { body });
    expect(answer.status, answer.text).toBe(201);
    return answer.body;
  };

  /** A fresh tenant whose chain holds tenant.created and EVENTS published events, in order. */
  async function seedChain(): Promise<{ tenant: Tenant; rows: ChainRow[] }> {
    const tenant = await createTenant(api);
    for (let i = 0; i < EVENTS; i += 1) await publish(event(tenant.id, i));
    const rows = await rowsOf(tenant.id);
    expect(rows.map((row) => row.chain_seq)).toEqual(Array.from({ length: EVENTS + 1 }, (_, i) => i + 1));
    return { tenant, rows };
  }

  const storedEvent = async (chainKey: string, id: string): Promise<StoredEvent> => {
    for await (const stored of walkChain(server.db, chainKey)) if (stored.id === id) return stored;
    throw new Error(`no event ${id} in chain ${chainKey}`);
  };

  it('verifies an intact chain: tenant.created and every published event', async () => {
    const { tenant, rows } = await seedChain();
    expect(await verify(tenant.id)).toEqual({ ok: true, checked: EVENTS + 1 });
    const [created] = await server.db.query<{ action: string; target_name: string }>(
      'SELECT action, target_name FROM audit_log WHERE id = $1',
      [rows[0]!.id],
    );
    expect(created).toEqual({ action: 'tenant.created', target_name: tenant.slug });
    // Each row points at the one before it, and the head at the last.
    rows.forEach((row, i) => expect(row.prev_hash).toBe(i === 0 ? null : rows[i - 1]!.hash));
    const [head] = await server.db.query('SELECT last_seq, last_hash FROM audit_chains WHERE chain_key = $1', [tenant.id]);
    expect(head).toEqual({ last_seq: EVENTS + 1, last_hash: rows.at(-1)!.hash });
  });

  it('verifies a chain that never had an event as empty and intact', async () => {
    expect(await verify('5a0c3d4e-1f2a-4b3c-8d4e-5f6a7b8c9d0e')).toEqual({ ok: true, checked: 0 });
  });

  it.each([
    ['description', "UPDATE audit_log SET description = 'nothing to see here' WHERE id = $1"],
    ['metadata', `UPDATE audit_log SET metadata = '{"trace": "trace-forged"}' WHERE id = $1`],
    ['a new metadata key', `UPDATE audit_log SET metadata = metadata || '{"extra": "x"}' WHERE id = $1`],
    ['actor_id', "UPDATE audit_log SET actor_id = 'user-innocent' WHERE id = $1"],
    ['created', "UPDATE audit_log SET created = created - interval '1 hour' WHERE id = $1"],
    ['action', "UPDATE audit_log SET action = 'document.deleted', crud = 'd' WHERE id = $1"],
    ['is_failure', 'UPDATE audit_log SET is_failure = NOT is_failure WHERE id = $1'],
    ['target_fields', `UPDATE audit_log SET target_fields = '{"owner": "someone"}' WHERE id = $1`],
  ])('reports hash_mismatch at a row whose %s was changed in SQL', async (_field, sql) => {
    const { tenant, rows } = await seedChain();
    const victim = rows[4]!;
    await tamper(server.db, sql, [victim.id]);
    expect(await verify(tenant.id)).toEqual({ ok: false, checked: 4, reason: 'hash_mismatch', first_broken_id: victim.id });
  });

  it('reports a gap at the row after one deleted from the middle', async () => {
    const { tenant, rows } = await seedChain();
    await tamper(server.db, 'DELETE FROM audit_log WHERE id = $1', [rows[5]!.id]);
    expect(await verify(tenant.id)).toEqual({ ok: false, checked: 5, reason: 'gap', first_broken_id: rows[6]!.id });
  });

  it('reports a gap at the second row when tenant.created is deleted', async () => {
    const { tenant, rows } = await seedChain();
    await tamper(server.db, 'DELETE FROM audit_log WHERE id = $1', [rows[0]!.id]);
    expect(await verify(tenant.id)).toEqual({ ok: false, checked: 0, reason: 'gap', first_broken_id: rows[1]!.id });
  });

  it('reports a link_mismatch when a deleted middle row is covered by renumbering the rest', async () => {
    const { tenant, rows } = await seedChain();
    await tamper(server.db, 'DELETE FROM audit_log WHERE id = $1', [rows[5]!.id]);
    // Two steps, because (chain_key, chain_seq) is unique and checked row by row.
    await tamper(server.db, 'UPDATE audit_log SET chain_seq = -chain_seq WHERE chain_key = $1 AND chain_seq > 6', [tenant.id]);
    await tamper(server.db, 'UPDATE audit_log SET chain_seq = -chain_seq - 1 WHERE chain_key = $1 AND chain_seq < 0', [tenant.id]);
    expect(await verify(tenant.id)).toEqual({ ok: false, checked: 5, reason: 'link_mismatch', first_broken_id: rows[6]!.id });
  });

  it('reports head_mismatch when the last row is deleted', async () => {
    const { tenant } = await seedChain();
    await tamper(server.db, 'DELETE FROM audit_log WHERE chain_key = $1 AND chain_seq = $2', [tenant.id, EVENTS + 1]);
    const report = await verify(tenant.id);
    expect(report).toEqual({ ok: false, checked: EVENTS, reason: 'head_mismatch' });
  });

  it('reports head_mismatch when every row is deleted but the head is kept', async () => {
    const { tenant } = await seedChain();
    await tamper(server.db, 'DELETE FROM audit_log WHERE chain_key = $1', [tenant.id]);
    expect(await verify(tenant.id)).toEqual({ ok: false, checked: 0, reason: 'head_mismatch' });
  });

  it('detects a forged row inserted at the end with an arbitrary hash', async () => {
    const { tenant, rows } = await seedChain();
    const last = rows.at(-1)!;
    const [forged] = await server.db.query<{ id: string }>(
      `INSERT INTO audit_log (id, tenant_id, chain_key, chain_seq, prev_hash, hash, action, crud, actor_id, created, received)
       SELECT gen_random_uuid(), tenant_id, chain_key, chain_seq + 1, hash, repeat('0', 64), 'tenant.exported', 'r',
              actor_id, created, received
         FROM audit_log WHERE id = $1
       RETURNING id`,
      [last.id],
    );
    expect(await verify(tenant.id)).toEqual({ ok: false, checked: EVENTS + 1, reason: 'hash_mismatch', first_broken_id: forged!.id });
  });

  it('detects a well-hashed row appended behind the head, by the head', async () => {
    const { tenant } = await seedChain();
    const [head] = await server.db.query<{ last_seq: number; last_hash: string }>(
      'SELECT last_seq, last_hash FROM audit_chains WHERE chain_key = $1',
      [tenant.id],
    );
    // The application's own writer makes the row perfect; only the head is put back.
    await server.db.transaction((tx) => appendEvent(tx, { ...event(tenant.id, 99), action: 'tenant.exported', crud: 'r' }, NOW));
    await tamper(server.db, 'UPDATE audit_chains SET last_seq = $2, last_hash = $3 WHERE chain_key = $1', [
      tenant.id,
      head!.last_seq,
      head!.last_hash,
    ]);
    expect(await verify(tenant.id)).toEqual({ ok: false, checked: EVENTS + 2, reason: 'head_mismatch' });
  });

  it('detects two rows whose hashes were swapped, at the earlier one', async () => {
    const { tenant, rows } = await seedChain();
    const [a, b] = [rows[2]!, rows[7]!];
    await tamper(server.db, 'UPDATE audit_log SET hash = $2 WHERE id = $1', [a.id, b.hash]);
    await tamper(server.db, 'UPDATE audit_log SET hash = $2 WHERE id = $1', [b.id, a.hash]);
    expect(await verify(tenant.id)).toEqual({ ok: false, checked: 2, reason: 'hash_mismatch', first_broken_id: a.id });
  });

  it('detects a row edited and rehashed with the canonical form, at the link of the next row', async () => {
    const { tenant, rows } = await seedChain();
    const victim = await storedEvent(tenant.id, rows[3]!.id);
    const rewritten = { ...victim, description: 'a more convenient story' };
    await tamper(server.db, 'UPDATE audit_log SET description = $2, hash = $3 WHERE id = $1', [
      victim.id,
      rewritten.description,
      hashRecord(rewritten),
    ]);
    expect(await verify(tenant.id)).toEqual({ ok: false, checked: 4, reason: 'link_mismatch', first_broken_id: rows[4]!.id });
  });

  it('detects the last row edited and rehashed, by the head', async () => {
    const { tenant, rows } = await seedChain();
    const victim = await storedEvent(tenant.id, rows.at(-1)!.id);
    const rewritten = { ...victim, actor: { ...victim.actor!, id: 'user-innocent' } };
    await tamper(server.db, 'UPDATE audit_log SET actor_id = $2, hash = $3 WHERE id = $1', [
      victim.id,
      'user-innocent',
      hashRecord(rewritten),
    ]);
    expect(await verify(tenant.id)).toEqual({ ok: false, checked: EVENTS + 1, reason: 'head_mismatch' });
  });

  it('detects a row whose hash was cleared to pass it off as older than the chain', async () => {
    const { tenant, rows } = await seedChain();
    await tamper(server.db, 'UPDATE audit_log SET hash = NULL, description = $2 WHERE id = $1', [rows[6]!.id, 'rewritten']);
    expect(await verify(tenant.id)).toEqual({ ok: false, checked: 6, reason: 'hash_mismatch', first_broken_id: rows[6]!.id });
  });

  it('verifies the platform chain (events without a tenant) and notices tampering in it', async () => {
    const published = [];
    for (let i = 0; i < 4; i += 1) published.push(await publish(event(undefined, i)));
    published.push(await publish({ action: 'platform.probe', crud: 'r', is_anonymous: true }));
    const rows = await rowsOf(PLATFORM_CHAIN);
    expect(rows.map((row) => row.id)).toEqual(published.map((p) => p.id));
    expect(rows.map((row) => row.hash)).toEqual(published.map((p) => p.hash));
    expect(await verify()).toEqual({ ok: true, checked: published.length });

    await tamper(server.db, "UPDATE audit_log SET source_ip = '192.0.2.1' WHERE id = $1", [rows[1]!.id]);
    expect(await verify()).toEqual({ ok: false, checked: 1, reason: 'hash_mismatch', first_broken_id: rows[1]!.id });
    // Putting the exact value back restores the chain: the check is of content, nothing sticks.
    await tamper(server.db, "UPDATE audit_log SET source_ip = '198.51.100.23' WHERE id = $1", [rows[1]!.id]);
    expect(await verify()).toEqual({ ok: true, checked: published.length });
  });

  it('keeps a deleted tenant’s events, with tenant_id NULL, and still verifies its chain', async () => {
    const { tenant, rows } = await seedChain();
    await server.db.query('DELETE FROM tenants WHERE id = $1', [tenant.id]);
    const kept = await server.db.query<{ id: string; tenant_id: string | null }>(
      'SELECT id, tenant_id FROM audit_log WHERE chain_key = $1 ORDER BY chain_seq',
      [tenant.id],
    );
    expect(kept.map((row) => row.id)).toEqual(rows.map((row) => row.id));
    expect(kept.every((row) => row.tenant_id === null)).toBe(true);
    expect(await verify(tenant.id)).toEqual({ ok: true, checked: EVENTS + 1 });

    const late = await api.post('/v1/audit', { body: event(tenant.id, 0) });
    expect(late.status).toBe(404);
    expect(await verify(tenant.id)).toEqual({ ok: true, checked: EVENTS + 1 });
  });

  it('gives 40 parallel appends to one tenant consecutive positions 1..n and a valid chain', async () => {
    const tenant = await createTenant(api);
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => api.post<{ id: string; hash: string }>('/v1/audit', { body: event(tenant.id, i) })),
    );
    expect(answers.map((answer) => answer.status)).toEqual(Array.from({ length: 40 }, () => 201));
    const rows = await rowsOf(tenant.id);
    expect(rows.map((row) => row.chain_seq)).toEqual(Array.from({ length: 41 }, (_, i) => i + 1));
    expect(new Set(rows.slice(1).map((row) => row.id))).toEqual(new Set(answers.map((answer) => answer.body.id)));
    expect(await verify(tenant.id)).toEqual({ ok: true, checked: 41 });
  });

  it('appends in parallel to five tenants, each chain complete and valid', async () => {
    const tenants = await Promise.all(Array.from({ length: 5 }, () => createTenant(api)));
    const jobs = tenants.flatMap((tenant) => Array.from({ length: 8 }, (_, i) => ({ tenant, i })));
    const answers = await Promise.all(jobs.map(({ tenant, i }) => api.post('/v1/audit', { body: event(tenant.id, i) })));
    expect(answers.every((answer) => answer.status === 201)).toBe(true);
    for (const tenant of tenants) {
      expect((await rowsOf(tenant.id)).map((row) => row.chain_seq)).toEqual(Array.from({ length: 9 }, (_, i) => i + 1));
      expect(await verify(tenant.id)).toEqual({ ok: true, checked: 9 });
    }
  });

  it('appends one event for ten parallel retries with one external_id', async () => {
    const tenant = await createTenant(api);
    const body = { ...event(tenant.id, 1), external_id: 'publisher-evt-42' };
    const answers = await Promise.all(Array.from({ length: 10 }, () => api.post<{ id: string; hash: string }>('/v1/audit', { body })));
    expect(answers.map((answer) => answer.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 200, 201]);
    expect(new Set(answers.map((answer) => answer.body.id)).size).toBe(1);
    expect(answers.filter((answer) => answer.status === 200).every((a) => a.headers.get('idempotent-replayed') === 'true')).toBe(true);
    expect(await verify(tenant.id)).toEqual({ ok: true, checked: 2 });
  });

  it('stores text in any script byte-exact, so its hash still verifies', async () => {
    const tenant = await createTenant(api);
    const text = 'Zoë’s naïve café 🚀 — עברית، العربية, 漢字, e\u0301, \u200d, "quotes" \\ \t tab';
    const body = {
      action: 'document.renamed',
      crud: 'u',
      tenant_id: tenant.id,
      actor: { id: 'user-ü', name: 'Jürgen 🧑‍💻', fields: { 'name.de': 'Jürgen', emoji: '👩🏽‍🔬' } },
      target: { id: 'doc-漢字', name: 'Ωmega', fields: { title: text } },
      description: text,
      metadata: { note: text, empty: '' },
    };
    const { id } = await publish(body);
    expect(await verify(tenant.id)).toEqual({ ok: true, checked: 2 });
    const page = await api.get<{ items: AuditEvent[] }>(`/v1/audit?tenant_id=${tenant.id}&action=document.renamed`);
    expect(page.body.items).toHaveLength(1);
    expect(page.body.items[0]).toMatchObject({ id, description: text, metadata: body.metadata, actor: { name: 'Jürgen 🧑‍💻' } });
  });

  /** An odd event is stored (and its chain still verifies) or refused with a 400; never a 5xx. */
  async function expectCleanOutcome(extra: Record<string, unknown>) {
    const tenant = await createTenant(api);
    const body = { action: 'document.edited', crud: 'u', tenant_id: tenant.id, actor: { id: 'u1' }, ...extra };
    const answer = await api.post('/v1/audit', { body });
    expect([201, 400], answer.text).toContain(answer.status);
    expect(await verify(tenant.id)).toEqual({ ok: true, checked: answer.status === 201 ? 2 : 1 });
  }

  it('refuses a leap-second created time (RFC 3339, but no JavaScript Date) or stores it, never a 500', () =>
    expectCleanOutcome({ created: '2016-12-31T23:59:60Z' }),
  );

  it('refuses a created time in year 0000 (RFC 3339, but not a PostgreSQL timestamp) or stores it, never a 500', () =>
    expectCleanOutcome({ created: '0000-06-01T00:00:00Z' }),
  );

  it('a tenant id in upper case joins the tenant’s chain instead of starting a second one', async () => {
    const tenant = await createTenant(api);
    await publish({ ...event(tenant.id, 1), tenant_id: tenant.id.toUpperCase() });
    const keys = await server.db.query('SELECT DISTINCT chain_key FROM audit_log WHERE tenant_id = $1', [tenant.id]);
    expect(keys).toEqual([{ chain_key: tenant.id }]);
    expect(await verify(tenant.id)).toEqual({ ok: true, checked: 2 });
  });

  it('an event moved to another tenant by rewriting tenant_id is detected as tenant_mismatch', async () => {
    const { tenant, rows } = await seedChain();
    const other = await createTenant(api);
    await tamper(server.db, 'UPDATE audit_log SET tenant_id = $2 WHERE id = $1', [rows[3]!.id, other.id]);
    // The portal now shows the event to the other tenant and hides it from its own.
    const listed = await api.get<{ items: AuditEvent[] }>(`/v1/audit?tenant_id=${other.id}`);
    expect(listed.body.items.map((item) => item.id)).toContain(rows[3]!.id);
    expect(await verify(tenant.id)).toMatchObject({ ok: false, reason: 'tenant_mismatch', first_broken_id: rows[3]!.id });
  });

  describe('append-only in the database', () => {
    it.each([
      ['changing a field', "UPDATE audit_log SET description = 'nothing to see here' WHERE chain_key = $1"],
      ['clearing the hashes', 'UPDATE audit_log SET hash = NULL, prev_hash = NULL WHERE chain_key = $1'],
      ['clearing tenant_id while the tenant exists', 'UPDATE audit_log SET tenant_id = NULL WHERE chain_key = $1'],
      ['moving a row to another chain position', 'UPDATE audit_log SET chain_seq = chain_seq + 100 WHERE chain_key = $1'],
      ['deleting a row', 'DELETE FROM audit_log WHERE chain_key = $1 AND chain_seq = 2'],
      ['raising legacy_rows', 'UPDATE audit_chains SET legacy_rows = last_seq WHERE chain_key = $1'],
      ['moving the head back', 'UPDATE audit_chains SET last_seq = last_seq - 1 WHERE chain_key = $1'],
      ['deleting the head', 'DELETE FROM audit_chains WHERE chain_key = $1'],
    ])('refuses %s (SQLSTATE 42501), and the chain stays intact', async (_what, sql) => {
      const { tenant, rows } = await seedChain();
      await expect(server.db.query(sql, [tenant.id])).rejects.toMatchObject({ code: '42501' });
      expect(await rowsOf(tenant.id)).toEqual(rows);
      expect(await verify(tenant.id)).toEqual({ ok: true, checked: EVENTS + 1 });
    });

    it.each(['audit_log', 'audit_chains'])('refuses TRUNCATE of %s', async (table) => {
      const { tenant, rows } = await seedChain();
      await expect(server.db.query(`TRUNCATE ${table} CASCADE`)).rejects.toMatchObject({ code: '42501' });
      expect(await rowsOf(tenant.id)).toEqual(rows);
    });

    it('refuses a new chain head that claims legacy rows', async () => {
      await expect(
        server.db.query("INSERT INTO audit_chains (chain_key, last_seq, legacy_rows) VALUES ('forged-chain', 3, 3)"),
      ).rejects.toMatchObject({ code: '42501' });
    });

    it('reports legacy_mismatch when, past the triggers, every hash is cleared and the rows counted as legacy', async () => {
      // This server's clock is pinned before the migrations ran; these events are received now,
      // after hashing began, as every real event since then was.
      const tenant = await createTenant(api);
      for (let i = 0; i < 3; i += 1) await server.db.transaction((tx) => appendEvent(tx, { ...event(tenant.id, i), crud: 'u' }, new Date()));
      expect(await verify(tenant.id)).toEqual({ ok: true, checked: 4 });
      await tamper(server.db, "UPDATE audit_log SET hash = NULL, prev_hash = NULL, description = 'rewritten' WHERE chain_key = $1", [tenant.id]);
      await tamper(server.db, 'UPDATE audit_chains SET legacy_rows = last_seq, last_hash = NULL WHERE chain_key = $1', [tenant.id]);
      const rows = await rowsOf(tenant.id);
      // tenant.created, received at the pinned time, passes for legacy; the next one cannot.
      expect(await verify(tenant.id)).toEqual({ ok: false, checked: 0, reason: 'legacy_mismatch', first_broken_id: rows[1]!.id });
    });

    it('reports tenant_mismatch when, past the triggers, one row loses its tenant_id while the tenant exists', async () => {
      const { tenant, rows } = await seedChain();
      await tamper(server.db, 'UPDATE audit_log SET tenant_id = NULL WHERE id = $1', [rows[4]!.id]);
      // The tenant's own log no longer shows the event: exactly what the edit was for.
      const listed = await api.get<{ items: AuditEvent[] }>(`/v1/audit?tenant_id=${tenant.id}&limit=200`);
      expect(listed.body.items.map((item) => item.id)).not.toContain(rows[4]!.id);
      expect(await verify(tenant.id)).toEqual({ ok: false, checked: 4, reason: 'tenant_mismatch', first_broken_id: rows[4]!.id });
    });
  });

  it('a description with a lone surrogate is refused or verifies, not a false hash_mismatch', () =>
    expectCleanOutcome({ description: 'broken \ud800 pair' }),
  );

  it('a NUL character in the description is refused with 400, not a 500', () =>
    expectCleanOutcome({ description: 'nul \u0000 byte' }),
  );

  // PGlite's own parser read years 1-99 back as 19xx/20xx; the driver now uses pg's parser.
  it('a created time in year 0050 is refused or stored exactly', () =>
    expectCleanOutcome({ created: '0050-06-01T00:00:00Z' }),
  );
});
