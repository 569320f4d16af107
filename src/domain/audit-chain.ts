// Re-walks a chain and says whether it is intact. Each kind of tampering shows as one reason:
//   hash_mismatch  a row was changed (its fields no longer give its hash)
//   link_mismatch  a row does not point at the hash of the row before it (one was replaced)
//   gap            positions jump (a row was deleted from the middle)
//   head_mismatch  the chain head records more or other rows than remain (the tail was deleted,
//                  or rows were inserted after it)
import { hashRecord, type AuditRecord } from './audit.js';

export type ChainBreak = 'hash_mismatch' | 'link_mismatch' | 'gap' | 'head_mismatch';

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
    // Rows from before the chain existed (migration 0002) carry no hash and open the chain.
    if (record.hash === null && previousHash === null) {
      expectedSeq = record.chain_seq + 1;
      continue;
    }
    if (record.chain_seq !== expectedSeq) return broken('gap', record.id);
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
