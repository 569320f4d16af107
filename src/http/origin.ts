// Who a request is, as the origin of the changes it makes: the authenticated principal as the
// audit event's actor, and the address it came from.
import type { FastifyRequest } from 'fastify';
import type { AuditActor } from '../domain/audit.js';
import { SYSTEM_ACTOR, type Origin } from '../services/audit-trail.js';

export function originOf(request: FastifyRequest): Origin {
  const principal = request.principal;
  const actor: AuditActor = principal
    ? {
        id: principal.sub,
        name: principal.name,
        fields: { kind: principal.kind, ...(principal.tenantId ? { tenant_id: principal.tenantId } : {}) },
      }
    : SYSTEM_ACTOR;
  return { actor, sourceIp: request.ip };
}
