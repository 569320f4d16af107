// verifyChain over chains built the way the store builds them: an intact chain passes, and each
// kind of tampering (an edited, rehashed, deleted, duplicated or appended row, a cleared tenant,
// rows passed off as legacy) is reported at the row where it shows.
import { describe, expect, it } from 'vitest';
import { hashRecord, toRecord, type AuditRecord } from '../../src/domain/audit.js';
import { verifyChain, type ChainHead } from '../../src/domain/audit-chain.js';

const TENANT = '3f6c2a1e-8b1d-4c7e-9f0a-5d2b7c9e1a44';
const RECEIVED = new Date('2026-11-27T10:00:00.000Z');

type Row = AuditRecord & { hash: string | null };

/** n events chained the way the store chains them, and the head it would keep. */
function buildChain(n: number, chainKey = TENANT): { rows: Row[]; head: ChainHead } {
  const rows: Row[] = [];
  let prevHash: string | null = null;
  for (let seq = 1; seq <= n; seq += 1) {
    const record = toRecord(
      { action: 'doc.edited', crud: 'u', tenant_id: chainKey, actor: { id: `user-${seq % 3}` }, description: `edit ${seq}` },
      {
        id: `00000000-0000-4000-8000-${String(seq).padStart(12, '0')}`,
        chainSeq: seq,
        prevHash,
        received: new Date(RECEIVED.getTime() + seq),
      },
    );
    const hash = hashRecord(record);
    rows.push({ ...record, hash });
    prevHash = hash;
  }
  return { rows, head: { last_seq: n, last_hash: prevHash, legacy_rows: 0 } };
}

async function* stream(rows: Row[]): AsyncGenerator<Row> {
  for (const row of rows) yield row;
}

const verify = (rows: Row[], head: ChainHead | undefined) => verifyChain(stream(rows), head);

