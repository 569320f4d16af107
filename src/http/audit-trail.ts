// The events the service writes about its own changes. Each is appended inside the transaction
// of the change it describes, so the change and its event commit together or not at all.
import type { FastifyRequest } from 'fastify';
import type { AuditActor, AuditEventInput, Crud, StringMap } from '../domain/audit.js';
import { appendEvent } from '../store/audit.js';
import type { Queryable } from '../store/database.js';
import type { TenantRow } from '../store/tenants.js';
import { SERVICE_VERSION } from '../version.js';

/** Who acts when no principal does (the service's own work, outside any request). */
export const SYSTEM_ACTOR: AuditActor = { id: 'system', name: 'tenant-registry', fields: { kind: 'system' } };

/** The authenticated principal of the request as an audit actor. */
export function actorOf(request: FastifyRequest): AuditActor {
  const principal = request.principal;
  if (!principal) return SYSTEM_ACTOR;
  return {
    id: principal.sub,
    name: principal.name,
    fields: { kind: principal.kind, ...(principal.tenantId ? { tenant_id: principal.tenantId } : {}) },
  };
}

export interface TenantChange {
  action: string;
  crud: Crud;
  tenant: TenantRow;
  fields?: StringMap;
}

export function tenantChangeEvent(request: FastifyRequest, change: TenantChange): AuditEventInput {
  const { tenant } = change;
  return {
    action: change.action,
    crud: change.crud,
    tenant_id: tenant.id,
    group: { id: tenant.id, name: tenant.name },
    actor: actorOf(request),
    target: { id: tenant.id, name: tenant.slug, type: 'tenant' },
    source_ip: request.ip,
    component: 'tenant-registry',
    version: SERVICE_VERSION,
    fields: change.fields ?? null,
  };
}

/** Appends the event of a tenant change in the transaction that made it. */
export async function recordTenantChange(
  tx: Queryable,
  request: FastifyRequest,
  change: TenantChange,
  now: Date,
): Promise<void> {
  await appendEvent(tx, tenantChangeEvent(request, change), now);
}
