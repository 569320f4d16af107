// Writes src/generated/ from the registry's contract (../../openapi.yaml), at build time: the
// contract is generated from the route schemas, so the client's types follow it without anyone
// copying a shape by hand, and nothing generated is checked in (.gitignore) to drift from it.
//   openapi.ts  the types of every path, operation, body, answer and schema (openapi-typescript)
//   spec.ts     the few facts the client needs at run time: which operations take an
//               Idempotency-Key and the problem codes the contract declares
// Each file is written only when its text changed, and by renaming a finished temporary file, so
// the typecheck and the lint (which both generate first, at once) never read half a file.
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, rename, stat, utimes, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import process from 'node:process';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const specPath = process.env.REGISTRY_OPENAPI ?? join(root, '..', '..', 'openapi.yaml');
const outDir = join(root, 'src', 'generated');

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** The parameter (resolving a local $ref) an operation or its path item declares. */
function resolve(spec, node) {
  if (!node || typeof node.$ref !== 'string') return node;
  const pointer = node.$ref.replace(/^#\//, '').split('/').map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'));
  return resolve(spec, pointer.reduce((at, key) => at?.[key], spec));
}

/** Operations that accept an Idempotency-Key header: the ones the contract says replay a retry. */
function idempotentOperations(spec) {
  const found = [];
  for (const [path, item] of Object.entries(spec.paths ?? {})) {
    for (const method of METHODS) {
      const operation = item[method];
      if (!operation) continue;
      const parameters = [...(item.parameters ?? []), ...(operation.parameters ?? [])].map((p) => resolve(spec, p));
      if (parameters.some((p) => p?.in === 'header' && String(p.name).toLowerCase() === 'idempotency-key')) {
        found.push({ method: method.toUpperCase(), path });
      }
    }
  }
  return found;
}

/** The enum of the Problem schema's `code`: every code any answer of the registry can carry. */
function problemCodes(spec) {
  const problem = resolve(spec, spec.components?.schemas?.Problem);
  const codes = resolve(spec, problem?.properties?.code)?.enum;
  if (!Array.isArray(codes) || codes.length === 0) throw new Error(`${specPath}: components.schemas.Problem.properties.code has no enum`);
  return codes;
}

async function writeIfChanged(name, text) {
  const file = join(outDir, name);
  const before = await readFile(file, 'utf8').catch(() => null);
  if (before === text) {
    // Unchanged, but now known to be current: the next run can tell without generating.
    const now = new Date();
    await utimes(file, now, now);
    return false;
  }
  const temporary = `${file}.${randomUUID()}.tmp`;
  await writeFile(temporary, text);
  await rename(temporary, file);
  return true;
}

/**
 * Whether the generated files are newer than everything they are made from (the contract, this
 * script, the generator's version): the test run and both static checks call this script, and
 * the generator takes seconds of CPU that an unchanged contract does not need.
 */
async function upToDate() {
  const mtime = (file) => stat(file).then((s) => s.mtimeMs, () => null);
  const inputs = await Promise.all([specPath, fileURLToPath(import.meta.url), createRequire(import.meta.url).resolve('openapi-typescript/package.json')].map(mtime));
  const outputs = await Promise.all(['openapi.ts', 'spec.ts'].map((name) => mtime(join(outDir, name))));
  if (inputs.includes(null) || outputs.includes(null)) return false;
  return Math.min(...outputs) >= Math.max(...inputs);
}

if (!process.argv.includes('--force') && (await upToDate())) process.exit(0);

// Loaded only now: the generator and its YAML parser take longer to load than the check above.
const { default: openapiTS, astToString, COMMENT_HEADER } = await import('openapi-typescript');
const { parse } = await import('yaml');
const source = await readFile(specPath, 'utf8');
const spec = parse(source);
const types = COMMENT_HEADER + astToString(await openapiTS(pathToFileURL(specPath), { silent: true }));
const runtime = `// Generated from openapi.yaml by scripts/generate.mjs; do not edit.
import type { components } from './openapi.js';

/** The operations that take an Idempotency-Key: a retry with the same key replays the first answer. */
export const IDEMPOTENT_OPERATIONS = ${JSON.stringify(idempotentOperations(spec), null, 2)} as const;

/** Every problem \`code\` the contract declares (components.schemas.Problem). */
export const PROBLEM_CODES = ${JSON.stringify(problemCodes(spec), null, 2)} as const satisfies ReadonlyArray<components['schemas']['Problem']['code']>;
`;

await mkdir(outDir, { recursive: true });
const changed = [await writeIfChanged('openapi.ts', types), await writeIfChanged('spec.ts', runtime)];
if (changed.some(Boolean)) process.stderr.write(`@tenant-registry/client: generated src/generated from ${specPath}\n`);
