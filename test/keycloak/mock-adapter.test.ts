// The mock adapter keeps the HTTP adapter's rule for existing organizations: provisioning a tenant
// again answers the same ids, and another tenant asking for an alias already made for someone
// else is a conflict at the organization step, as Keycloak's tenant_id attribute would show it.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { KeycloakError, type ProvisionRequest } from '../../src/keycloak/adapter.js';
import { MockAdapter } from '../../src/keycloak/mock-adapter.js';

const request = (overrides: Partial<ProvisionRequest> = {}): ProvisionRequest => ({
  tenantId: randomUUID(),
  slug: 'acme',
  name: 'Acme',
  adminEmail: 'it@acme.example.com',
  adminName: null,
  knownOrganizationId: null,
  ...overrides,
});

describe('MockAdapter', () => {
  it('answers the same organization and user again for the same tenant', async () => {
    const adapter = new MockAdapter('http://keycloak.test/realms/test');
    const first = request();
    const once = await adapter.provision(first);
    expect(await adapter.provision({ ...first, adminEmail: 'IT@acme.example.com' })).toEqual(once);
    expect(adapter.organizations.get('acme')).toEqual({ id: once.organizationId, tenantId: first.tenantId });
  });

  it("refuses another tenant's alias: conflict at organization, the organization still the first tenant's", async () => {
    const adapter = new MockAdapter('http://keycloak.test/realms/test');
    const owner = request();
    const made = await adapter.provision(owner);
    const caught: unknown = await adapter.provision(request({ adminEmail: 'other@example.com' })).catch((error: unknown) => error);
    expect(caught).toBeInstanceOf(KeycloakError);
    expect(caught).toMatchObject({ type: 'conflict', step: 'organization', status: 409 });
    expect(adapter.organizations.get('acme')).toEqual({ id: made.organizationId, tenantId: owner.tenantId });
    expect(adapter.provisioned).toHaveLength(2);
  });
});