describe('verifyChain', () => {
  it('accepts an intact chain and counts every row', async () => {
    const { rows, head } = buildChain(10);
    expect(await verify(rows, head)).toEqual({ ok: true, checked: 10 });
  });

  it('accepts an empty chain with no head, and one with an empty head', async () => {
    expect(await verify([], undefined)).toEqual({ ok: true, checked: 0 });
    expect(await verify([], { last_seq: 0, last_hash: null, legacy_rows: 0 })).toEqual({ ok: true, checked: 0 });
  });

  it('reports hash_mismatch at a row whose fields were changed', async () => {
    const { rows, head } = buildChain(10);
    rows[4] = { ...rows[4]!, description: 'rewritten' };
    expect(await verify(rows, head)).toEqual({ ok: false, checked: 4, reason: 'hash_mismatch', first_broken_id: rows[4].id });
  });

  it('reports hash_mismatch at a row whose hash was replaced', async () => {
    const { rows, head } = buildChain(5);
    rows[0] = { ...rows[0]!, hash: 'f'.repeat(64) };
    expect(await verify(rows, head)).toEqual({ ok: false, checked: 0, reason: 'hash_mismatch', first_broken_id: rows[0].id });
  });

  it('reports link_mismatch at a row rehashed over a different predecessor', async () => {
    const { rows, head } = buildChain(8);
    const forged: AuditRecord = { ...rows[5]!, prev_hash: 'c'.repeat(64) };
    rows[5] = { ...forged, hash: hashRecord(forged) };
    expect(await verify(rows, head)).toEqual({ ok: false, checked: 5, reason: 'link_mismatch', first_broken_id: rows[5].id });
  });

  it('reports link_mismatch after a row that was edited and rehashed', async () => {
    const { rows, head } = buildChain(8);
    const edited: AuditRecord = { ...rows[2]!, description: 'covered up' };
    rows[2] = { ...edited, hash: hashRecord(edited) };
    expect(await verify(rows, head)).toEqual({ ok: false, checked: 3, reason: 'link_mismatch', first_broken_id: rows[3]!.id });
  });

  it('reports a gap at the row after one deleted from the middle', async () => {
    const { rows, head } = buildChain(10);
    const after = rows[6]!;
    rows.splice(5, 1);
    expect(await verify(rows, head)).toEqual({ ok: false, checked: 5, reason: 'gap', first_broken_id: after.id });
  });

  it('reports a gap when the first row is deleted', async () => {
    const { rows, head } = buildChain(4);
    const second = rows[1]!;
    expect(await verify(rows.slice(1), head)).toEqual({ ok: false, checked: 0, reason: 'gap', first_broken_id: second.id });
  });

  it('reports head_mismatch without a row id when the tail is deleted', async () => {
    const { rows, head } = buildChain(10);
    const report = await verify(rows.slice(0, 9), head);
    expect(report).toEqual({ ok: false, checked: 9, reason: 'head_mismatch' });
    expect(report).not.toHaveProperty('first_broken_id');
  });

  it('reports head_mismatch when every row is deleted but the head remains', async () => {
    const { head } = buildChain(3);
    expect(await verify([], head)).toEqual({ ok: false, checked: 0, reason: 'head_mismatch' });
  });

  it('reports head_mismatch for a well-hashed row appended behind the head', async () => {
    const { rows, head } = buildChain(6);
    const longer = buildChain(7).rows;
    expect(longer.slice(0, 6)).toEqual(rows);
    expect(await verify(longer, head)).toEqual({ ok: false, checked: 7, reason: 'head_mismatch' });
  });

  it('reports head_mismatch when the head hash does not match the last row', async () => {
    const { rows, head } = buildChain(5);
    expect(await verify(rows, { ...head, last_hash: 'd'.repeat(64) })).toEqual({ ok: false, checked: 5, reason: 'head_mismatch' });
    expect(await verify(rows, undefined)).toEqual({ ok: false, checked: 5, reason: 'head_mismatch' });
  });

  it('reports a gap for a duplicated position', async () => {
    const { rows, head } = buildChain(5);
    rows.splice(3, 0, rows[2]!);
    expect(await verify(rows, head)).toEqual({ ok: false, checked: 3, reason: 'gap', first_broken_id: rows[3]!.id });
  });

  it('skips rows from before the chain existed and checks the rows after them', async () => {
    const template = buildChain(1).rows[0]!;
    const legacy: Row[] = [1, 2].map((seq) => ({ ...template, id: `legacy-${seq}`, chain_seq: seq, prev_hash: null, hash: null }));
    const chained: Row[] = [];
    let prevHash: string | null = null;
    for (let seq = 3; seq <= 5; seq += 1) {
      const position = { id: `new-${seq}`, chainSeq: seq, prevHash, received: RECEIVED };
      const record = toRecord({ action: 'x', crud: 'c', tenant_id: TENANT }, position);
      const hash = hashRecord(record);
      chained.push({ ...record, hash });
      prevHash = hash;
    }
    expect(await verify([...legacy, ...chained], { last_seq: 5, last_hash: prevHash, legacy_rows: 2 })).toEqual({ ok: true, checked: 3 });
  });

  it('reports tenant_mismatch for a row whose tenant_id was cleared while the tenant exists', async () => {
    const { rows, head } = buildChain(5);
    rows[2] = { ...rows[2]!, tenant_id: null };
    const context = { tenantExists: true, hashedSince: null };
    expect(await verifyChain(stream(rows), head, context)).toEqual({ ok: false, checked: 2, reason: 'tenant_mismatch', first_broken_id: rows[2].id });
    // Once the tenant is deleted, every row of its chain has lost its tenant_id legitimately.
    const deleted = rows.map((row) => ({ ...row, tenant_id: null }));
    expect(await verifyChain(stream(deleted), head, { tenantExists: false, hashedSince: null })).toEqual({ ok: true, checked: 5 });
    expect(await verifyChain(stream(deleted), head, context)).toMatchObject({ ok: false, reason: 'tenant_mismatch', first_broken_id: rows[0]!.id });
  });

  it('reports legacy_mismatch for rows passed off as legacy that were received after hashing began', async () => {
    const { rows } = buildChain(5);
    // Every hash cleared and the head told all five rows are legacy: without the cut-off, ok.
    const forged = rows.map((row) => ({ ...row, hash: null, prev_hash: null }));
    const head = { last_seq: 5, last_hash: null, legacy_rows: 5 };
    expect(await verifyChain(stream(forged), head)).toEqual({ ok: true, checked: 0 });
    const hashedSince = new Date(RECEIVED.getTime() - 1).toISOString();
    expect(await verifyChain(stream(forged), head, { tenantExists: false, hashedSince })).toEqual({
      ok: false,
      checked: 0,
      reason: 'legacy_mismatch',
      first_broken_id: rows[0]!.id,
    });
    // Rows received before hashing began pass as legacy.
    const before = new Date(RECEIVED.getTime() + 10_000).toISOString();
    expect(await verifyChain(stream(forged), head, { tenantExists: false, hashedSince: before })).toEqual({ ok: true, checked: 0 });
  });

  it('refuses a row without a hash after the chain has started', async () => {
    const { rows, head } = buildChain(5);
    rows[3] = { ...rows[3]!, hash: null };
    expect(await verify(rows, head)).toEqual({ ok: false, checked: 3, reason: 'hash_mismatch', first_broken_id: rows[3].id });
  });
});
