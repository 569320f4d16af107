import { afterEach, describe, expect, it } from 'vitest';
import { freePort, startService, stopAll } from './spawn.js';

afterEach(() => stopAll());

describe('METRICS_ADDR', () => {
  it('moves /metrics to a listener of its own, off the public port', { timeout: 60_000 }, async () => {
    const metricsPort = await freePort();
    const service = await startService({ METRICS_ADDR: `127.0.0.1:${metricsPort}` });
    const scraped = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(scraped.status).toBe(200);
    expect(await scraped.text()).toContain('tenant_registry_process_cpu_user_seconds_total');
    expect((await fetch(`http://127.0.0.1:${metricsPort}/v1/tenants`)).status).toBe(404);
    const onPublicPort = await fetch(`${service.baseUrl}/metrics`);
    expect(onPublicPort.status).toBe(404);
  });

  it('serves /metrics on the main listener by default', { timeout: 60_000 }, async () => {
    const service = await startService();
    expect((await fetch(`${service.baseUrl}/metrics`)).status).toBe(200);
  });
});
