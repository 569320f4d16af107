// The service version, read from package.json: ../package.json is the repository's from src/,
// and the build's own copy from dist/src/ (make build puts one there).
import { readFileSync } from 'node:fs';

const packageJson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

export const SERVICE_VERSION = packageJson.version;
