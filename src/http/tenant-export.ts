// GET /v1/tenants/{id}/export: everything the registry holds about a tenant, as one NDJSON
// document: the tenant, its entitlements, its sales requests, its API keys (metadata: never a key
// or its hash) and its audit events, one record per line, then an `end` line with the counts, so
// a reader can tell a complete document from a cut one. Every part is read page by page as the
// client takes it, so the memory it holds is one page whatever the tenant's size. It is read as
// it goes, not as a snapshot: a change made during the export may or may not be in it.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { notFound } from '../problems.js';
import { scanEvents } from '../store/audit.js';
import type { Database } from '../store/database.js';
import { listApiKeysPage } from '../store/api-keys.js';
import { listEntitlements, listRequests } from '../store/entitlements.js';
import { findTenantById, type TenantRow } from '../store/tenants.js';
import { REQUEST_STATUSES } from '../domain/entitlements.js';
import { toApiKey } from './api-keys.js';
import { toAuditEvent } from './audit-view.js';
import { toRequest } from './catalog.js';
import { toEntitlement } from './entitlements.js';
import { tenantFrom } from './access.js';
import { TenantIdParams } from './schemas/tenant.js';
import { sendStreamed } from './streamed-answer.js';
import { toTenant } from './tenants.js';

/** The record types of the document, in the order they come. */
export const EXPORT_RECORD_TYPES = ['tenant', 'entitlement', 'product_request', 'api_key', 'audit_event', 'end'] as const;
type RecordType = (typeof EXPORT_RECORD_TYPES)[number];

const PAGE = 500;

const line = (type: RecordType, data: unknown) => `${JSON.stringify({ type, data })}\n`;

export async function* tenantExportLines(db: Database, tenant: TenantRow, now: Date): AsyncGenerator<string> {
  const counts: Partial<Record<RecordType, number>> = {};
  const emit = (type: RecordType, data: unknown) => {
    counts[type] = (counts[type] ?? 0) + 1;
    return line(type, data);
  };
  yield emit('tenant', toTenant(tenant, now));
  // One row per product of the catalog at most.
  for (const row of await listEntitlements(db, tenant.id)) yield emit('entitlement', toEntitlement(row, now));
  for (const status of REQUEST_STATUSES) {
    let after: { created: string; id: string } | null = null;
    for (;;) {
      const page = await listRequests(db, { status, tenantId: tenant.id }, after, PAGE);
      for (const row of page) yield emit('product_request', toRequest(row));
      const last = page.at(-1);
      if (page.length < PAGE || !last) break;
      after = { created: last.created_at.toISOString(), id: last.id };
    }
  }
  let afterKey: { createdAt: Date; id: string } | null = null;
  for (;;) {
    const page = await listApiKeysPage(db, tenant.id, afterKey, PAGE);
    for (const row of page) yield emit('api_key', toApiKey(row));
    const last = page.at(-1);
    if (page.length < PAGE || !last) break;
    afterKey = { createdAt: last.created_at, id: last.id };
  }
  for await (const event of scanEvents(db, { tenant_id: tenant.id })) yield emit('audit_event', toAuditEvent(event));
  yield line('end', { counts });
}

export const tenantExportRoutes: FastifyPluginAsyncTypebox<{ db: Database; clock: () => Date; exportStallMs: number }> = async (
  app,
  { db, clock, exportStallMs },
) => {
  app.get(
    '/v1/tenants/:id/export',
    {
      // The tenant's own IT admin may take its data out too; it is a heavy read like the audit export.
      config: { access: { allow: ['platform_admin', 'it_admin'], tenant: tenantFrom.param('id') }, heavyRead: 'export', problems: ['not_found'] },
      schema: {
        operationId: 'exportTenant',
        tags: ['tenants'],
        summary: 'Everything the registry holds about a tenant, streamed as one NDJSON document',
        description:
          'One JSON object per line, `{type, data}`: the tenant, then its entitlements, product_requests, api_keys (metadata, never a key or its hash) and audit_events, then `{type: "end", data: {counts}}`. A document without its end line was cut.',
        params: TenantIdParams,
        response: {
          200: {
            description: 'The document, streamed',
            content: {
              'application/x-ndjson': {
                schema: { type: 'string', description: `one {type, data} object per line; type is one of ${EXPORT_RECORD_TYPES.join(', ')}` },
              },
            },
          },
        },
      },
    },
    async (request, reply) => {
      const tenant = await findTenantById(db, request.params.id);
      if (!tenant) throw notFound('tenant');
      const now = clock();
      return sendStreamed(request, reply, tenantExportLines(db, tenant, now), {
        contentType: 'application/x-ndjson; charset=utf-8',
        filename: `tenant-${tenant.slug}-${now.toISOString().slice(0, 10)}.ndjson`,
        stallMs: exportStallMs,
      });
    },
  );
};
