// The layering rules of .dependency-cruiser.mjs reject what they say they reject. `npm test` runs
// depcruise over the real src/ (which must be clean); here the same command, with the same config,
// runs over a synthetic src/ in a temporary directory that breaks each rule once and also holds
// the imports the rules allow, so a rule that matches nothing (a typo in a path pattern) or too
// much (the documented exceptions) fails this test.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_DIR } from './process/spawn.js';

const DEPCRUISE = path.join(PROJECT_DIR, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');

/** path -> source; every file of the synthetic service. */
const FILES: Record<string, string> = {
  // Allowed: domain uses node built-ins and other domain files; the edge uses Fastify and http/.
  'src/domain/time.ts': "import { randomUUID } from 'node:crypto';\nexport const id = randomUUID();\n",
  'src/domain/rules.ts': "import { id } from './time.js';\nexport const rule = id;\n",
  'src/http/routes.ts': "import type { FastifyInstance } from 'fastify';\nimport { rule } from '../domain/rules.js';\nexport const routes = (app: FastifyInstance) => rule;\n",
  'src/app.ts': "import Fastify from 'fastify';\nimport { routes } from './http/routes.js';\nexport const app = routes(Fastify());\n",
  'src/service.ts': "import { app } from './app.js';\nimport { routes } from './http/routes.js';\nexport const service = [app, routes];\n",
  'src/cli/write-openapi.ts': "import { routes } from '../http/routes.js';\nexport const tool = routes;\n",
  'src/cli/verify-audit.ts': "import { routes } from '../http/routes.js';\nexport const tool = routes;\n",
  'src/observability/tracing.ts': "export const load = () => import('@fastify/otel');\n",
  'src/store/tenants.ts': "import { rule } from '../domain/rules.js';\nimport pg from 'pg';\nexport const store = [rule, pg];\n",

  // One violation each.
  'src/domain/leaky.ts': "import { store } from '../store/tenants.js';\nexport const leaky = store;\n",
  'src/store/shaped.ts': "import { rule } from '../domain/rules.js';\nimport { shape } from '../http/shape.js';\nexport const shaped = [rule, shape];\n",
  'src/http/shape.ts': 'export const shape = 1;\n',
  'src/services/plugin.ts': "import type { FastifyReply } from 'fastify';\nexport type Reply = FastifyReply;\n",
  'src/services/typebox.ts': "import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';\nexport type P = TypeBoxTypeProvider;\n",
  'src/jobs/otel.ts': "export const load = () => import('@fastify/otel');\n",
  'src/jobs/sweep.ts': "import { routes } from '../http/routes.js';\nexport const sweep = routes;\n",
  'src/cli/migrate.ts': "import { routes } from '../http/routes.js';\nexport const tool = routes;\n",
  'src/keys/a.ts': "import { b } from './b.js';\nexport const a = () => b;\n",
  'src/keys/b.ts': "import { a } from './a.js';\nexport const b = () => a;\n",
  'src/auth/dev.ts': "import { expect } from 'vitest';\nexport const check = expect;\n",
  'src/auth/undeclared.ts': "import inject from 'light-my-request';\nexport const fake = inject;\n",
  'src/auth/typo.ts': "import { nothing } from './nowhere.js';\nexport const typo = nothing;\n",
};

interface Violation {
  rule: { name: string };
  from: string;
  to: string;
}

describe('the layering rules (.dependency-cruiser.mjs)', () => {
  let dir: string;
  let violations: Array<[rule: string, from: string, to: string]>;
  let plain: { status: number | null; output: string };

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'tr-layering-'));
    for (const [file, source] of Object.entries(FILES)) {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      writeFileSync(path.join(dir, file), source);
    }
    // The real package.json (which packages are dependencies, which devDependencies) and the real
    // node_modules, reached through a link that the config extension below keeps as written.
    cpSync(path.join(PROJECT_DIR, 'package.json'), path.join(dir, 'package.json'));
    cpSync(path.join(PROJECT_DIR, 'tsconfig.json'), path.join(dir, 'tsconfig.json'));
    symlinkSync(path.join(PROJECT_DIR, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
    writeFileSync(
      path.join(dir, '.dependency-cruiser.mjs'),
      `export default { extends: ${JSON.stringify(path.join(PROJECT_DIR, '.dependency-cruiser.mjs'))}, options: { preserveSymlinks: true } };\n`,
    );
    const depcruise = (...args: string[]) => {
      const run = spawnSync(process.execPath, [DEPCRUISE, 'src', '--config', '.dependency-cruiser.mjs', ...args], {
        cwd: dir,
        encoding: 'utf8',
        timeout: 120_000,
      });
      if (run.error) throw run.error;
      return run;
    };
    // As `npm run depcruise` runs it (the err reporter, whose exit code is the number of errors) ...
    const run = depcruise();
    plain = { status: run.status, output: `${run.stdout}${run.stderr}` };
    // ... and as JSON, to see exactly which imports were rejected by which rule.
    const result = JSON.parse(depcruise('--output-type', 'json').stdout) as { summary: { violations: Violation[] } };
    violations = result.summary.violations.map((v) => [v.rule.name, v.from, v.to] as [string, string, string]).sort();
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('fails the command as npm test runs it, one error per violation, each named', () => {
    expect(plain.status).toBe(12);
    expect(plain.output).toContain('12 dependency violations (12 errors, 0 warnings)');
    expect(plain.output).toContain('error domain-is-pure: src/domain/leaky.ts → src/store/tenants.ts');
  });

  it('finds each planted violation, and nothing in the imports the rules allow', () => {
    // A cycle is one violation, reported at the first of its modules.
    // The resolved paths of packages are in node_modules; only their package directory matters here.
    const shortened = violations.map(([rule, from, to]) => [rule, from, to.replace(/^(node_modules\/(@[^/]+\/)?[^/]+)\/.*$/, '$1')]);
    expect(shortened).toEqual(
      [
        ['domain-is-pure', 'src/domain/leaky.ts', 'src/store/tenants.ts'],
        ['store-not-http', 'src/store/shaped.ts', 'src/http/shape.ts'],
        ['http-only-from-the-edge', 'src/store/shaped.ts', 'src/http/shape.ts'],
        ['fastify-only-at-the-edge', 'src/services/plugin.ts', 'node_modules/fastify'],
        ['fastify-only-at-the-edge', 'src/services/typebox.ts', 'node_modules/@fastify/type-provider-typebox'],
        ['fastify-otel-only-in-tracing', 'src/jobs/otel.ts', 'node_modules/@fastify/otel'],
        ['http-only-from-the-edge', 'src/jobs/sweep.ts', 'src/http/routes.ts'],
        ['http-only-from-the-edge', 'src/cli/migrate.ts', 'src/http/routes.ts'],
        ['no-circular', 'src/keys/a.ts', 'src/keys/b.ts'],
        ['src-not-to-dev-dep', 'src/auth/dev.ts', 'node_modules/vitest'],
        ['src-not-to-undeclared', 'src/auth/undeclared.ts', 'node_modules/light-my-request'],
        ['not-to-unresolvable', 'src/auth/typo.ts', './nowhere.js'],
      ].sort(),
    );
  });
});
