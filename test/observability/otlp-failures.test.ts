// OTLP export when things go wrong, in the real process: a bad exporter variable stops the boot
// with one line naming it; a receiver that hangs or is not there never costs a request its answer
// and never holds up shutdown, because every export runs in the background with a timeout and a
// bounded queue. (otlp-export.test.ts: what is sent when all is well.)
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { PROCESS_TEST_TIMEOUT_MS, PROCESS_WAIT_MS, devToken, freePort } from '../process/spawn.js';
import { client } from '../support/http.js';
import { bootOnce, killAll, startReceiver, startTraced, stop, type Receiver } from './traced-service.js';

afterEach(killAll);
afterAll(killAll);

describe('bad OTLP variables stop the process at boot', { timeout: PROCESS_TEST_TIMEOUT_MS }, () => {
  it.each([
    ['OTEL_METRICS_EXPORTER', { OTEL_METRICS_EXPORTER: 'console' }],
    ['OTEL_METRICS_EXPORTER', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_METRICS_EXPORTER: 'otlp,none' }],
    ['OTEL_LOGS_EXPORTER', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_LOGS_EXPORTER: 'otlp,console' }],
    ['OTEL_EXPORTER_OTLP_LOGS_ENDPOINT', { OTEL_LOGS_EXPORTER: 'otlp' }],
    ['OTEL_EXPORTER_OTLP_METRICS_PROTOCOL', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'grpc' }],
  ])('%s: one line naming it, exit 1, nothing on stdout', async (variable, env) => {
    const { code, stdout, stderr } = await bootOnce(env);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(new RegExp(`^tenant-registry: invalid ${variable}: expected [^\\n]+\\n$`));
  });
});

describe('a receiver that is down', { timeout: PROCESS_TEST_TIMEOUT_MS }, () => {
  let hanging: Receiver | undefined;
  afterEach(async () => {
    await killAll();
    await hanging?.close();
    hanging = undefined;
  });

  it.each([
    ['never answers', 'never'],
    ['refuses connections', 'refused'],
  ] as const)('one that %s: every request is answered, exports give up, shutdown is clean', async (_title, mode) => {
    hanging = mode === 'never' ? await startReceiver({ answer: 'never' }) : undefined;
    // A port nothing listens on, for the receiver that is not there.
    const endpoint = hanging?.url ?? `http://127.0.0.1:${await freePort()}`;
    const service = await startTraced({
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_METRICS_EXPORTER: 'otlp',
      OTEL_LOGS_EXPORTER: 'otlp',
      OTEL_METRIC_EXPORT_INTERVAL: '200',
      OTEL_BSP_SCHEDULE_DELAY: '100',
      // Each export request gives up after a second instead of ten.
      OTEL_EXPORTER_OTLP_TIMEOUT: '1000',
    });
    const api = client(service.baseUrl, await devToken(service.baseUrl));
    if (hanging) {
      // Every signal has an export stuck at the receiver before the requests begin.
      const receiver = hanging;
      for (const path of ['/v1/traces', '/v1/metrics', '/v1/logs']) {
        await receiver.waitFor(() => receiver.exports.map((e) => e.path), (p) => p === path, `a stuck export to ${path}`);
      }
    }

    const statuses: number[] = [];
    const stuckDuring: number[] = [];
    for (let i = 0; i < 50; i += 1) {
      statuses.push((await api.get('/v1/tenants/by-slug/acme')).status);
      if (hanging) stuckDuring.push(hanging.pending());
    }
    expect(statuses.every((status) => status === 200)).toBe(true);
    if (hanging) {
      // The answers came while exports were held open at the receiver: no request waited for one.
      expect(Math.min(...stuckDuring)).toBeGreaterThan(0);
      // At most 30 export requests in flight per signal, however long the receiver hangs.
      expect(Math.max(...stuckDuring)).toBeLessThanOrEqual(90);
    }

    // The SDK says what failed, one line at a time on stderr, and the log lines still reach stdout.
    const failure = mode === 'never' ? /otel error: .*(timed out|Timeout)/i : /otel error: .*ECONNREFUSED/;
    const deadline = performance.now() + PROCESS_WAIT_MS;
    while (!failure.test(service.stderr()) && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(service.stderr()).toMatch(failure);

    const exit = await stop(service);
    expect(exit.code, service.stderr()).toBe(0);
    expect(service.lines().filter((line) => line.msg === 'request' && line.route === '/v1/tenants/by-slug/:slug')).toHaveLength(50);
    expect(service.lines().at(-1)).toMatchObject({ msg: 'stopped' });
  });
});
