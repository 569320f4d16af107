// Re-walks a chain and says whether it is intact. Each kind of tampering shows as one reason:
//   hash_mismatch  a row was changed (its fields no longer give its hash)
//   link_mismatch  a row does not point at the hash of the row before it (one was replaced)
//   gap            positions jump (a row was deleted from the middle)
//   head_mismatch  the chain head records more or other rows than remain (the tail was deleted,
//                  or rows were inserted after it)
//   tenant_mismatch a row's tenant_id names another tenant than its chain (moved between tenants),
//                  or is NULL while the chain's tenant still exists (tenant_id is not hashed,
//                  because deleting a tenant sets it to NULL; only then may it be NULL)
//   legacy_mismatch a row counted as legacy (unhashed, from before the chain existed) was received
//                  after the chain existed: hashes were cleared to pass rows off as old ones
import { PLATFORM_CHAIN, hashRecord, type AuditRecord } from './audit.js';

export const CHAIN_BREAKS = ['hash_mismatch', 'link_mismatch', 'gap', 'head_mismatch', 'tenant_mismatch', 'legacy_mismatch'] as const;
export type ChainBreak = (typeof CHAIN_BREAKS)[number];

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

/** What the database knows besides the rows, against which they are checked. */
export interface ChainContext {
  /** Whether the chain's tenant still exists (false for the platform chain). */
  tenantExists: boolean;
  /** When hashing began (migration 0002 applied): every legacy row was received by then. */
  hashedSince: string | null;
}

export async function verifyChain(
  records: AsyncIterable<AuditRecord & { hash: string | null }>,
  head: ChainHead | undefined,
  context: ChainContext = { tenantExists: false, hashedSince: null },
): Promise<ChainReport> {
  const hashedSince = context.hashedSince === null ? null : Date.parse(context.hashedSince);
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
    const expectedTenant = context.tenantExists ? tenantOfChain : null;
    if (record.tenant_id !== null ? record.tenant_id !== tenantOfChain : expectedTenant !== null) {
      return broken('tenant_mismatch', record.id);
    }
    // Rows from before the chain existed carry no hash; the head says how many there were.
    if (record.chain_seq <= (head?.legacy_rows ?? 0)) {
      if (record.hash !== null) return broken('hash_mismatch', record.id);
      if (hashedSince !== null && Date.parse(record.received) > hashedSince) return broken('legacy_mismatch', record.id);
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

/**
 * Verification of an export, offline: no database, no head, perhaps only part of a chain (a
 * filtered export). What it can prove: every event's hash covers its fields, and every event
 * whose predecessor is in the file links to it. What it reports for the reader to judge: the
 * positions missing between the first and last event of each chain, and each chain's last hash,
 * to compare with a receipt (the hash POST /v1/audit answered) or an earlier export.
 */
export type ExportBreak = 'hash_mismatch' | 'link_mismatch' | 'duplicate_position' | 'unhashed_event';

export interface ExportProblem {
  chain: string;
  seq: number;
  id: string;
  reason: ExportBreak;
}

export interface ExportChainSummary {
  key: string;
  events: number;
  /**
   * Events without a hash that may be legacy rows (canonical version 1, before every hashed
   * event of the chain): present, but nothing proves their content. Any other event without a
   * hash is a problem (unhashed_event): its hash was cleared.
   */
  unhashed: number;
  first_seq: number;
  last_seq: number;
  last_hash: string | null;
  /** Positions between first_seq and last_seq that the file does not hold. */
  missing: number;
}

export interface ExportReport {
  ok: boolean;
  events: number;
  problems: ExportProblem[];
  chains: ExportChainSummary[];
}

interface Link {
  id: string;
  hash: string | null;
  prev: string | null;
  /** No hash, and of the version legacy rows have. */
  legacy: boolean;
}

export class ExportVerifier {
  private readonly chains = new Map<string, Map<number, Link>>();
  private readonly problems: ExportProblem[] = [];
  private events = 0;

  /** Checks one event's own hash and keeps what its links are checked with. */
  add(record: AuditRecord & { hash: string | null }): void {
    this.events += 1;
    const positions = this.chains.get(record.chain_key) ?? new Map<number, Link>();
    this.chains.set(record.chain_key, positions);
    const problem = (reason: ExportBreak) => this.problems.push({ chain: record.chain_key, seq: record.chain_seq, id: record.id, reason });
    if (positions.has(record.chain_seq)) return void problem('duplicate_position');
    // Legacy rows predate canonical version 2; a newer event always has a hash.
    if (record.hash === null && record.canonical_version !== 1) problem('unhashed_event');
    if (record.hash !== null && hashRecord(record) !== record.hash) problem('hash_mismatch');
    const legacy = record.hash === null && record.canonical_version === 1;
    positions.set(record.chain_seq, { id: record.id, hash: record.hash, prev: record.prev_hash, legacy });
  }

  /** Checks the links between the events held, and sums up each chain. */
  finish(): ExportReport {
    const chains: ExportChainSummary[] = [];
    for (const [key, positions] of [...this.chains].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const seqs = [...positions.keys()].sort((a, b) => a - b);
      let unhashed = 0;
      let hashedSeen = false;
      for (const seq of seqs) {
        const link = positions.get(seq)!;
        if (link.hash === null) {
          // Legacy rows are of version 1 (add() reported any other) and lead their chain.
          if (link.legacy && !hashedSeen) unhashed += 1;
          else if (link.legacy) this.problems.push({ chain: key, seq, id: link.id, reason: 'unhashed_event' });
        } else hashedSeen = true;
        // The first event of a chain, and the first hashed one after legacy rows, link to nothing.
        const before = seq === 1 ? { hash: null } : positions.get(seq - 1);
        if (before !== undefined && link.hash !== null && link.prev !== before.hash) {
          this.problems.push({ chain: key, seq, id: link.id, reason: 'link_mismatch' });
        }
      }
      const first = seqs[0]!;
      const last = seqs.at(-1)!;
      chains.push({
        key,
        events: seqs.length,
        unhashed,
        first_seq: first,
        last_seq: last,
        last_hash: positions.get(last)!.hash,
        missing: last - first + 1 - seqs.length,
      });
    }
    const problems = [...this.problems].sort((a, b) => (a.chain === b.chain ? a.seq - b.seq : a.chain < b.chain ? -1 : 1));
    return { ok: problems.length === 0, events: this.events, problems, chains };
  }
}
