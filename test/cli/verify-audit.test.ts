// verify-audit, the offline check of an NDJSON export, run as an auditor runs it: a child process
// reading a file, with the service that wrote the export already gone.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashRecord, PLATFORM_CHAIN } from '../../src/domain/audit.js';
import { fromAuditEvent } from '../../src/http/audit-view.js';
import type { AuditEvent } from '../../src/http/schemas/audit.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { entryArgs, PROJECT_DIR } from '../process/spawn.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { identities } from '../support/identities.js';
import { startServer, type TestServer } from '../support/server.js';
import { DAY_MS, MINUTE_MS, START, TestClock } from '../support/time.js';

const NOW = new Date(START);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The verify-audit command (src/cli/verify-audit.ts) with `args`, to completion. */
async function verifyAudit(...args: string[]): Promise<Run> {
  const child = spawn(process.execPath, [...entryArgs('src/cli/verify-audit.ts'), ...args], {
    cwd: PROJECT_DIR,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  return { code, stdout, stderr };
}

const brokenLines = (run: Run) => run.stdout.split('\n').filter((line) => line.startsWith('BROKEN'));

eachDriver('verify-audit', (driver) => {
  let dir: string;
  let tenant: Tenant;
  let other: Tenant;
  let serverUrl: string;
  /** The tenant's whole export, one JSON text per line, as the service wrote it. */
  let tenantLines: string[];
  /** Its export filtered to action=document.edited. */
  let filteredLines: string[];
  /** What POST /v1/audit answered for the tenant's last event: the receipt an auditor keeps. */
  let lastReceipt: { id: string; hash: string };
  const files = { tenant: '', everything: '', filtered: '' };

  const write = (name: string, lines: string[], eol = '\n') => {
    const path = join(dir, name);
    writeFileSync(path, lines.map((line) => `${line}${eol}`).join(''));
    return path;
  };
  const parsed = (lines: string[]) => lines.map((line) => JSON.parse(line) as AuditEvent);
  const indexOfSeq = (lines: string[], seq: number) => parsed(lines).findIndex((event) => event.chain.seq === seq);
  /** The tenant's export with the event at chain position `seq` changed by `change`. */
  const changedAt = (seq: number, change: (event: AuditEvent) => void) => {
    const lines = [...tenantLines];
    const i = indexOfSeq(lines, seq);
    const event = JSON.parse(lines[i]!) as AuditEvent;
    change(event);
    lines[i] = JSON.stringify(event);
    return { lines, id: event.id };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'verify-audit-'));
    const clock = new TestClock();
    const server: TestServer = await startServer(driver, { clock: clock.now });
    serverUrl = server.url;
    try {
      const api = server.api;
      tenant = await createTenant(api);
      other = await createTenant(api);
      expect((await api.post(`/v1/tenants/${tenant.id}/activate`)).status).toBe(200);
      const service = await server.as(identities.service());
      for (let i = 0; i < 10; i += 1) {
        clock.set(START + i * MINUTE_MS);
        const answer = await (i % 2 === 0 ? api : service).post<{ id: string; hash: string }>('/v1/audit', {
          body: {
            action: i % 3 === 0 ? 'document.edited' : 'document.viewed',
            crud: i % 3 === 0 ? 'u' : 'r',
            tenant_id: tenant.id,
            product: 'docs',
            group: { id: tenant.id, name: 'Zürich AG' },
            actor: { id: `user-${i % 4}`, name: `Dana "D" Scully ${i}`, fields: { dept: 'x-files' } },
            target: { id: `doc-${i}`, type: 'document', name: `Plan ✓ ${i}`, href: `https://docs.example.com/d/${i}` },
            source_ip: i % 2 === 0 ? '2001:db8::7' : '198.51.100.23',
            // Dated up to nine days back, so the export's newest-first order is not chain order.
            created: new Date(NOW.getTime() - (i % 4) * DAY_MS + i).toISOString(),
            description: `edit ${i}: "quoted", line\nbreak, emoji 🚀`,
            is_failure: i === 7,
            fields: { n: String(i) },
            metadata: { trace: `trace-${i}` },
            external_id: `ext-${i}`,
          },
        });
        expect(answer.status, answer.text).toBe(201);
        lastReceipt = answer.body;
      }
      // Events on other chains: the platform's and another tenant's.
      for (const body of [
        { action: 'platform.maintenance', crud: 'u', actor: { id: 'ops' } },
        { action: 'report.exported', crud: 'r', tenant_id: other.id, actor: { id: 'u-9' } },
      ]) {
        expect((await api.post('/v1/audit', { body })).status).toBe(201);
      }

      const exportOf = async (query: string) => {
        const response = await fetch(new URL(`/v1/audit/export?${query}`, server.url), { headers: { authorization: `Bearer ${api.token}` } });
        const text = await response.text();
        expect(response.status, text).toBe(200);
        return text.split('\n').filter((line) => line !== '');
      };
      tenantLines = await exportOf(`tenant_id=${tenant.id}`);
      expect(tenantLines).toHaveLength(12);
      files.tenant = write('tenant.ndjson', tenantLines);
      files.everything = write('everything.ndjson', await exportOf(''));
      filteredLines = await exportOf(`tenant_id=${tenant.id}&action=document.edited`);
      files.filtered = write('filtered.ndjson', filteredLines);
    } finally {
      // Everything below runs against files alone.
      await server.close();
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  describe('an intact export', () => {
    it('verifies a whole tenant with no service running: exit 0, the chain named, "ok: 12 events verified"', async () => {
      await expect(fetch(new URL('/healthz', serverUrl))).rejects.toThrow();
      const run = await verifyAudit(files.tenant);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`chain ${tenant.id}: 12 events at positions 1..12; last hash ${lastReceipt.hash}`);
      expect(run.stdout).toMatch(/^ok: 12 events verified$/m);
      expect(brokenLines(run)).toEqual([]);
    });

    it('verifies an export of every chain, naming each one', async () => {
      const run = await verifyAudit(files.everything);
      expect(run.code, run.stdout).toBe(0);
      for (const key of [PLATFORM_CHAIN, tenant.id, other.id]) expect(run.stdout).toMatch(new RegExp(`^chain ${key}: `, 'm'));
      expect(run.stdout).toMatch(/^ok: \d+ events verified$/m);
    });

    it('verifies the same events in any line order, and with CRLF line ends', async () => {
      expect((await verifyAudit(write('reversed.ndjson', [...tenantLines].reverse()))).code).toBe(0);
      const crlf = await verifyAudit(write('crlf.ndjson', tenantLines, '\r\n'));
      expect(crlf.code, crlf.stdout + crlf.stderr).toBe(0);
      expect(crlf.stdout).toContain('ok: 12 events verified');
    });
  });

  describe('a tampered export', () => {
    it.each<[string, (event: AuditEvent) => void]>([
      ['its description is changed', (e) => (e.description = 'nothing to see here')],
      ['its actor id is changed', (e) => (e.actor!.id = 'user-innocent')],
      ['it is dated an hour earlier', (e) => (e.created = new Date(Date.parse(e.created) - 3_600_000).toISOString())],
      ['its publisher is replaced', (e) => (e.publisher = { sub: 'someone-else', client: null })],
      ['its metadata gains a key', (e) => (e.metadata = { ...e.metadata, extra: 'x' })],
    ])('exits 1 with one "BROKEN ... hash_mismatch" line when one line is changed: %s', async (_change, change) => {
      const { lines, id } = changedAt(6, change);
      const run = await verifyAudit(write('changed.ndjson', lines));
      expect(run.code).toBe(1);
      expect(brokenLines(run)).toEqual([`BROKEN chain ${tenant.id} position 6 (event ${id}): hash_mismatch`]);
      expect(run.stdout).toMatch(/^FAILED: 12 events read$/m);
    });

    it('exits 1 when two hashes are swapped: hash_mismatch at both, link_mismatch at the events after them', async () => {
      const lines = parsed(tenantLines);
      const [a, b] = [lines.find((e) => e.chain.seq === 3)!, lines.find((e) => e.chain.seq === 8)!];
      [a.hash, b.hash] = [b.hash, a.hash];
      const after = (seq: number) => lines.find((e) => e.chain.seq === seq)!.id;
      const run = await verifyAudit(write('swapped.ndjson', lines.map((e) => JSON.stringify(e))));
      expect(run.code).toBe(1);
      expect(brokenLines(run)).toEqual([
        `BROKEN chain ${tenant.id} position 3 (event ${a.id}): hash_mismatch`,
        `BROKEN chain ${tenant.id} position 4 (event ${after(4)}): link_mismatch`,
        `BROKEN chain ${tenant.id} position 8 (event ${b.id}): hash_mismatch`,
        `BROKEN chain ${tenant.id} position 9 (event ${after(9)}): link_mismatch`,
      ]);
    });

    it('exits 1 on a line edited and rehashed: its own hash holds, the next line no longer links to it', async () => {
      const { lines } = changedAt(5, (e) => {
        e.description = 'a more convenient story';
        e.hash = hashRecord(fromAuditEvent(e));
      });
      const next = parsed(lines).find((e) => e.chain.seq === 6)!;
      const run = await verifyAudit(write('rehashed.ndjson', lines));
      expect(run.code).toBe(1);
      expect(brokenLines(run)).toEqual([`BROKEN chain ${tenant.id} position 6 (event ${next.id}): link_mismatch`]);
    });

    it('exits 1 on a duplicated line', async () => {
      const run = await verifyAudit(write('duplicated.ndjson', [...tenantLines, tenantLines[4]!]));
      expect(run.code).toBe(1);
      expect(run.stdout).toMatch(/^BROKEN .*: duplicate_position$/m);
    });

    it('reports positions missing when a middle line is removed: exit 1, and exit 0 with --partial', async () => {
      const lines = tenantLines.filter((_, i) => i !== indexOfSeq(tenantLines, 7));
      const file = write('removed.ndjson', lines);
      const strict = await verifyAudit(file);
      expect(strict.code).toBe(1);
      expect(brokenLines(strict)).toEqual([]);
      expect(strict.stdout).toContain(`chain ${tenant.id}: 11 events at positions 1..12, 1 positions missing;`);
      expect(strict.stdout).toContain('positions are missing: a filtered export? verify it with --partial');
      const partial = await verifyAudit('--partial', file);
      expect(partial.code).toBe(0);
      expect(partial.stdout).toMatch(/^ok: 11 events verified$/m);
    });

    it('cannot tell a chain rewritten and rehashed to its end, but prints a last hash that differs from the receipt', async () => {
      const events = parsed(tenantLines).sort((x, y) => x.chain.seq - y.chain.seq);
      let prev: string | null = null;
      for (const event of events) {
        if (event.chain.seq === 4) event.description = 'history, improved';
        event.chain.prev_hash = prev;
        event.hash = hashRecord(fromAuditEvent(event));
        prev = event.hash;
      }
      const run = await verifyAudit(write('rewritten.ndjson', events.map((e) => JSON.stringify(e))));
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`last hash ${prev!}`);
      expect(prev).not.toBe(lastReceipt.hash);
    });
  });

  describe('hashes removed from an export', () => {
    // Legacy rows only exist at the start of a chain and predate canonical version 2, so an
    // unhashed event of version 2, or after a hashed one, can only have had its hash cleared.
    // Without this rule a forger who removed the hash of each line it rewrote passed, unless the
    // line after it was in the file: in a filtered export it rarely is, and the last hash is unchanged.
    it('exits 1 (with --partial) on a filtered export one of whose events was rewritten and unhashed', async () => {
      const lines = parsed(filteredLines);
      const victim = lines.find((e) => e.chain.seq === 6)!;
      expect(lines.map((e) => e.chain.seq).sort((a, b) => a - b)).toEqual([3, 6, 9, 12]);
      victim.description = 'nothing was edited';
      victim.hash = null;
      const run = await verifyAudit('--partial', write('filtered-unhashed.ndjson', lines.map((e) => JSON.stringify(e))));
      // The last hash an auditor compares with the receipt is untouched: the rule must catch it.
      expect(run.stdout).toContain(`last hash ${lastReceipt.hash}`);
      expect(brokenLines(run)).toEqual([`BROKEN chain ${tenant.id} position 6 (event ${victim.id}): unhashed_event`]);
      expect(run.code).toBe(1);
      // Passing it off as version 1 does not help: it comes after a hashed event.
      victim.chain.canonical_version = 1;
      const again = await verifyAudit('--partial', '--legacy', write('filtered-unhashed-v1.ndjson', lines.map((e) => JSON.stringify(e))));
      expect(brokenLines(again)).toEqual([`BROKEN chain ${tenant.id} position 6 (event ${victim.id}): unhashed_event`]);
      expect(again.code).toBe(1);
    });

    it('exits 1 when every hash is removed and every event rewritten', async () => {
      const lines = parsed(tenantLines).map((e) => JSON.stringify({ ...e, hash: null, description: 'rewritten' }));
      const run = await verifyAudit(write('unhashed.ndjson', lines));
      expect(brokenLines(run)).toHaveLength(12);
      expect(brokenLines(run).every((line) => line.endsWith(': unhashed_event'))).toBe(true);
      expect(run.code).toBe(1);
    });

    it('accepts unhashed version 1 events at the start of a chain only when told they are legacy rows', async () => {
      // What a chain migrated from before hashing looks like: its first events have no hash and
      // the first hashed one links to nothing. Its hashes are recomputed to stay consistent.
      const lines = parsed(tenantLines).sort((a, b) => a.chain.seq - b.chain.seq);
      for (const event of lines.slice(0, 3)) Object.assign(event, { hash: null, chain: { ...event.chain, prev_hash: null, canonical_version: 1 } });
      const firstHashed = lines[3]!;
      firstHashed.chain.prev_hash = null;
      firstHashed.hash = hashRecord(fromAuditEvent(firstHashed));
      for (let i = 4; i < lines.length; i += 1) {
        lines[i]!.chain.prev_hash = lines[i - 1]!.hash;
        lines[i]!.hash = hashRecord(fromAuditEvent(lines[i]!));
      }
      const file = write('legacy.ndjson', lines.map((e) => JSON.stringify(e)));
      const strict = await verifyAudit(file);
      expect(strict.stdout).toContain('3 without a hash (legacy)');
      expect(brokenLines(strict)).toEqual([]);
      expect(strict.code).toBe(1);
      const lenient = await verifyAudit('--legacy', file);
      expect(lenient.code).toBe(0);
      expect(lenient.stdout).toContain('ok: 12 events verified');
    });

    it('catches a hash removed from a middle event of a whole export, by its version and by the link of the event after it', async () => {
      const { lines } = changedAt(5, (e) => {
        e.hash = null;
        e.description = 'nothing happened';
      });
      const run = await verifyAudit(write('middle-unhashed.ndjson', lines));
      expect(run.code).toBe(1);
      const at = (seq: number) => parsed(lines).find((e) => e.chain.seq === seq)!.id;
      expect(brokenLines(run)).toEqual([
        `BROKEN chain ${tenant.id} position 5 (event ${at(5)}): unhashed_event`,
        `BROKEN chain ${tenant.id} position 6 (event ${at(6)}): link_mismatch`,
      ]);
    });
  });

  describe('a filtered export', () => {
    it('exits 1 without --partial (positions missing) and 0 with it', async () => {
      const strict = await verifyAudit(files.filtered);
      expect(strict.code).toBe(1);
      expect(brokenLines(strict)).toEqual([]);
      expect(strict.stdout).toMatch(/positions missing/);
      const partial = await verifyAudit('--partial', files.filtered);
      expect(partial.code).toBe(0);
      // document.edited is every third published event: 4 of the 10.
      expect(partial.stdout).toMatch(/^ok: 4 events verified$/m);
    });
  });

  describe('input that is not an export', () => {
    it.each<[string, () => string[], RegExp]>([
      ['text', () => ['this is not json'], /^verify-audit: line 1: not JSON$/],
      ['a CSV export', () => ['id,created,received', 'a,b,c'], /^verify-audit: line 1: not JSON$/],
      ['JSON without a chain', () => ['{"id": "x", "hash": null}'], /^verify-audit: line 1: not an exported audit event/],
      ['a good export cut mid-line', () => [...tenantLines.slice(0, 3), tenantLines[3]!.slice(0, 40)], /^verify-audit: line 4: not JSON$/],
    ])('exits 2 with one line on stderr for %s', async (_case, lines, message) => {
      const run = await verifyAudit(write('garbage.ndjson', lines()));
      expect(run.code).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(run.stderr.trimEnd()).toMatch(message);
    });

    it('exits 1 for a file without events: an export holds at least its tenant.created', async () => {
      const run = await verifyAudit(write('empty.ndjson', ['', '   ']));
      expect(run.code).toBe(1);
      expect(run.stdout).toContain('the file holds no events');
    });

    it('exits 2 with one line on stderr for a file that does not exist, and for no file at all', async () => {
      for (const args of [[join(dir, 'missing.ndjson')], [], ['--partial']]) {
        const run = await verifyAudit(...args);
        expect(run.code, args.join(' ')).toBe(2);
        expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
      }
    });
  });
});
