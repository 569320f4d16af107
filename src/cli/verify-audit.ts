// verify-audit [--partial] [--legacy] <export.ndjson>: checks an audit export with no service and
// no database, as an auditor would. Every event's hash is recomputed from its fields (the
// canonical form described in the README), and every event whose predecessor is in the file must
// link to it. Prints one line per chain and one per problem; exits 0 when every event checked and
// 1 on a broken event. Also 1, unless a flag says it is expected, on positions missing inside a
// chain (--partial: the export was filtered) and on events without a hash at the start of a chain
// (--legacy: rows from before hashing began, which nothing proves). The file is read line by
// line; what is kept per event is its position and two hashes.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { ExportVerifier, type ExportReport } from '../domain/audit-chain.js';
import { fromAuditEvent } from '../http/audit-view.js';
import type { AuditEvent } from '../http/schemas/audit.js';

const USAGE = 'usage: verify-audit [--partial] [--legacy] <export.ndjson>';
const FLAGS = ['--partial', '--legacy'];

class UnreadableLine extends Error {}

/** The shape verification relies on; anything else is not an export of this service. */
function exportedEvent(line: string, number: number): AuditEvent {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new UnreadableLine(`line ${number}: not JSON`);
  }
  const event = value as Partial<AuditEvent> | null;
  const chain = event?.chain;
  const valid =
    typeof event?.id === 'string' &&
    (typeof event.hash === 'string' || event.hash === null) &&
    typeof chain?.key === 'string' &&
    Number.isSafeInteger(chain.seq) &&
    (typeof chain.prev_hash === 'string' || chain.prev_hash === null) &&
    (chain.canonical_version === 1 || chain.canonical_version === 2);
  if (!valid) throw new UnreadableLine(`line ${number}: not an exported audit event (id, hash and chain are required)`);
  return event as AuditEvent;
}

async function verifyExportFile(path: string): Promise<ExportReport> {
  const verifier = new ExportVerifier();
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  let number = 0;
  for await (const line of lines) {
    number += 1;
    if (line.trim() === '') continue;
    verifier.add(fromAuditEvent(exportedEvent(line, number)));
  }
  return verifier.finish();
}

function print(report: ExportReport, flags: { partial: boolean; legacy: boolean }): boolean {
  for (const chain of report.chains) {
    const missing = chain.missing > 0 ? `, ${chain.missing} positions missing` : '';
    const unhashed = chain.unhashed > 0 ? `, ${chain.unhashed} without a hash (legacy)` : '';
    console.log(
      `chain ${chain.key}: ${chain.events} events at positions ${chain.first_seq}..${chain.last_seq}${missing}${unhashed}; last hash ${chain.last_hash ?? 'none'}`,
    );
  }
  for (const problem of report.problems) {
    console.log(`BROKEN chain ${problem.chain} position ${problem.seq} (event ${problem.id}): ${problem.reason}`);
  }
  const gaps = report.chains.some((chain) => chain.missing > 0);
  const unhashed = report.chains.some((chain) => chain.unhashed > 0);
  // An export holds at least the event that created its tenant; a file without one is a mistake.
  const ok = report.events > 0 && report.ok && (flags.partial || !gaps) && (flags.legacy || !unhashed);
  if (report.events === 0) console.log('the file holds no events');
  if (report.ok && gaps && !flags.partial) console.log('positions are missing: a filtered export? verify it with --partial');
  if (report.ok && unhashed && !flags.legacy) {
    console.log('events without a hash lead a chain: rows from before hashing began? nothing proves them; accept them with --legacy');
  }
  console.log(ok ? `ok: ${report.events} events verified` : `FAILED: ${report.events} events read`);
  return ok;
}

async function main(args: string[]): Promise<number> {
  const flags = { partial: args.includes('--partial'), legacy: args.includes('--legacy') };
  const files = args.filter((arg) => !FLAGS.includes(arg));
  if (files.length !== 1 || files[0]!.startsWith('-')) {
    console.error(USAGE);
    return 2;
  }
  try {
    return print(await verifyExportFile(files[0]!), flags) ? 0 : 1;
  } catch (error) {
    const reason = error instanceof UnreadableLine ? error.message : error instanceof Error ? error.message : String(error);
    console.error(`verify-audit: ${reason}`);
    return 2;
  }
}

process.exitCode = await main(process.argv.slice(2));
