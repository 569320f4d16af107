// Reads of the audit log hold a bounded amount of it: list pages are cut by bytes as well as by
// rows, exports and verifications walk the log batch by batch, and at most a few of those heavy
// reads run at once (per replica and per caller). An export whose client stops reading keeps its
// slot only until it disconnects, or until the server cuts it after EXPORT_STALL_MS.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEventInput } from '../../src/domain/audit.js';
import type { AuditEvent } from '../../src/http/schemas/audit.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { BATCH_BYTES } from '../../src/store/audit.js';
import { appendInTransactions } from '../support/audit-seed.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { problemOf, type Answer } from '../support/http.js';
import { identities } from '../support/identities.js';
import { startServer, startServerOn, type StartedApp, type TestServer } from '../support/server.js';
import { START } from '../support/time.js';

interface Page {
  items: AuditEvent[];
  next_cursor: string | null;
}
interface Fetched {
  status: number;
  headers: Headers;
  text: string;
}

const NOW = new Date(START);
/** The budgets of the server under test: two exports and two verifications at once, one of each per caller. */
const HEAVY = { export: { perReplica: 2, perCaller: 1 }, verify: { perReplica: 2, perCaller: 1 }, stream: { perReplica: 2, perCaller: 1 } };
/** The stall limit of the app that is left unread (the service's own is 30 s: EXPORT_STALL_MS). */
const EXPORT_STALL_MS = 4_000;
/** How long the background stall waits for the server to cut it. */
const STALL_GIVE_UP_MS = 30_000;
/** A chain that never had an event: exporting it is a heavy read that costs nothing. */
const EMPTY_CHAIN = '5a0c3d4e-1f2a-4b3c-8d4e-5f6a7b8c9d0e';

/** The largest kernel socket buffer on this machine (send side, which autotunes up to it). */
function socketBufferMax(): number {
  try {
    const max = (file: string) => Number(readFileSync(file, 'utf8').trim().split(/\s+/).at(-1));
    return Math.max(max('/proc/sys/net/ipv4/tcp_wmem'), max('/proc/sys/net/core/wmem_max'));
  } catch {
    return 4 * 1024 * 1024;
  }
}
/**
 * Bytes of export that cannot all sit in socket buffers, so a client that does not read holds
 * the answer open: the server's send buffer and the client's receive buffer, three times over.
 */
const STALL_BYTES = Math.max(12 * 1024 * 1024, 3 * (socketBufferMax() + 256 * 1024));
/** An event of about 30 KB: 50 fields and 8 metadata values of 500 characters. */
const EVENT_BYTES = 30_000;
const EVENTS = Math.ceil(STALL_BYTES / EVENT_BYTES);

const largeEvent = (tenantId: string, i: number): AuditEventInput => {
  const value = (key: string) => `${key}:${i}:`.padEnd(500, String.fromCharCode(97 + (i % 26)));
  return {
    action: i % 3 === 0 ? 'document.archived' : 'document.scanned',
    crud: 'c',
    tenant_id: tenantId,
    actor: { id: `scanner-${i % 7}`, name: 'Archive scanner' },
    target: { id: `doc-${i}`, type: 'document' },
    // Many events share a created time, so pages and batches are cut among equal times (by id).
    created: new Date(NOW.getTime() - 60_000 - (i % 40) * 1_000).toISOString(),
    description: `page ${i} of the archive`,
    fields: Object.fromEntries(Array.from({ length: 50 }, (_, k) => [`f${k}`, value(`f${k}`)])),
    metadata: Object.fromEntries(Array.from({ length: 8 }, (_, k) => [`m${k}`, value(`m${k}`)])),
  };
};

const operator = (n: number) => ({ ...identities.platformAdmin(), sub: `operator-${n}` });

