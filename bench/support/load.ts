// One load scenario of a benchmark: autocannon, run from this process against one server over loopback with
// keep-alive connections; first a warm-up whose figures are thrown away, then the measured run.
// Latencies are taken from every response, because autocannon's own histogram keeps whole
// milliseconds only. While the measured run lasts, the server's CPU time and resident memory are
// read from /proc, and this process's own CPU time is taken too: on two cores the load generator
// and the server compete for the same CPUs, and these figures show which side ran out first.
import os from 'node:os';
import autocannon from 'autocannon';
import { summarize, type Summary } from './stats.js';
import { cpuSecondsOf, memoryOf, preemptionsOf } from './processes.js';

export interface LoadSettings {
  connections: number;
  pipelining: number;
  durationS: number;
  warmupS: number;
}

export interface LoadTarget {
  /** The whole URL of the endpoint. */
  url: string;
  /** POST unless set. */
  method?: 'GET' | 'POST';
  headers: Record<string, string>;
  /**
   * Fixed bodies: each connection goes round all of them in order, from its own offset, so the
   * connections do not all ask for the same one at the same moment.
   */
  bodies?: readonly string[];
  /** Fixed paths (with their query), for GETs: taken round like bodies, instead of the URL's path. */
  paths?: readonly string[];
  /** A new body for every request instead (each request unlike any before). */
  nextBody?: () => string;
  /** The server's process, to meter. */
  pid: number;
}

export interface LoadResult {
  seconds: number;
  responses: number;
  requestsPerSecond: number;
  /** Milliseconds, from every response. */
  latency: Summary;
  statuses: Record<string, number>;
  non2xx: number;
  /** Connection errors, timeouts included. */
  errors: number;
  timeouts: number;
  /** CPU time over wall time: 1.0 is one core kept busy. */
  serverCpuCores: number;
  /** The server's CPU time per answered request, in microseconds, in user and kernel mode. */
  serverUserMicros: number;
  serverSystemMicros: number;
  /** Involuntary context switches of the server's main thread per answered request. */
  serverPreemptions: number;
  clientCpuCores: number;
  /** The highest VmRSS seen during the measured run, in bytes. */
  serverPeakRss: number;
  loadAverageAtStart: number;
}

const RSS_SAMPLE_MS = 100;

function options(target: LoadTarget, settings: LoadSettings, durationS: number): autocannon.Options {
  const base: autocannon.Options = {
    url: target.url,
    method: target.method ?? 'POST',
    headers: target.headers,
    connections: settings.connections,
    pipelining: settings.pipelining,
    duration: durationS,
    // autocannon only notices the end of the run at its next sample; every 100 ms keeps runs within 0.1 s of durationS.
    sampleInt: 100,
  };
  if (target.nextBody) {
    const next = target.nextBody;
    return { ...base, requests: [{ setupRequest: (request) => ({ ...request, body: next() }) }] };
  }
  if (target.paths) return roundRobin(base, settings, target.paths, (path) => ({ path }));
  const bodies = target.bodies ?? [];
  if (bodies.length === 0) throw new Error('a load target needs bodies, paths or nextBody');
  if (bodies.length === 1) return { ...base, body: bodies[0] };
  return roundRobin(base, settings, bodies, (body) => ({ body }));
}

/**
 * Each connection goes round its own share of the requests: all of them, from its own offset,
 * while they are few; a disjoint slice once there are more than connections (autocannon builds
 * every request of a connection up front, and 20,000 keys on each of 50 connections would make
 * the load generator, not the server, the bottleneck).
 */
function roundRobin(
  base: autocannon.Options,
  settings: LoadSettings,
  items: readonly string[],
  request: (item: string) => autocannon.Request,
): autocannon.Options {
  if (items.length === 0) throw new Error('a load target needs at least one request');
  let connection = 0;
  const share = Math.ceil(items.length / settings.connections);
  const stride = Math.max(1, Math.floor(items.length / settings.connections));
  return {
    ...base,
    ...request(items[0]!),
    setupClient: (client) => {
      const index = connection++;
      const mine =
        items.length > settings.connections * 2
          ? items.slice((index * share) % items.length, ((index * share) % items.length) + share)
          : [...items.slice((index * stride) % items.length), ...items.slice(0, (index * stride) % items.length)];
      client.setRequests(mine.map(request));
    },
  };
}

