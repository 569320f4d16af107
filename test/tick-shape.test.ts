// src/tick-shape.ts: nextTick's entries keep one map chain for the life of the process. V8 logs
// every map transition (--log-maps); a child process uses nextTick, forces two full GCs while no
// entry is alive, and uses it again. The log then shows how many times the entry literal's first
// transition was made: twice without the module (the first chain was collected, the call site's
// feedback is lost), once with it. The module is loaded as the service loads it (the run's
// compiled copy, or the source through tsx).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { entryArgs, PROJECT_DIR } from './process/spawn.js';

const work = mkdtempSync(path.join(tmpdir(), 'tick-shape-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** How many maps the entry literal's first key (async_id_symbol) led to in a run of the probe. */
async function entryChains(withModule: boolean): Promise<number> {
  const args = entryArgs('src/tick-shape.ts');
  const module = path.resolve(PROJECT_DIR, args.at(-1)!);
  const log = path.join(work, `${withModule ? 'with' : 'without'}.log`);
  const probe = `
    import { executionAsyncResource } from 'node:async_hooks';
    ${withModule ? `await import(${JSON.stringify(module)});` : ''}
    const entry = () => new Promise((resolve) => process.nextTick(() => resolve(executionAsyncResource())));
    for (let i = 0; i < 3; i++) await entry();
    await new Promise((resolve) => setImmediate(resolve));
    globalThis.gc();
    globalThis.gc();
    for (let i = 0; i < 3; i++) await entry();
  `;
  const node = ['--expose-gc', '--log-maps', `--logfile=${log}`, '--no-logfile-per-isolate', ...args.slice(0, -1)];
  const child = spawn(process.execPath, [...node, '--input-type=module', '-e', probe], { cwd: PROJECT_DIR, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const [code] = (await once(child, 'close')) as [number | null];
  expect(code, err).toBe(0);
  // map,Transition,time,from,to,pc,line,column,reason,name
  const firstKeys = readFileSync(log, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('map,Transition,') && line.includes(',symbol("async_id_symbol"'));
  const roots = new Set(firstKeys.map((line) => line.split(',')[3]));
  expect(roots.size, 'the literal starts from one map').toBe(1);
  return new Set(firstKeys.map((line) => line.split(',')[4])).size;
}

describe('the shape of nextTick entries', () => {
  it('without the module, a full GC with no entry alive makes the next entry build new maps', async () => {
    expect(await entryChains(false)).toBe(2);
  });

  it('with it, entries made after full GCs find the maps of the first', async () => {
    expect(await entryChains(true)).toBe(1);
  });
});
