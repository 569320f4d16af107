// The package as a product installs it: built with its own tsconfig to dist/, and imported by
// plain Node without the source condition the repository's tests use (vitest.config.ts), through
// its exports: the core and each adapter, each with its declarations beside it.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const run = promisify(execFile);
const PACKAGE_DIR = fileURLToPath(new URL('../', import.meta.url));
const ROOT = path.resolve(PACKAGE_DIR, '../..');

it('builds to dist and is importable through its exports by plain Node, with types for each entry', async () => {
  await run('npm', ['run', '--silent', 'build'], { cwd: PACKAGE_DIR });
  for (const entry of ['index', 'fastify', 'connect']) {
    expect(existsSync(path.join(PACKAGE_DIR, 'dist', `${entry}.js`)), entry).toBe(true);
    expect(existsSync(path.join(PACKAGE_DIR, 'dist', `${entry}.d.ts`)), entry).toBe(true);
  }
  const script = `
    const core = await import('@tenant-registry/verify');
    const fastify = await import('@tenant-registry/verify/fastify');
    const connect = await import('@tenant-registry/verify/connect');
    const verifier = core.createKeyVerifier({ registryUrl: 'http://127.0.0.1:9', token: 't', followChanges: false, requestTimeoutMs: 200 });
    const answer = await verifier.verify('bp_x');
    await verifier.close();
    console.log(JSON.stringify({
      core: Object.keys(core).sort(), fastify: typeof fastify.apiKeyPlugin, connect: typeof connect.apiKeyMiddleware,
      resolved: import.meta.resolve('@tenant-registry/verify'), answer,
    }));`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT });
  const result = JSON.parse(stdout) as Record<string, unknown>;
  expect(result).toEqual({
    core: ['VERIFY_CODES', 'createKeyVerifier', 'keepTickObjectShape', 'keyFromHeaders', 'refusalFor'],
    fastify: 'function',
    connect: 'function',
    resolved: expect.stringMatching(/packages\/verify\/dist\/index\.js$/) as unknown,
    answer: { valid: false, code: 'REGISTRY_UNAVAILABLE' },
  });
}, 120_000);
