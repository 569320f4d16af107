// Which Keycloak adapter a configuration gets: the mock only in dev, none that calls anything
// when provisioning is off, the Admin API client otherwise.
import { describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../../src/config.js';
import { keycloakAdapterFor } from '../../src/keycloak/setup.js';

const base = loadConfig({});
const withKeycloak = (appEnv: Config['appEnv'], keycloak: Partial<Config['keycloak']>) => ({
  appEnv,
  auth: base.auth,
  keycloak: { ...base.keycloak, ...keycloak },
});

describe('keycloakAdapterFor', () => {
  it('gives dev without KEYCLOAK_ADMIN_URL the mock', () => {
    expect(keycloakAdapterFor(withKeycloak('dev', {})).kind).toBe('mock');
  });

  it.each(['stage', 'prod'] as const)('never gives %s the mock, even to a caller that skipped config.ts', (appEnv) => {
    expect(() => keycloakAdapterFor(withKeycloak(appEnv, {}))).toThrow('the mock Keycloak adapter runs only with APP_ENV=dev');
  });

  it.each(['dev', 'prod'] as const)('gives %s with provisioning off an adapter that refuses and reports disabled', async (appEnv) => {
    const adapter = keycloakAdapterFor(withKeycloak(appEnv, { provisioning: 'off' }));
    expect(adapter.kind).toBe('disabled');
    expect(await adapter.health()).toBe('disabled');
    const request = { tenantId: 't', slug: 'acme', name: 'Acme', adminEmail: 'it@acme.example.com', adminName: null, knownOrganizationId: null };
    await expect(adapter.provision(request, AbortSignal.timeout(1_000))).rejects.toMatchObject({
      name: 'KeycloakError',
      type: 'disabled',
      step: 'organization',
    });
  });

  it('gives KEYCLOAK_ADMIN_URL the Admin API client', () => {
    const adapter = keycloakAdapterFor(withKeycloak('prod', { adminUrl: 'http://127.0.0.1:1', clientId: 'registry', clientSecret: 's' }));
    expect(adapter.kind).toBe('http');
  });
});
