// Reads a V8 .cpuprofile (node --cpu-prof) and tells where the time went: self time per function
// and per origin (node core, each package, the service's own code, GC, idle). Samples can be cut
// to a time window, so a profile of a whole process can be read for its load phase only: V8
// stamps samples with the monotonic clock, the one process.hrtime reads in every process.
//
//   npx tsx bench/support/cpu-profile.ts FILE.cpuprofile [TOP]
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { round, table } from './stats.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

export interface CpuProfile {
  nodes: ProfileNode[];
  /** Microseconds, monotonic clock. */
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  ms: number;
  /** Share of the busy time (idle left out). */
  share: number;
}

export interface ProfileSummary {
  /** Time covered by the samples read. */
  sampledMs: number;
  idleMs: number;
  busyMs: number;
  /** Whether the window was applied (false: it did not overlap the profile, all samples read). */
  windowed: boolean;
  functions: SelfTime[];
  origins: SelfTime[];
}

const PROJECT_DIR = fileURLToPath(new URL('../../', import.meta.url));

/** Where a function comes from: a package, node core, the service's code, or V8 itself. */
function originOf(frame: CallFrame): string {
  const name = frame.functionName;
  if (name === '(idle)' || name === '(garbage collector)' || name === '(program)' || name === '(root)') return name;
  const url = frame.url;
  if (url === '') return '(V8 builtins, native)';
  if (url.startsWith('node:')) return 'node core';
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const parts = url.slice(modules + '/node_modules/'.length).split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  if (url.includes('/src/')) return 'tenant-registry (src/)';
  return 'other';
}

function locationOf(frame: CallFrame): string {
  let url = frame.url.replace(/^file:\/\//, '');
  if (url.startsWith(PROJECT_DIR)) url = url.slice(PROJECT_DIR.length);
  url = url.replace(/^.*\/node_modules\//, '');
  return url === '' ? '' : `${url}:${frame.lineNumber + 1}`;
}

function ranked(totals: Map<string, number>, busyMs: number, top: number): SelfTime[] {
  return [...totals]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, ms]) => ({ name, ms: round(ms, 1), share: busyMs > 0 ? round(ms / busyMs, 4) : 0 }));
}

const NOT_BUSY = new Set(['(idle)']);

export function summarizeProfile(profile: CpuProfile, options: { fromUs?: number; toUs?: number; top?: number } = {}): ProfileSummary {
  const top = options.top ?? 20;
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const stamps: number[] = [];
  let at = profile.startTime;
  for (const delta of profile.timeDeltas) stamps.push((at += delta));
  const from = options.fromUs ?? Number.NEGATIVE_INFINITY;
  const to = options.toUs ?? Number.POSITIVE_INFINITY;
  const windowed = stamps.some((stamp) => stamp >= from && stamp <= to) && (options.fromUs !== undefined || options.toUs !== undefined);

  const byFunction = new Map<string, number>();
  const byOrigin = new Map<string, number>();
  let sampledMs = 0;
  let idleMs = 0;
  for (let i = 0; i < profile.samples.length; i += 1) {
    const stamp = stamps[i]!;
    if (windowed && (stamp < from || stamp > to)) continue;
    // A sample stands for the time until the next one.
    const ms = ((stamps[i + 1] ?? profile.endTime) - stamp) / 1000;
    if (ms <= 0) continue;
    const frame = frames.get(profile.samples[i]!);
    if (!frame) continue;
    sampledMs += ms;
    const origin = originOf(frame);
    if (NOT_BUSY.has(frame.functionName)) {
      idleMs += ms;
      continue;
    }
    const location = locationOf(frame);
    const name = `${frame.functionName || '(anonymous)'}${location ? ` ${location}` : ''}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + ms);
    byOrigin.set(origin, (byOrigin.get(origin) ?? 0) + ms);
  }
  const busyMs = sampledMs - idleMs;
  return {
    sampledMs: round(sampledMs, 1),
    idleMs: round(idleMs, 1),
    busyMs: round(busyMs, 1),
    windowed,
    functions: ranked(byFunction, busyMs, top),
    origins: ranked(byOrigin, busyMs, top),
  };
}

export async function readProfile(file: string): Promise<CpuProfile> {
  return JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
}

/** The one profile `node --cpu-prof --cpu-prof-dir=DIR` wrote (at exit), summarized for a window. */
export async function summarizeProfileIn(
  dir: string,
  options: { fromUs: number; toUs: number; top: number },
): Promise<{ file: string; summary: ProfileSummary }> {
  const name = (await readdir(dir)).find((entry) => entry.endsWith('.cpuprofile'));
  if (!name) throw new Error(`no .cpuprofile in ${dir}`);
  const file = path.join(dir, name);
  return { file, summary: summarizeProfile(await readProfile(file), options) };
}

export function profileTables(summary: ProfileSummary): string {
  const rows = (items: SelfTime[]) => items.map((item) => [item.name, item.ms.toFixed(1), `${(item.share * 100).toFixed(1)}%`]);
  return [
    `Busy ${summary.busyMs.toFixed(0)} ms, idle ${summary.idleMs.toFixed(0)} ms of ${summary.sampledMs.toFixed(0)} ms sampled` +
      (summary.windowed ? ' (load phase only)' : ' (whole profile)'),
    '',
    table(['self time by origin', 'ms', 'of busy'], rows(summary.origins)),
    '',
    table(['self time by function', 'ms', 'of busy'], rows(summary.functions)),
  ].join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [file, top] = process.argv.slice(2);
  if (!file) {
    console.error('usage: npx tsx bench/support/cpu-profile.ts FILE.cpuprofile [TOP]');
    process.exit(2);
  }
  const summary = summarizeProfile(await readProfile(file), { top: top ? Number(top) : 25 });
  console.log(profileTables(summary));
}
