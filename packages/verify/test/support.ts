// What the package's tests share: a real registry in process (test/support/server.ts, with its
// real database, SSE stream and token issuer), a fetch that counts what the verifier asks of it,
// a TCP proxy a test can cut (the registry becoming unreachable), and waits on conditions.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, expect } from 'vitest';
import type { ApiKey } from '../../../src/http/schemas/api-key.js';
import { DRIVERS } from '../../../test/support/drivers.js';
import type { Client } from '../../../test/support/http.js';
import { identities } from '../../../test/support/identities.js';
import { startServer, type TestServer } from '../../../test/support/server.js';
import { createKeyVerifier, type KeyVerifier, type KeyVerifierOptions } from '../src/index.js';

export type CreatedKey = ApiKey & { key: string };

/** The registry's heartbeat in these tests: the stream is last heard from at most this long before a cut. */
export const HEARTBEAT_MS = 300;

/**
 * The heartbeat the verifiers are told of: far more than the registry's, so that a loaded machine
 * (the registry runs in the test's own process) never makes a healthy stream look silent and
 * reconnect, which would send answers back to the registry and upset the tests that count calls.
 * Drops in these tests are resets, noticed at once; silence has its own test and its own value.
 */
export const VERIFIER_HEARTBEAT_MS = 5_000;

/**
 * The package does not depend on the database driver (it talks HTTP to the registry), so one
 * registry on the first driver the run uses is enough.
 */
export async function startRegistry(): Promise<{ server: TestServer; api: Client; token: string }> {
  const server = await startServer(DRIVERS[0]!, { eventStream: { heartbeatMs: HEARTBEAT_MS } });
  const service = await server.as(identities.service());
  return { server, api: server.api, token: service.token! };
}

export async function createKey(api: Client, tenantId: string, body: Record<string, unknown> = {}): Promise<CreatedKey> {
  const answer = await api.post<CreatedKey>('/v1/api-keys', { body: { tenant_id: tenantId, name: 'verify package', ...body } });
  expect(answer.status, answer.text).toBe(201);
  return answer.body;
}

export async function ok(api: Client, method: string, path: string, body: unknown = {}): Promise<void> {
  const answer = await api.request(method, path, { body });
  expect(answer.status, answer.text).toBeLessThan(300);
}

/** The global fetch, counting verify questions and keeping the headers of each stream request. */
export function countingFetch() {
  const record = { verifyCalls: 0, streamRequests: [] as Headers[], verifyBodies: [] as string[] };
  const counted: typeof fetch = (input, init) => {
    const url = String(input instanceof Request ? input.url : input);
    if (url.endsWith('/v1/internal/api-keys/verify')) {
      record.verifyCalls += 1;
      record.verifyBodies.push(typeof init?.body === 'string' ? init.body : '');
    }
    if (url.includes('/v1/events/stream')) record.streamRequests.push(new Headers(init?.headers));
    return fetch(input, init);
  };
  return { fetch: counted, record };
}

/** Polls until `condition` holds; throws naming `what` after `timeoutMs` (a wait, not a measurement). */
export async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${timeoutMs} ms`);
    await sleep(10);
  }
}

/** A well-formed key no registry issued (its checksum is wrong, so it answers MALFORMED there). */
export const inventedKey = () => `bp_${randomBytes(30).toString('base64url').replace(/[-_]/g, 'x').slice(0, 39)}`;

/**
 * A TCP proxy to the registry: cut() resets every connection through it and every new one until
 * mend(), as a registry that went away (or a network path that broke) would.
 */
export async function startProxy(target: URL) {
  const sockets = new Set<net.Socket>();
  let cut = false;
  const server = net.createServer((socket) => {
    if (cut) {
      socket.resetAndDestroy();
      return;
    }
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(socket).add(upstream);
    const end = () => {
      socket.destroy();
      upstream.destroy();
      sockets.delete(socket);
      sockets.delete(upstream);
    };
    socket.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    socket.pipe(upstream).pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    cut() {
      cut = true;
      for (const socket of sockets) socket.resetAndDestroy();
      sockets.clear();
    },
    mend() {
      cut = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * The verifiers of one test file, each closed after its test. `make` builds one on the test
 * registry with a counting fetch, live (following the stream) before it is returned unless told
 * not to follow changes; `closeAfter` takes one the test built itself.
 */
export function verifiersFor(registry: () => { url: string; token: string }) {
  const open: KeyVerifier[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((verifier) => verifier.close()));
  });
  const closeAfter = (verifier: KeyVerifier): KeyVerifier => {
    open.push(verifier);
    return verifier;
  };
  return {
    closeAfter,
    make: async (options: Partial<KeyVerifierOptions> = {}) => {
      const counting = countingFetch();
      const { url, token } = registry();
      const verifier = closeAfter(createKeyVerifier({ registryUrl: url, token, heartbeatMs: VERIFIER_HEARTBEAT_MS, fetch: counting.fetch, ...options }));
      if (options.followChanges !== false) await verifier.whenLive();
      return { verifier, calls: counting.record };
    },
  };
}