/** Retries `attempt` until `done` holds, for at most timeoutMs; answers the last attempt. */
async function eventually<T>(attempt: () => Promise<T>, done: (answer: T) => boolean, timeoutMs = 5_000, intervalMs = 50): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const answer = await attempt();
    if (done(answer) || performance.now() > deadline) return answer;
    await sleep(intervalMs);
  }
}

/**
 * Requests a path on a raw socket, reads the first chunk (to learn the status), then stops
 * reading for good: a large answer backs up into the socket buffers and stays unfinished.
 */
async function requestWithoutReading(baseUrl: string, bearer: string, path: string): Promise<{ status: number; socket: net.Socket }> {
  const socket = net.connect(Number(new URL(baseUrl).port), '127.0.0.1');
  socket.on('error', () => {});
  const first = new Promise<Buffer>((resolve) => {
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      resolve(chunk);
    });
  });
  await once(socket, 'connect');
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${bearer}\r\n\r\n`);
  const head = (await first).toString('latin1');
  return { status: Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1]), socket };
}

/** What happened to an export left unread: when its slot came free, and what its client got. */
interface StallOutcome {
  /** Milliseconds from the request to the first export its caller was admitted to again; null if never. */
  freedAfterMs: number | null;
  /** Bytes the client received once it read again, and whether the chunked answer ended properly. */
  received: number;
  complete: boolean;
}

/**
 * Leaves an export of `path` unread and measures, by probing with another export of the same
 * caller (of an empty chain, which costs nothing), when the server freed its slot.
 */
async function stallAndWatch(app: StartedApp, path: string, probePath: string, giveUpMs: number): Promise<StallOutcome> {
  const startedAt = performance.now();
  const { status, socket } = await requestWithoutReading(app.url, app.api.token!, path);
  if (status !== 200) throw new Error(`the export answered ${status}`);
  try {
    const probe = await eventually(() => app.api.get(probePath), (answer) => answer.status !== 429, giveUpMs, 250);
    const freedAfterMs = probe.status === 429 ? null : performance.now() - startedAt;
    let received = 0;
    let tail = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      tail = (tail + chunk.toString('latin1')).slice(-16);
    });
    socket.resume();
    if (freedAfterMs !== null) await once(socket, 'close');
    return { freedAfterMs, received, complete: tail.endsWith('\r\n0\r\n\r\n') };
  } finally {
    socket.destroy();
  }
}

eachDriver('bounded audit reads', (driver) => {
  let server: TestServer;
  let tenant: Tenant;
  /** Every event of the tenant, newest first by (created, id), with its stored size. */
  let expected: Array<{ id: string; size_bytes: number }>;
  const tokens = new Map<string, string>();
  let stallApp: StartedApp;
  let stalled: Promise<{ outcome: StallOutcome } | { error: unknown }>;

  beforeAll(async () => {
    server = await startServer(driver, { clock: () => NOW, heavyReads: HEAVY });
    tenant = await createTenant(server.api);
    // Appended by the application's own writer, in transactions of 25: the publish route
    // would take far longer for the megabytes a stalled export needs.
    await appendInTransactions(server.db, EVENTS, (i) => largeEvent(tenant.id, i), {
      perTransaction: 25,
      publisher: { sub: 'svc-archive', client: 'archive' },
      now: () => NOW,
    });
    expected = await server.db.query<{ id: string; size_bytes: number }>(
      'SELECT id, size_bytes FROM audit_log WHERE chain_key = $1 ORDER BY created DESC, id DESC',
      [tenant.id],
    );
    expect(expected).toHaveLength(EVENTS + 1);
    // About 30 KB each as stored (tenant.created is the one small event).
    expect(expected.filter((row) => row.size_bytes > 25_000 && row.size_bytes < 33_000)).toHaveLength(EVENTS);
    expect(expected.reduce((sum, row) => sum + row.size_bytes, 0)).toBeGreaterThan(STALL_BYTES);
    for (const n of [1, 2, 3]) tokens.set(`operator-${n}`, await server.issuer.mint(operator(n)));
    tokens.set('it-admin', await server.issuer.mint(identities.itAdmin(tenant.id)));

    // A second app over the same database, with a budget of its own, leaves one export unread
    // while the tests below run; the last tests look at what became of it.
    stallApp = await startServerOn(server.db, {
      clock: () => NOW,
      heavyReads: { ...HEAVY, export: { perReplica: 8, perCaller: 1 } },
      exportStallMs: EXPORT_STALL_MS,
    });
    const stall = stallAndWatch(
      stallApp,
      `/v1/audit/export?tenant_id=${tenant.id}`,
      `/v1/audit/export?tenant_id=${EMPTY_CHAIN}`,
      STALL_GIVE_UP_MS,
    );
    stalled = stall.then(
      (outcome) => ({ outcome }),
      (error: unknown) => ({ error }),
    );
  });
  afterAll(async () => {
    await stalled;
    await stallApp.close();
    await server.close();
  }, STALL_GIVE_UP_MS + 30_000);

  const sizeOf = (id: string) => expected.find((row) => row.id === id)!.size_bytes;
  const token = (name: string) => tokens.get(name)!;

  async function fetchAs(name: string | null, path: string): Promise<Fetched> {
    const response = await fetch(new URL(path, server.url), { headers: name ? { authorization: `Bearer ${token(name)}` } : {} });
    return { status: response.status, headers: response.headers, text: await response.text() };
  }
  const exportAs = (name: string | null, format: 'ndjson' | 'csv' = 'ndjson') => fetchAs(name, `/v1/audit/export?tenant_id=${tenant.id}&format=${format}`);
  const verifyAs = (name: string | null) => fetchAs(name, `/v1/audit/verify?tenant_id=${tenant.id}`);
  const problem = (answer: Fetched) => problemOf({ ...answer, body: JSON.parse(answer.text) as Record<string, unknown> });
  const ndjsonIds = (text: string) =>
    text
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => (JSON.parse(line) as AuditEvent).id);

  describe('list pages', () => {
    it('cuts a page of 30 KB events by bytes: fewer than limit=200 items, about BATCH_BYTES of them, with a cursor', async () => {
      const answer = await server.api.get<Page>(`/v1/audit?tenant_id=${tenant.id}&limit=200`);
      expect(answer.status).toBe(200);
      const { items, next_cursor } = answer.body;
      expect(items.length).toBeGreaterThan(1);
      expect(items.length).toBeLessThan(200);
      expect(items.length).toBeLessThanOrEqual(Math.ceil(BATCH_BYTES / EVENT_BYTES) + 1);
      expect(next_cursor).not.toBeNull();
      const sizes = items.map((event) => sizeOf(event.id));
      // Every event but the last starts within the budget; the next one would not have.
      expect(sizes.slice(0, -1).reduce((a, b) => a + b, 0)).toBeLessThan(BATCH_BYTES);
      expect(sizes.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(BATCH_BYTES);
      expect(Buffer.byteLength(answer.text)).toBeLessThan(BATCH_BYTES + 2 * EVENT_BYTES);
    });

    it('visits every event exactly once, newest first, following the cursors of byte-cut pages', async () => {
      const pages: AuditEvent[][] = [];
      let cursor: string | null = null;
      do {
        const answer: Answer<Page> = await server.api.get<Page>(
          `/v1/audit?tenant_id=${tenant.id}&limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
        );
        expect(answer.status, answer.text).toBe(200);
        pages.push(answer.body.items);
        cursor = answer.body.next_cursor;
        expect(pages.length).toBeLessThan(expected.length);
      } while (cursor !== null);

      expect(pages.flat().map((event) => event.id)).toEqual(expected.map((row) => row.id));
      // Each page holds at most the budget and one event more (the one that crosses it).
      const total = expected.reduce((sum, row) => sum + row.size_bytes, 0);
      expect(pages.length).toBeGreaterThanOrEqual(Math.floor(total / (BATCH_BYTES + 33_000)));
      for (const [i, page] of pages.entries()) {
        const sizes = page.map((event) => sizeOf(event.id));
        expect(sizes.slice(0, -1).reduce((a, b) => a + b, 0)).toBeLessThan(BATCH_BYTES);
        // A page is only cut early by bytes: every page but the last holds the budget's worth.
        if (i < pages.length - 1) expect(sizes.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(BATCH_BYTES);
      }
    });

    it('still honours a limit smaller than what the byte budget allows', async () => {
      const answer = await server.api.get<Page>(`/v1/audit?tenant_id=${tenant.id}&limit=3`);
      expect(answer.body.items.map((event) => event.id)).toEqual(expected.slice(0, 3).map((row) => row.id));
      expect(answer.body.next_cursor).not.toBeNull();
    });
  });

  describe('export and verification of a large chain', () => {
    it('streams every event exactly once, newest first, as NDJSON', async () => {
      const answer = await exportAs('operator-1');
      expect(answer.status).toBe(200);
      const ids = ndjsonIds(answer.text);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids).toEqual(expected.map((row) => row.id));
    });

    it('streams every event exactly once, newest first, as CSV', async () => {
      const answer = await exportAs('operator-1', 'csv');
      expect(answer.status).toBe(200);
      const lines = answer.text.split('\r\n');
      expect(lines.at(-1)).toBe('');
      const [header, ...rows] = lines.slice(0, -1);
      expect(header!.split(',')[0]).toBe('id');
      // No cell of these events holds a line break, so each row is one line; the id comes first.
      expect(rows.map((row) => row.slice(0, row.indexOf(',')))).toEqual(expected.map((row) => row.id));
    });

    it('verifies the whole chain of large events', async () => {
      const answer = await verifyAs('operator-1');
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.text)).toEqual({ ok: true, checked: EVENTS + 1 });
    });
  });

  describe('heavy-read budget', () => {
    /** Sockets of exports whose client does not read, by caller; destroyed after each test. */
    const stalled: Array<{ name: string; socket: net.Socket }> = [];

    async function stallExport(name: string): Promise<{ status: number; socket: net.Socket }> {
      const held = await requestWithoutReading(server.url, token(name), `/v1/audit/export?tenant_id=${tenant.id}`);
      stalled.push({ name, socket: held.socket });
      return held;
    }
    const disconnectAll = () => stalled.splice(0).map(({ name, socket }) => (socket.destroy(), name));

    /** Disconnects every stalled client, and waits until the server has given each caller its export slot back. */
    async function release(): Promise<void> {
      for (const name of new Set(disconnectAll())) {
        const probe = await eventually(() => fetchAs(name, `/v1/audit/export?tenant_id=${EMPTY_CHAIN}`), (a) => a.status === 200);
        expect(probe.status, `${name} got its export slot back`).toBe(200);
      }
    }
    afterEach(release);

    const expectRefused = (answer: Fetched, status: number, code: string) => {
      expect(answer.status, answer.text).toBe(status);
      expect(problem(answer).code).toBe(code);
      expect(answer.headers.get('retry-after')).toBe('1');
    };

    /** Callers the access rules refuse, by the answer they must get whatever the budgets say. */
    async function expectAccessFirst(path: string): Promise<void> {
      const member = await server.issuer.mint(identities.member(tenant.id));
      const noRoles = await server.issuer.mint({ sub: 'nobody', realm_access: { roles: [] } });
      const stranger = await server.issuer.mint(identities.itAdmin('0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e'));
      const as = async (bearer: string | null) => {
        const response = await fetch(new URL(path, server.url), { headers: bearer ? { authorization: `Bearer ${bearer}` } : {} });
        return { status: response.status, headers: response.headers, text: await response.text() };
      };
      const forbidden = await as(member);
      expect(forbidden.status, `${path}: ${forbidden.text}`).toBe(403);
      expect(problem(forbidden).code).toBe('forbidden');
      expect((await as(noRoles)).status).toBe(403);
      expect((await as(stranger)).status).toBe(404);
      expect((await as(null)).status).toBe(401);
    }

    describe('exports', () => {
      it('refuses a second export of the same caller while its first stalls: 429 too_many_heavy_reads', async () => {
        expect((await stallExport('operator-1')).status).toBe(200);
        // Still held a moment later: the client has not read, so the answer cannot have finished.
        await sleep(300);
        expectRefused(await exportAs('operator-1'), 429, 'too_many_heavy_reads');
        expectRefused(await exportAs('operator-1', 'csv'), 429, 'too_many_heavy_reads');
        // Another caller still has the replica's second slot, and its export completes.
        const other = await exportAs('operator-2');
        expect(other.status).toBe(200);
        expect(ndjsonIds(other.text)).toHaveLength(EVENTS + 1);
      });

      it('answers 503 busy to everyone else while the export budget is full, and 429 to a caller over its own cap', async () => {
        expect((await stallExport('operator-1')).status).toBe(200);
        expect((await stallExport('operator-2')).status).toBe(200);
        await sleep(300);
        expectRefused(await exportAs('operator-3'), 503, 'busy');
        expectRefused(await exportAs('it-admin', 'csv'), 503, 'busy');
        expectRefused(await exportAs('operator-1'), 429, 'too_many_heavy_reads');
      });

      it('keeps verifications and pages served while stalled exports fill the export budget', async () => {
        expect((await stallExport('operator-1')).status).toBe(200);
        expect((await stallExport('operator-2')).status).toBe(200);
        await sleep(300);
        expect((await exportAs('operator-3')).status).toBe(503);
        for (const name of ['operator-1', 'operator-3', 'it-admin']) {
          const verified = await verifyAs(name);
          expect(verified.status, `${name}: ${verified.text}`).toBe(200);
          expect(JSON.parse(verified.text)).toEqual({ ok: true, checked: EVENTS + 1 });
        }
        expect((await server.api.get(`/v1/audit?tenant_id=${tenant.id}&limit=1`)).status).toBe(200);
      });

      it('releases the slots of clients that disconnect: a new export succeeds, and both slots are whole again', async () => {
        expect((await stallExport('operator-1')).status).toBe(200);
        expect((await stallExport('operator-2')).status).toBe(200);
        await sleep(300);
        expect((await exportAs('operator-3')).status).toBe(503);
        disconnectAll();
        const answer = await eventually(() => exportAs('operator-3'), (a) => a.status !== 503);
        expect(answer.status).toBe(200);
        expect(ndjsonIds(answer.text)).toEqual(expected.map((row) => row.id));
        // No refusal above took or returned a slot: two stall again, a third is refused.
        await eventually(() => fetchAs('operator-1', `/v1/audit/export?tenant_id=${EMPTY_CHAIN}`), (a) => a.status === 200);
        expect((await stallExport('operator-1')).status).toBe(200);
        expect((await stallExport('operator-3')).status).toBe(200);
        await sleep(300);
        expectRefused(await exportAs('operator-2'), 503, 'busy');
      });

      it('releases each finished read: one caller runs many exports and verifications one after another', async () => {
        for (let i = 0; i < 3; i += 1) {
          expect((await verifyAs('operator-1')).status).toBe(200);
          expect((await exportAs('operator-1', i % 2 === 0 ? 'csv' : 'ndjson')).status).toBe(200);
        }
      });

      it('checks access first: refused callers get 401, 403 or 404 while the export budget is full, not 503', async () => {
        expect((await stallExport('operator-1')).status).toBe(200);
        expect((await stallExport('operator-2')).status).toBe(200);
        await sleep(300);
        await expectAccessFirst(`/v1/audit/export?tenant_id=${tenant.id}`);
        // An IT_ADMIN of the tenant passes the access rules, so the budget is what refuses it.
        expectRefused(await exportAs('it-admin'), 503, 'busy');
        disconnectAll();
        // The refused callers took nothing: both slots are free again.
        expect((await eventually(() => exportAs('it-admin'), (a) => a.status === 200)).status).toBe(200);
        expect((await stallExport('operator-1')).status).toBe(200);
        expect((await stallExport('operator-2')).status).toBe(200);
      });
    });

    describe('verifications', () => {
      /**
       * Holds every verification of the chain inside the database until `open()`: a transaction
       * locks audit_chains, which the verification reads first, so admitted verifications hold
       * their slots meanwhile.
       */
      function blockVerifications(): { locked: Promise<void>; open: () => Promise<void> } {
        let open!: () => void;
        const opened = new Promise<void>((resolve) => (open = resolve));
        let locked!: () => void;
        const isLocked = new Promise<void>((resolve) => (locked = resolve));
        const done = server.db.transaction(async (tx) => {
          await tx.query('LOCK TABLE audit_chains IN ACCESS EXCLUSIVE MODE');
          locked();
          await opened;
        });
        return {
          locked: isLocked,
          open: async () => {
            open();
            await done;
          },
        };
      }

      it('answers 429 to a caller over its cap and 503 busy to others while verifications run; each answers once they end', async () => {
        const block = blockVerifications();
        await block.locked;
        let verifying: Array<Promise<Fetched>> = [];
        try {
          verifying = [verifyAs('operator-1'), verifyAs('operator-2')];
          // Both admitted (no database work comes before the admission), then held.
          await sleep(500);
          expectRefused(await verifyAs('operator-1'), 429, 'too_many_heavy_reads');
          expectRefused(await verifyAs('operator-3'), 503, 'busy');
          expectRefused(await verifyAs('it-admin'), 503, 'busy');
          await expectAccessFirst(`/v1/audit/verify?tenant_id=${tenant.id}`);
        } finally {
          await block.open();
        }
        for (const answer of await Promise.all(verifying)) {
          expect(answer.status).toBe(200);
          expect(JSON.parse(answer.text)).toEqual({ ok: true, checked: EVENTS + 1 });
        }
        // Both slots came back, and the refusals took none.
        const [a, b] = await Promise.all([verifyAs('operator-3'), verifyAs('it-admin')]);
        expect([a.status, b.status]).toEqual([200, 200]);
      });
    });
  });

  describe('an export whose client stops reading', () => {
    const outcome = async (): Promise<StallOutcome> => {
      const result = await stalled;
      if ('error' in result) throw result.error;
      return result.outcome;
    };

    it(
      'is cut by the server, which frees its slot; the client gets a truncated answer',
      async () => {
        const { freedAfterMs, received, complete } = await outcome();
        expect(freedAfterMs, `not cut within ${STALL_GIVE_UP_MS} ms`).not.toBeNull();
        expect(freedAfterMs!).toBeGreaterThanOrEqual(EXPORT_STALL_MS - 1_000);
        expect(received).toBeGreaterThan(0);
        expect(complete).toBe(false);
      },
      STALL_GIVE_UP_MS + 30_000,
    );

    // Node's socket timeout fires once late while a write is pending (Socket.prototype._onTimeout),
    // which cut a stalled export only after about 2 x EXPORT_STALL_MS; the export now watches its
    // own pulls instead.
    it(
      'is cut within a few seconds after EXPORT_STALL_MS',
      async () => {
        const { freedAfterMs } = await outcome();
        expect(freedAfterMs).not.toBeNull();
        expect(freedAfterMs!, `freed ${Math.round(freedAfterMs!)} ms after the request`).toBeLessThan(EXPORT_STALL_MS + 5_000);
      },
      STALL_GIVE_UP_MS + 30_000,
    );
  });
});