/** Runs autocannon; `onResponse` sees every response. */
function fire(
  opts: autocannon.Options,
  onResponse?: (status: number, milliseconds: number) => void,
): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    const instance = autocannon(opts, (error: Error | null, result) => (error ? reject(error) : resolve(result)));
    if (onResponse) instance.on('response', (_client, status, _bytes, milliseconds) => onResponse(status, milliseconds));
  });
}

/** Called right before and right after the measured run (after the warm-up). */
export interface MeasureHooks {
  start?(): void;
  end?(): void;
}

export async function runLoad(target: LoadTarget, settings: LoadSettings, hooks: MeasureHooks = {}): Promise<LoadResult> {
  if (settings.warmupS > 0) await fire(options(target, settings, settings.warmupS));
  hooks.start?.();

  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let peakRss = memoryOf(target.pid).rss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, memoryOf(target.pid).rss);
  }, RSS_SAMPLE_MS);
  const loadAverageAtStart = os.loadavg()[0]!;
  const serverCpuBefore = cpuSecondsOf(target.pid);
  const preemptionsBefore = preemptionsOf(target.pid);
  const clientCpuBefore = process.cpuUsage();
  const started = performance.now();
  let result: autocannon.Result;
  try {
    result = await fire(options(target, settings, settings.durationS), (status, milliseconds) => {
      latencies.push(milliseconds);
      statuses[status] = (statuses[status] ?? 0) + 1;
    });
  } finally {
    clearInterval(sampler);
  }
  hooks.end?.();
  const wall = (performance.now() - started) / 1000;
  const clientCpu = process.cpuUsage(clientCpuBefore);
  const serverCpuAfter = cpuSecondsOf(target.pid);
  const serverUser = serverCpuAfter.user - serverCpuBefore.user;
  const serverSystem = serverCpuAfter.system - serverCpuBefore.system;
  const preemptions = preemptionsOf(target.pid) - preemptionsBefore;
  peakRss = Math.max(peakRss, memoryOf(target.pid).rss);
  const perResponse = (value: number) => (latencies.length > 0 ? value / latencies.length : Number.NaN);

  return {
    seconds: result.duration,
    responses: latencies.length,
    requestsPerSecond: latencies.length / result.duration,
    latency: summarize(latencies),
    statuses,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    serverCpuCores: (serverUser + serverSystem) / wall,
    serverUserMicros: perResponse(serverUser * 1e6),
    serverSystemMicros: perResponse(serverSystem * 1e6),
    serverPreemptions: perResponse(preemptions),
    clientCpuCores: (clientCpu.user + clientCpu.system) / 1e6 / wall,
    serverPeakRss: peakRss,
    loadAverageAtStart,
  };
}

export interface BackgroundLoad {
  /** Ends the load; resolves with what it did from its start. */
  stop(): Promise<BackgroundLoadResult>;
}

export interface BackgroundLoadResult {
  seconds: number;
  responses: number;
  requestsPerSecond: number;
  statuses: Record<string, number>;
  non2xx: number;
  errors: number;
  /** The server's CPU time over wall time while the load ran. */
  serverCpuCores: number;
}

/**
 * The same load as runLoad's, kept up until stopped: for a benchmark that measures something
 * else while the server is busy (no warm-up, no latencies kept, only what shows the load held).
 */
export function startBackgroundLoad(target: LoadTarget, settings: Omit<LoadSettings, 'durationS' | 'warmupS'>): BackgroundLoad {
  const statuses: Record<string, number> = {};
  let responses = 0;
  const serverCpuBefore = cpuSecondsOf(target.pid);
  const started = performance.now();
  let instance: autocannon.Instance | undefined;
  // An hour is "until stopped": stop() ends it and autocannon then calls back with its totals.
  const done = new Promise<autocannon.Result>((resolve, reject) => {
    instance = autocannon(options(target, { ...settings, durationS: 3_600, warmupS: 0 }, 3_600), (error: Error | null, result) =>
      error ? reject(error) : resolve(result),
    );
    instance.on('response', (_client, status) => {
      responses += 1;
      statuses[status] = (statuses[status] ?? 0) + 1;
    });
  });
  return {
    async stop() {
      instance?.stop();
      const result = await done;
      const wall = (performance.now() - started) / 1000;
      const serverCpuAfter = cpuSecondsOf(target.pid);
      return {
        seconds: wall,
        responses,
        requestsPerSecond: responses / wall,
        statuses,
        non2xx: result.non2xx,
        errors: result.errors,
        serverCpuCores: (serverCpuAfter.user + serverCpuAfter.system - serverCpuBefore.user - serverCpuBefore.system) / wall,
      };
    },
  };
}
