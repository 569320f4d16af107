// Graceful shutdown of the real process: on SIGTERM/SIGINT it stops accepting connections,
// finishes the requests already in flight, and exits 0; a request that never finishes is cut at
// SHUTDOWN_GRACE_SECONDS and the process exits non-zero instead of hanging.
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { randomSlug } from '../support/factories.js';
import { devToken, PROCESS_TEST_TIMEOUT_MS, PROCESS_WAIT_MS, startService, stopAll, type ServiceProcess } from './spawn.js';

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const sockets = new Set<net.Socket>();

afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await stopAll();
});
afterAll(() => stopAll());

/** A raw TCP connection that records everything the server sends. */
async function connect(port: number): Promise<{ socket: net.Socket; received: () => Buffer }> {
  const socket = net.connect(port, '127.0.0.1');
  sockets.add(socket);
  let received = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, received: () => received };
}

/** Whether a new connection is accepted now: 'connected' or the error code (ECONNREFUSED). */
async function tryConnect(port: number): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  sockets.add(socket);
  return new Promise((resolve) => {
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

/** The first final (non-1xx) response in bytes, or null while it is incomplete. */
function parseResponse(bytes: Buffer): RawResponse | null {
  let start = 0;
  for (;;) {
    const headEnd = bytes.indexOf('\r\n\r\n', start);
    if (headEnd < 0) return null;
    const [statusLine = '', ...headerLines] = bytes.subarray(start, headEnd).toString('latin1').split('\r\n');
    const status = Number(statusLine.split(' ')[1]);
    if (status >= 100 && status < 200) {
      start = headEnd + 4;
      continue;
    }
    const headers: Record<string, string> = {};
    for (const line of headerLines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length'] ?? 0);
    const body = bytes.subarray(headEnd + 4);
    if (body.length < length) return null;
    return { status, headers, body: body.subarray(0, length).toString('utf8') };
  }
}

async function waitFor<T>(what: string, probe: () => T | null, timeoutMs: number): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== null) return value;
    if (performance.now() > deadline) throw new Error(`${what}: nothing within ${timeoutMs} ms`);
    await sleep(10);
  }
}

/**
 * Opens a connection and sends the headers of POST /v1/tenants and half of its body. The
 * request carries Expect: 100-continue so that the server's "100 Continue" proves it has parsed
 * the headers and holds the request as in flight before the test sends a signal.
 */
async function startPartialCreate(service: ServiceProcess, extraHeaders: string[] = []) {
  const slug = randomSlug('drain');
  const json = JSON.stringify({ slug, name: 'Drained Ltd' });
  const half = Math.floor(json.length / 2);
  const token = await devToken(service.baseUrl);
  const connection = await connect(service.port);
  connection.socket.write(
    [
      'POST /v1/tenants HTTP/1.1',
      `Host: 127.0.0.1:${service.port}`,
      `Authorization: Bearer ${token}`,
      'Content-Type: application/json',
      `Content-Length: ${Buffer.byteLength(json)}`,
      'Expect: 100-continue',
      ...extraHeaders,
      '',
      '',
    ].join('\r\n') + json.slice(0, half),
  );
  await waitFor('100 Continue', () => (connection.received().includes('100 Continue') ? true : null), PROCESS_WAIT_MS);
  return {
    slug,
    connection,
    sendRest: () => connection.socket.write(json.slice(half)),
    response: (timeoutMs: number) => waitFor('response', () => parseResponse(connection.received()), timeoutMs),
  };
}

describe('graceful shutdown', () => {
  it.each([
    ['a keep-alive client (the HTTP/1.1 default)', []],
    ['a client that sends Connection: close', ['Connection: close']],
  ])(
    'SIGTERM stops accepting, finishes the in-flight request of %s, exits 0',
    { timeout: PROCESS_TEST_TIMEOUT_MS },
    async (_client, extraHeaders) => {
      const service = await startService({ LOG_LEVEL: 'info' });
      const request = await startPartialCreate(service, extraHeaders);

      service.child.kill('SIGTERM');
      await service.waitForOutput('shutting down', PROCESS_WAIT_MS);
      await sleep(300);
      expect(await tryConnect(service.port)).toBe('ECONNREFUSED');
      expect(service.isRunning()).toBe(true);

      request.sendRest();
      const response = await request.response(PROCESS_WAIT_MS);
      expect(response.status).toBe(201);
      const created = JSON.parse(response.body) as { tenant: Tenant };
      expect(created.tenant).toMatchObject({ slug: request.slug, name: 'Drained Ltd', status: 'trial' });
      // app.ts promises that requests served while closing are told Connection: close.
      expect.soft(response.headers.connection).toBe('close');

      const exit = await service.waitForExit(PROCESS_WAIT_MS);
      expect(exit, `still running ${PROCESS_WAIT_MS / 1000} s after the response; stdout:\n${service.stdout()}`).not.toBeNull();
      expect(exit).toMatchObject({ code: 0, signal: null });
    },
  );

  it('SIGINT on an idle server exits 0 promptly', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    const service = await startService();
    const sentAt = performance.now();
    service.child.kill('SIGINT');
    const exit = await service.waitForExit(PROCESS_WAIT_MS);
    expect(exit).toMatchObject({ code: 0, signal: null });
    expect((exit?.at ?? Infinity) - sentAt).toBeLessThan(3_000);
  });

  it('a request that never completes is cut after SHUTDOWN_GRACE_SECONDS: exits non-zero, not hanging', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    const service = await startService({ SHUTDOWN_GRACE_SECONDS: '1' });
    await startPartialCreate(service);

    const sentAt = performance.now();
    service.child.kill('SIGTERM');
    const exit = await service.waitForExit(PROCESS_WAIT_MS);
    expect(exit, `still running ${PROCESS_WAIT_MS / 1000} s after SIGTERM`).not.toBeNull();
    expect(exit?.signal).toBeNull();
    expect(exit?.code).toBeGreaterThan(0);
    const elapsed = (exit?.at ?? Infinity) - sentAt;
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(3_000);
    expect(service.stdout()).toContain('did not finish in time');
  });
});
