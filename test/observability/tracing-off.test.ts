// Tracing off, and tracing misconfigured, in the real process: without an endpoint (or with the
// SDK disabled) no SDK loads and nothing is sent, and a bad tracing variable stops the process at
// boot with one line naming it and never its value. (tracing.test.ts: what is sent when it is on.)
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { PROCESS_TEST_TIMEOUT_MS, devToken } from '../process/spawn.js';
import { client } from '../support/http.js';
import { bootOnce, jsonExport, killAll, startReceiver, startTraced, stop, type Receiver } from './traced-service.js';

afterEach(killAll);
afterAll(killAll);

describe('tracing off', { timeout: PROCESS_TEST_TIMEOUT_MS }, () => {
  it.each([
    ['OTEL_EXPORTER_OTLP_ENDPOINT unset', (_receiver: Receiver) => ({})],
    ['OTEL_EXPORTER_OTLP_ENDPOINT empty', (_receiver: Receiver) => ({ OTEL_EXPORTER_OTLP_ENDPOINT: '' })],
    [
      'OTEL_SDK_DISABLED=true',
      (receiver: Receiver) => ({ ...jsonExport(receiver), OTEL_SDK_DISABLED: 'true' }),
    ],
  ])('%s: no SDK, nothing sent, no trace_id in the logs', async (_title, envFor) => {
    const receiver = await startReceiver();
    try {
      // Everything else a traced process would use is set: only the endpoint decides.
      const service = await startTraced({ OTEL_BSP_SCHEDULE_DELAY: '100', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', ...envFor(receiver) });
      const api = client(service.baseUrl, await devToken(service.baseUrl));
      expect((await api.get('/v1/tenants/by-slug/acme')).status).toBe(200);
      await sleep(500); // five batch delays
      const exit = await stop(service);
      expect(exit.code, service.stderr()).toBe(0);

      expect(receiver.exports).toEqual([]);
      expect(service.stderr()).toContain('otel-global:false');
      const requestLines = service.lines().filter((line) => line.msg === 'request');
      expect(requestLines.length).toBeGreaterThan(0);
      for (const line of requestLines) expect(line).not.toHaveProperty('trace_id');
    } finally {
      await killAll();
      await receiver.close();
    }
  });

  it('the probe sees the SDK when tracing is on (the check above is not vacuous)', async () => {
    const receiver = await startReceiver();
    try {
      const service = await startTraced(jsonExport(receiver));
      const exit = await stop(service);
      expect(exit.code, service.stderr()).toBe(0);
      expect(service.stderr()).toContain('otel-global:true');
    } finally {
      await killAll();
      await receiver.close();
    }
  });
});

describe('bad tracing variables stop the process at boot', { timeout: PROCESS_TEST_TIMEOUT_MS }, () => {
  it.each([
    ['OTEL_EXPORTER_OTLP_ENDPOINT', { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' }],
    ['OTEL_EXPORTER_OTLP_ENDPOINT', { OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://user:hunter2secret@collector' }],
    ['OTEL_EXPORTER_OTLP_PROTOCOL', { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }],
  ])('%s: one line naming it, exit 1, the value not echoed', async (variable, env) => {
    const { code, stdout, stderr } = await bootOnce(env);
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^tenant-registry: invalid [A-Z_]+: expected [^\n]+\n$/);
    expect(stderr).toContain(variable);
    expect(stderr).not.toContain('hunter2secret');
  });
});
