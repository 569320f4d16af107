// Retries against a real registry: a creating call whose answer was lost on the way back is sent
// again with its Idempotency-Key and makes one tenant; the real rate limiter's Retry-After is
// waited for when it is short and handed back when it is long; a 503 is retried a bounded number
// of times; and nothing that could do its work twice is ever sent twice.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCounter } from '../../../src/http/rate-limit.js';
import { eachDriver, openMigratedDatabase, type TestDatabase } from '../../../test/support/drivers.js';
import { identities } from '../../../test/support/identities.js';
import { startServer, startServerOn, type StartedApp, type TestServer } from '../../../test/support/server.js';
import { createRegistryClient, unwrap, type RetryEvent } from '../src/index.js';

const newSlug = () => `retry-${randomUUID().slice(0, 8)}`;

/** A fetch that sends every request for real and records it, and lets a test break chosen tries. */
function recordingFetch(fault: (request: Request, attempt: number) => 'drop-answer' | Response | null) {
  const sent: Request[] = [];
  const send = async (request: Request): Promise<Response> => {
    sent.push(request.clone());
    const injected = fault(request, sent.length);
    if (injected instanceof Response) return injected;
    const response = await fetch(request);
    if (injected === 'drop-answer') {
      // The registry received the request and answered; the answer is read to its end (the work
      // is done and committed) and then lost, as when a connection drops on the way back.
      await response.arrayBuffer();
      throw new TypeError('fetch failed');
    }
    return response;
  };
  return { sent, send };
}

const unavailable = () =>
  new Response(JSON.stringify({ type: 'urn:problem:unavailable', title: 'Service Unavailable', status: 503, detail: 'try again', code: 'unavailable', request_id: 'injected' }), {
    status: 503,
    headers: { 'content-type': 'application/problem+json', 'retry-after': '1' },
  });

