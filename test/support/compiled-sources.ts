// One compiled copy of src/ for the whole run, which every process a test spawns (the service, the
// migrate, verify-audit and token commands) runs as production runs dist/: plain JavaScript, no
// loader hook. Through tsx, each start paid ~2.5 s more CPU than this (`ADDR=abc` boots: 3.7 s of
// CPU against 1.3 s): its hook thread answers for every module loaded, and TypeBox alone is some
// 700 of them. esbuild writes the copy in about a second; it only strips the types, which the
// typecheck of the same run has already checked.
//
// The copy lives under node_modules/.cache, inside the project, so the packages it imports resolve
// as they do from src/; package.json, migrations/ and catalog/ sit beside its src/ as they do
// beside dist/src/.
import { build } from 'esbuild';
import { copyFile, mkdir, mkdtemp, readdir, rm, stat, symlink } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The run's compiled copy of the project (src/ as JavaScript beside package.json, migrations/, catalog/); absent outside the main suite. */
    compiledDir?: string;
  }
}

const PROJECT_DIR = fileURLToPath(new URL('../../', import.meta.url));

/** src/ as JavaScript under `dir`/src (an edited file overwrites its old output). */
async function compileInto(dir: string): Promise<void> {
  const src = path.join(PROJECT_DIR, 'src');
  const sources = (await readdir(src, { recursive: true })).filter((name) => name.endsWith('.ts')).map((name) => path.join(src, name));
  await build({ entryPoints: sources, outbase: PROJECT_DIR, outdir: dir, bundle: false, format: 'esm', platform: 'node', target: 'node20', logLevel: 'error' });
}

const PREFIX = 'tenant-registry-compiled-';

/** Copies left behind by runs that were killed before their teardown, a day old or more (a run still going is younger). */
async function removeAbandoned(cache: string): Promise<void> {
  for (const name of await readdir(cache)) {
    if (!name.startsWith(PREFIX)) continue;
    const dir = path.join(cache, name);
    if (Date.now() - (await stat(dir)).mtimeMs >= 24 * 3_600_000) await rm(dir, { recursive: true, force: true });
  }
}

export default async function compileSources(project: TestProject): Promise<() => Promise<void>> {
  const cache = path.join(PROJECT_DIR, 'node_modules', '.cache');
  await mkdir(cache, { recursive: true });
  await removeAbandoned(cache);
  const dir = await mkdtemp(path.join(cache, PREFIX));
  await compileInto(dir);
  await copyFile(path.join(PROJECT_DIR, 'package.json'), path.join(dir, 'package.json'));
  for (const shared of ['migrations', 'catalog']) await symlink(path.join(PROJECT_DIR, shared), path.join(dir, shared), 'dir');
  project.provide('compiledDir', dir);
  // In watch mode, a rerun after an edit spawns processes of the edited sources.
  project.onTestsRerun(() => compileInto(dir));
  return () => rm(dir, { recursive: true, force: true });
}
