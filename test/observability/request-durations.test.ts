// The hand-kept request histogram must render exactly what a prom-client Histogram would:
// cumulative buckets with "le" inclusive, then _sum and _count, one series per label set.
import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { RequestDurations } from '../../src/observability/request-durations.js';

const BOUNDS = [0.001, 0.01, 0.1];
const OBSERVED: Array<[string, string, number, number]> = [
  ['GET', '/v1/a', 200, 0.0005],
  ['GET', '/v1/a', 200, 0.001], // on a bound: counted in that bound's bucket
  ['GET', '/v1/a', 200, 0.05],
  ['GET', '/v1/a', 200, 3],
  ['POST', '/v1/a', 201, 0.002],
  ['GET', '/v1/b', 404, 0.0001],
];

async function rendered(register: (registry: Registry) => (method: string, route: string, status: number, seconds: number) => void) {
  const registry = new Registry();
  const observe = register(registry);
  for (const [method, route, status, seconds] of OBSERVED) observe(method, route, status, seconds);
  return (await registry.metrics()).split('\n').filter((line) => !line.startsWith('#')).sort();
}

describe('RequestDurations', () => {
  it('renders the same lines as prom-client’s own Histogram', async () => {
    const ours = await rendered((registry) => {
      const durations = new RequestDurations('t_seconds', 'test', BOUNDS);
      registry.registerMetric(durations as unknown as Parameters<Registry['registerMetric']>[0]);
      return (method, route, status, seconds) => durations.observe(method, route, status, seconds);
    });
    const reference = await rendered((registry) => {
      const histogram = new Histogram({ name: 't_seconds', help: 'test', labelNames: ['method', 'route', 'status'], buckets: BOUNDS, registers: [registry] });
      return (method, route, status, seconds) => histogram.observe({ method, route, status: String(status) }, seconds);
    });
    expect(ours.length).toBeGreaterThan(10);
    expect(ours).toEqual(reference);
  });

  it('forgets every series on reset', async () => {
    const durations = new RequestDurations('t_seconds', 'test', BOUNDS);
    durations.observe('GET', '/v1/a', 200, 0.5);
    durations.reset();
    expect((await durations.get()).values).toEqual([]);
  });
});