eachDriver('the client retrying a creating call after its answer was lost', (driver) => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer(driver);
  });
  afterAll(() => server?.close());

  it('sends the same Idempotency-Key again and gets the first answer: one tenant', async () => {
    const wire = recordingFetch((request, attempt) => (attempt === 1 ? 'drop-answer' : null));
    const retries: RetryEvent[] = [];
    const registry = createRegistryClient({ baseUrl: server.url, token: () => server.issuer.mint(identities.platformAdmin()), fetch: wire.send, retries: { baseDelayMs: 10, onRetry: (retry) => retries.push(retry) } });
    const slug = newSlug();

    const created = await registry.POST('/v1/tenants', { body: { slug, name: 'Lost Answer' } });
    expect(created.response.status).toBe(201);
    expect(created.response.headers.get('idempotent-replayed')).toBe('true');
    expect(retries).toEqual([expect.objectContaining({ method: 'POST', attempt: 1, reason: 'fetch failed' })]);
    const keys = wire.sent.map((request) => request.headers.get('idempotency-key'));
    expect(keys).toHaveLength(2);
    expect(keys[0]).toBeTruthy();
    expect(keys[1]).toBe(keys[0]);
    // Both copies carried the same body: the registry would have answered 422 otherwise.
    expect(await Promise.all(wire.sent.map((request) => request.clone().json()))).toEqual([
      { slug, name: 'Lost Answer' },
      { slug, name: 'Lost Answer' },
    ]);

    const listed = await unwrap(registry.GET('/v1/tenants', { params: { query: { q: slug } } }));
    expect(listed.items.map((tenant) => tenant.id)).toEqual([created.data?.tenant.id]);
  });

  it('makes one tenant when the answer is lost before the first copy has finished', async () => {
    // The first copy is sent and given up on at once, as when a connection drops mid-request:
    // the retry can meet it still running (409 idempotency_in_progress with Retry-After, waited
    // out), arrive after it (a replay) or even before it (the first copy then meets the second's
    // key in progress). Whichever happens, the caller gets the tenant and there is one.
    const first: Array<Promise<Response>> = [];
    const wire = recordingFetch(() => null);
    const send = async (request: Request): Promise<Response> => {
      if (first.length === 0) {
        first.push(wire.send(request));
        throw new TypeError('fetch failed');
      }
      return wire.send(request);
    };
    const registry = createRegistryClient({ baseUrl: server.url, token: () => server.issuer.mint(identities.platformAdmin()), fetch: send, retries: { retries: 5, baseDelayMs: 10 } });
    const slug = newSlug();
    const created = await unwrap(registry.POST('/v1/tenants', { body: { slug, name: 'Dropped Early' } }));
    const firstAnswer = await first[0]!;
    expect([201, 409]).toContain(firstAnswer.status);
    const listed = await unwrap(registry.GET('/v1/tenants', { params: { query: { q: slug } } }));
    expect(listed.items.map((tenant) => tenant.id)).toEqual([created.tenant.id]);
    expect(new Set(wire.sent.filter((request) => request.method === 'POST').map((request) => request.headers.get('idempotency-key'))).size).toBe(1);
  });

  it('does not send a call without a key twice: a lost answer to an activation is the caller\'s error', async () => {
    const admin = createRegistryClient({ baseUrl: server.url, token: () => server.issuer.mint(identities.platformAdmin()) });
    const { tenant } = await unwrap(admin.POST('/v1/tenants', { body: { slug: newSlug(), name: 'Activate Once' } }));
    const wire = recordingFetch(() => 'drop-answer');
    const registry = createRegistryClient({ baseUrl: server.url, token: () => server.issuer.mint(identities.platformAdmin()), fetch: wire.send, retries: { baseDelayMs: 10 } });

    await expect(registry.POST('/v1/tenants/{id}/activate', { params: { path: { id: tenant.id } } })).rejects.toThrow('fetch failed');
    expect(wire.sent).toHaveLength(1);
    expect(wire.sent[0]?.headers.has('idempotency-key')).toBe(false);
    // It did its work once: the tenant is active.
    expect((await unwrap(admin.GET('/v1/tenants/{id}', { params: { path: { id: tenant.id } } }))).status).toBe('active');
  });
});

