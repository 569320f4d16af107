import { afterEach, describe, expect, it } from 'vitest';
import { freePort, PROCESS_TEST_TIMEOUT_MS, PROCESS_WAIT_MS, startService, stopAll } from './spawn.js';

afterEach(() => stopAll());

describe('METRICS_ADDR', () => {
  it('moves /metrics to a listener of its own, off the public port', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    const metricsPort = await freePort();
    const service = await startService({ METRICS_ADDR: `127.0.0.1:${metricsPort}` });
    const scraped = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(scraped.status).toBe(200);
    expect(await scraped.text()).toContain('tenant_registry_process_cpu_user_seconds_total');
    expect((await fetch(`http://127.0.0.1:${metricsPort}/v1/tenants`)).status).toBe(404);
    const onPublicPort = await fetch(`${service.baseUrl}/metrics`);
    expect(onPublicPort.status).toBe(404);
  });

  it('serves /metrics on the main listener by default in dev', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    const service = await startService();
    expect((await fetch(`${service.baseUrl}/metrics`)).status).toBe(200);
  });
});

// Outside dev the default is off: test/process/fail-closed.test.ts starts prod and finds 404.
describe('METRICS_ON_MAIN_LISTENER', () => {
  it('false keeps /metrics off the main listener, and the boot log says how to serve it', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    const service = await startService({ METRICS_ON_MAIN_LISTENER: 'false' });
    const answer = await fetch(`${service.baseUrl}/metrics`);
    expect(answer.status).toBe(404);
    expect(await answer.text()).not.toContain('tenant_registry_');
    await service.waitForOutput('METRICS_ON_MAIN_LISTENER=true', PROCESS_WAIT_MS);
  });

  it('true serves it on ADDR as well as on METRICS_ADDR', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    const metricsPort = await freePort();
    const service = await startService({ METRICS_ADDR: `127.0.0.1:${metricsPort}`, METRICS_ON_MAIN_LISTENER: 'true' });
    expect((await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).status).toBe(200);
    expect((await fetch(`${service.baseUrl}/metrics`)).status).toBe(200);
  });
});
