// The development issuer runs only in dev, and on a DATABASE_URL database only when asked: a
// guard behind config.ts, for callers that build an app without it.
import { describe, expect, it } from 'vitest';
import { authenticationFor } from '../../src/auth/setup.js';
import { loadConfig } from '../../src/config.js';

const DATABASE_URL = 'postgres://postgres@127.0.0.1:1/registry';

describe('authenticationFor without an issuer', () => {
  it('runs the development issuer in dev on the embedded database', async () => {
    expect((await authenticationFor(loadConfig({}))).devIssuer).not.toBeNull();
  });

  it('runs it on a DATABASE_URL database with DEV_ISSUER_WITH_DATABASE=true', async () => {
    expect((await authenticationFor(loadConfig({ DATABASE_URL, DEV_ISSUER_WITH_DATABASE: 'true' }))).devIssuer).not.toBeNull();
  });

  it('refuses a DATABASE_URL database without it', async () => {
    const config = loadConfig({ DATABASE_URL, DEV_ISSUER_WITH_DATABASE: 'true' });
    await expect(authenticationFor({ ...config, auth: { ...config.auth, devIssuerWithDatabase: false } })).rejects.toThrow(
      'DEV_ISSUER_WITH_DATABASE=true',
    );
  });

  it('refuses outside dev', async () => {
    await expect(authenticationFor({ ...loadConfig({}), appEnv: 'prod' })).rejects.toThrow('only with APP_ENV=dev');
  });
});