describe('the client meeting 429 and 503', () => {
  let database: TestDatabase;
  let server: StartedApp;
  // The limiter's windows are whole minutes of this clock, pinned: each test sets where in a
  // minute it is and moves it on itself, so no window ends while a slow machine sends the requests.
  let clockMs = Date.parse('2026-11-27T10:00:00.000Z');
  const limits = { publicPerMinute: 2, servicePerMinute: 2, internalPerMinute: 2, authFailuresPerMinute: 50 };

  beforeAll(async () => {
    database = await openMigratedDatabase('pglite');
    server = await startServerOn(database.db, { rateLimits: { counter: new LocalCounter(), limits, clock: () => clockMs } });
  });
  afterAll(async () => {
    await server?.close();
    await database?.close();
  });

  /** Puts the limiter's clock `secondsIn` seconds into the next minute (a window no test used). */
  function atSecond(secondsIn: number): void {
    clockMs = Math.floor(clockMs / 60_000) * 60_000 + 60_000 + secondsIn * 1000;
  }

  const clientAs = (subject: string, options: Parameters<typeof createRegistryClient>[0]['retries'], fetch?: (request: Request) => Promise<Response>) =>
    createRegistryClient({ baseUrl: server.url, token: () => server.issuer.mint({ ...identities.platformAdmin(), sub: subject }), retries: options, ...(fetch ? { fetch } : {}) });

  it('waits out a short Retry-After of the real rate limiter, then gets the answer', async () => {
    // Two seconds before the window ends: the third read is refused with Retry-After: 2. The
    // window ends (the pinned clock moves on) when the client decides to wait.
    atSecond(58);
    const retries: RetryEvent[] = [];
    const registry = clientAs(`reader-${randomUUID()}`, {
      maxRetryAfterMs: 10_000,
      onRetry: (retry) => {
        retries.push(retry);
        clockMs += 2_000;
      },
    });
    for (let i = 0; i < 2; i += 1) expect((await registry.GET('/v1/catalog')).response.status).toBe(200);
    const started = Date.now();
    const third = await registry.GET('/v1/catalog');
    expect(third.response.status).toBe(200);
    expect(third.data?.items.length).toBeGreaterThan(0);
    // It waited as long as the registry asked.
    expect(retries).toEqual([expect.objectContaining({ method: 'GET', reason: 429, attempt: 1, delayMs: 2_000 })]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_950);
  });

  it('hands back a 429 whose Retry-After is longer than it may wait, at once', async () => {
    // Thirty seconds before the window ends: longer than the five the client waits at most.
    atSecond(30);
    const retries: RetryEvent[] = [];
    const sent: string[] = [];
    const registry = clientAs(`impatient-${randomUUID()}`, { maxRetryAfterMs: 5_000, onRetry: (retry) => retries.push(retry) }, (request) => {
      sent.push(request.method);
      return fetch(request);
    });
    for (let i = 0; i < 2; i += 1) await unwrap(registry.GET('/v1/catalog'));
    const refused = await registry.GET('/v1/catalog');
    expect(refused.response.status).toBe(429);
    expect(refused.error?.code).toBe('rate_limited');
    expect(Number(refused.response.headers.get('retry-after'))).toBeGreaterThan(5);
    expect(retries).toEqual([]);
    expect(sent).toHaveLength(3);
  });

  it('retries a 503 with Retry-After a bounded number of times, waiting as asked', async () => {
    atSecond(10);
    const retries: RetryEvent[] = [];
    const wire = recordingFetch((_, attempt) => (attempt <= 2 ? unavailable() : null));
    const registry = clientAs(`patient-${randomUUID()}`, { retries: 2, onRetry: (retry) => retries.push(retry) }, wire.send);
    const answer = await registry.GET('/v1/catalog');
    expect(answer.response.status).toBe(200);
    expect(retries.map(({ reason, delayMs, attempt }) => ({ reason, delayMs, attempt }))).toEqual([
      { reason: 503, delayMs: 1000, attempt: 1 },
      { reason: 503, delayMs: 1000, attempt: 2 },
    ]);

    // One more 503 than it retries: the last one is the caller's.
    const bounded = recordingFetch(() => unavailable());
    const giveUp = clientAs(`bounded-${randomUUID()}`, { retries: 2 }, bounded.send);
    const refused = await giveUp.GET('/v1/catalog');
    expect(refused.response.status).toBe(503);
    expect(refused.error?.code).toBe('unavailable');
    expect(bounded.sent).toHaveLength(3);
  });

  it('does not retry a 503 to a call that could do its work twice, and stops waiting when the caller aborts', async () => {
    atSecond(10);
    const wire = recordingFetch(() => unavailable());
    const registry = clientAs(`writer-${randomUUID()}`, { retries: 3 }, wire.send);
    const refused = await registry.POST('/v1/tenants/{id}/activate', { params: { path: { id: randomUUID() } } });
    expect(refused.response.status).toBe(503);
    expect(wire.sent).toHaveLength(1);

    const waiting = recordingFetch(() => new Response('{}', { status: 503, headers: { 'retry-after': '5' } }));
    const aborted = clientAs(`aborter-${randomUUID()}`, { retries: 3 }, waiting.send);
    const controller = new AbortController();
    const call = aborted.GET('/v1/catalog', { signal: controller.signal });
    await expect.poll(() => waiting.sent.length).toBe(1);
    controller.abort(new Error('caller gave up'));
    await expect(call).rejects.toThrow('caller gave up');
    expect(waiting.sent).toHaveLength(1);
  });
});
