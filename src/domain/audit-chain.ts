// Re-walks a chain and says whether it is intact. Each kind of tampering shows as one reason:
//   hash_mismatch  a row was changed (its fields no longer give its hash)
//   link_mismatch  a row does not point at the hash of the row before it (one was replaced)
//   gap            positions jump (a row was deleted from the middle)
//   head_mismatch  the chain head records more or other rows than remain (the tail was deleted,
//                  or rows were inserted after it)
//   tenant_mismatch a row's tenant_id names another tenant than its chain (moved between tenants;
//                  tenant_id is not hashed because deleting a tenant sets it to NULL)
import { PLATFORM_CHAIN, hashRecord, type AuditRecord } from './audit.js';

export type ChainBreak = 'hash_mismatch' | 'link_mismatch' | 'gap' | 'head_mismatch' | 'tenant_mismatch';

export interface ChainReport {
  ok: boolean;
  /** Rows whose hash was recomputed and matched, up to the first break. */
  checked: number;
  /** The first row found broken; absent when the break is at the tail (head_mismatch). */
  first_broken_id?: string;
  reason?: ChainBreak;
}

export interface ChainHead {
  last_seq: number;
  last_hash: string | null;
  /** Rows that existed before the chain (migration 0002) and so carry no hash. */
  legacy_rows: number;
}

export async function verifyChain(
  records: AsyncIterable<AuditRecord & { hash: string | null }>,
  head: ChainHead | undefined,
): Promise<ChainReport> {
  let checked = 0;
  let expectedSeq = 1;
  let previousHash: string | null = null;
  const broken = (reason: ChainBreak, id?: string): ChainReport => ({
    ok: false,
    checked,
    reason,
    ...(id ? { first_broken_id: id } : {}),
  });

  for await (const record of records) {
    if (record.chain_seq !== expectedSeq) return broken('gap', record.id);
    const tenantOfChain = record.chain_key === PLATFORM_CHAIN ? null : record.chain_key;
    if (record.tenant_id !== null && record.tenant_id !== tenantOfChain) return broken('tenant_mismatch', record.id);
    // Rows from before the chain existed carry no hash; the head says how many there were.
    if (record.chain_seq <= (head?.legacy_rows ?? 0)) {
      if (record.hash !== null) return broken('hash_mismatch', record.id);
      expectedSeq += 1;
      continue;
    }
    if (record.prev_hash !== previousHash) return broken('link_mismatch', record.id);
    if (hashRecord(record) !== record.hash) return broken('hash_mismatch', record.id);
    checked += 1;
    expectedSeq += 1;
    previousHash = record.hash;
  }

  const lastSeq = expectedSeq - 1;
  const headSeq = head?.last_seq ?? 0;
  if (headSeq !== lastSeq || (head?.last_hash ?? null) !== previousHash) return broken('head_mismatch');
  return { ok: true, checked };
}
