// Shutdown behind a load balancer: the balancer keeps sending while /readyz says ready and stops
// once it says not ready. Through the whole sequence (SIGTERM, drain, close) no request fails.
import { afterEach, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { devToken, PROCESS_TEST_TIMEOUT_MS, PROCESS_WAIT_MS, startService, stopAll } from './spawn.js';
import { until } from '../support/until.js';

afterEach(() => stopAll());

describe('SIGTERM with a drain delay', () => {
  it('turns /readyz 503 first, keeps serving through the drain, then exits 0: no request fails', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    // No rate limit: four clients in a loop would exceed any per-caller budget within the test.
    const service = await startService({ SHUTDOWN_DRAIN_SECONDS: '2', LOG_LEVEL: 'info', RATE_LIMIT_PER_MINUTE: '0' });
    const token = await devToken(service.baseUrl);
    let inRotation = true;
    const outcomes: Array<number | string> = [];

    // The balancer's health check, every 100 ms like a fast probe.
    const balancer = (async () => {
      while (inRotation) {
        const ready = await fetch(`${service.baseUrl}/readyz`).then((r) => r.status, () => 0);
        if (ready !== 200) inRotation = false;
        await sleep(100);
      }
    })();
    // Four clients sending as long as the balancer routes to this replica.
    const clients = Array.from({ length: 4 }, async () => {
      while (inRotation) {
        const status = await fetch(`${service.baseUrl}/v1/tenants/by-slug/acme`, {
          headers: { authorization: `Bearer ${token}` },
        }).then((r) => r.status, (error: Error) => error.message);
        outcomes.push(status);
      }
    });

    await sleep(500);
    const signalledAt = performance.now();
    service.child.kill('SIGTERM');
    await Promise.all([balancer, ...clients]);
    const leftRotationAfter = performance.now() - signalledAt;
    const exit = await service.waitForExit(PROCESS_WAIT_MS);

    expect(outcomes.length).toBeGreaterThan(20);
    expect(outcomes.filter((status) => status !== 200)).toEqual([]);
    // Out of rotation within a probe period or two of the signal, well before the 2 s drain ends.
    expect(leftRotationAfter).toBeLessThan(1_000);
    expect(exit).toMatchObject({ code: 0 });
    // The drain was honoured: the process lived on for about two seconds after the signal.
    expect(exit!.at - signalledAt).toBeGreaterThan(1_800);
    expect(service.stdout()).toContain('not ready, still serving');
  });

  it('answers /readyz 503 draining during the drain, while serving everything else', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    const service = await startService({ SHUTDOWN_DRAIN_SECONDS: '2' });
    const token = await devToken(service.baseUrl);
    service.child.kill('SIGTERM');
    // The child handles the signal when a busy machine gets round to it, not within a fixed 300 ms: ask until /readyz changes.
    const ready = await until(
      async () => {
        const answer = await fetch(`${service.baseUrl}/readyz`);
        if (answer.status !== 200) return answer;
        await answer.arrayBuffer();
        return false;
      },
      '/readyz to change',
      PROCESS_WAIT_MS,
    );
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { code: string }).code).toBe('draining');
    const served = await fetch(`${service.baseUrl}/v1/tenants/by-slug/acme`, { headers: { authorization: `Bearer ${token}` } });
    expect(served.status).toBe(200);
    expect((await fetch(`${service.baseUrl}/healthz`)).status).toBe(200);
    expect(await service.waitForExit(PROCESS_WAIT_MS)).toMatchObject({ code: 0 });
  });

  it('skips the drain on SIGINT (Ctrl-C in a terminal)', { timeout: PROCESS_TEST_TIMEOUT_MS }, async () => {
    const service = await startService({ SHUTDOWN_DRAIN_SECONDS: '30' });
    const sentAt = performance.now();
    service.child.kill('SIGINT');
    const exit = await service.waitForExit(PROCESS_WAIT_MS);
    expect(exit).toMatchObject({ code: 0 });
    expect(exit!.at - sentAt).toBeLessThan(5_000);
  });
});
