// Vitest global setup: the client's sources import src/generated/, which is made from
// openapi.yaml and never checked in, so a test run on a fresh clone makes it first (at once when
// it is already current: scripts/generate.mjs compares times).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export default async function setup(): Promise<void> {
  await promisify(execFile)(process.execPath, [fileURLToPath(new URL('../../scripts/generate.mjs', import.meta.url))]);
}
