// src/tick-shape.ts, and its twin in @tenant-registry/verify (packages/verify/src/tick-shape.ts,
// which products load with the package): nextTick's entries keep one map chain for the life of
// the process. V8 logs
// every map transition (--log-maps); a child process uses nextTick, forces two full GCs while no
// entry is alive, and uses it again. The log then shows how many times the entry literal's first
// transition was made: twice without the module (the first chain was collected, the call site's
// feedback is lost), once with it. The registry's module is loaded as the service loads it (the
// run's compiled copy, or the source through tsx); the package through its name, from its sources.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { entryArgs, PROJECT_DIR } from './process/spawn.js';

const work = mkdtempSync(path.join(tmpdir(), 'tick-shape-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** What the probe imports first: node's arguments, and the specifier. */
interface Loaded {
  node: string[];
  specifier: string;
}

const registryModule = (): Loaded => {
  const args = entryArgs('src/tick-shape.ts');
  return { node: args.slice(0, -1), specifier: pathToFileURL(path.resolve(PROJECT_DIR, args.at(-1)!)).href };
};
const verifyPackage = (): Loaded => ({
  node: ['--import', 'tsx', '--conditions=tenant-registry-source'],
  specifier: '@tenant-registry/verify',
});

/** How many maps the entry literal's first key (async_id_symbol) led to in a run of the probe. */
async function entryChains(loaded: Loaded | null): Promise<number> {
  // One log per thread (isolate-<address>-<pid>-v8.log), in a directory of this probe's own.
  const dir = mkdtempSync(path.join(work, 'probe-'));
  // The probe's own function names its thread's log (tsx runs its loader in a thread of its own).
  const probe = `
    import { executionAsyncResource } from 'node:async_hooks';
    (function tickShapeProbe() {})();
    ${loaded === null ? '' : `await import(${JSON.stringify(loaded.specifier)});`}
    const entry = () => new Promise((resolve) => process.nextTick(() => resolve(executionAsyncResource())));
    for (let i = 0; i < 3; i++) await entry();
    await new Promise((resolve) => setImmediate(resolve));
    globalThis.gc();
    globalThis.gc();
    for (let i = 0; i < 3; i++) await entry();
  `;
  const node = ['--expose-gc', '--log-maps', `--logfile=${path.join(dir, 'v8.log')}`, ...(loaded?.node ?? ['--liftoff-only'])];
  const child = spawn(process.execPath, [...node, '--input-type=module', '-e', probe], { cwd: PROJECT_DIR, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const [code] = (await once(child, 'close')) as [number | null];
  expect(code, err).toBe(0);
  const logs = readdirSync(dir).map((name) => readFileSync(path.join(dir, name), 'utf8'));
  const main = logs.filter((text) => text.includes('tickShapeProbe'));
  expect(main, "one log is the main thread's").toHaveLength(1);
  // The code of nextTick (code-creation,kind,tier,time,start,size,name,...) tells its literal's
  // first transition from other code that keys objects by the same symbol (timers, AsyncResource).
  // Only the first: a GC may move the code, and the log does not say where to.
  const lines = main[0]!.split('\n');
  const nextTickCode = lines
    .filter((line) => line.startsWith('code-creation,') && line.includes(',nextTick node:internal/process/task_queues'))
    .map((line) => line.split(','))
    .map((field) => ({ start: Number.parseInt(field[4]!, 16), size: Number(field[5]) }));
  const inNextTick = (pc: number) => nextTickCode.some((code) => pc >= code.start && pc < code.start + code.size);
  // map,Transition,time,from,to,pc,line,column,reason,name
  const transitions = lines
    .filter((line) => line.startsWith('map,Transition,') && line.includes(',symbol("async_id_symbol"'))
    .map((line) => line.split(','));
  const first = transitions.find((field) => inNextTick(Number.parseInt(field[5]!, 16)));
  expect(first, 'nextTick defined its first key').toBeDefined();
  // Every later entry starts from the same map (the literal's): the maps that key led to from there.
  const firstKeys = transitions.filter((field) => field[3] === first![3]);
  return new Set(firstKeys.map((field) => field[4])).size;
}

describe('the shape of nextTick entries', () => {
  it('without the module, a full GC with no entry alive makes the next entry build new maps', async () => {
    expect(await entryChains(null)).toBe(2);
  });

  it('with the registry\'s module, entries made after full GCs find the maps of the first', async () => {
    expect(await entryChains(registryModule())).toBe(1);
  });

  it('with @tenant-registry/verify imported, too', async () => {
    expect(await entryChains(verifyPackage())).toBe(1);
  });
});
