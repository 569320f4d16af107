// /v1/audit: publish events, query them page by page, export them as a stream, and verify a
// tenant's hash chain.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  CREATED_MAX_AHEAD_MS,
  CREATED_MAX_BEHIND_MS,
  MAX_EVENT_BYTES,
  chainKeyOf,
  eventBytes,
  isCreatedInWindow,
  isReservedAction,
  toRecord,
  type AuditPublisher,
} from '../domain/audit.js';
import { verifyChain } from '../domain/audit-chain.js';
import { appendEvent, chainContext, chainHead, queryEvents, scanEvents, walkChain, type AuditFilters } from '../store/audit.js';
import type { Database } from '../store/database.js';
import { lockTenantIdForKeyShare } from '../store/tenants.js';
import { tenantFrom, type Access } from './access.js';
import { exportLines, EXPORT_FORMATS } from './audit-export.js';
import { toAuditEvent } from './audit-view.js';
import { sendStreamed } from './streamed-answer.js';
import { decodePosition, encodePosition } from './cursor.js';
import { AppError, invalidBody, notFound } from '../problems.js';
import {
  AppendedEventSchema,
  AuditEventBody,
  type AuditEventBodyInput,
  AuditExportQuery,
  AuditListQuery,
  AuditPageSchema,
  AuditVerifyQuery,
  ChainReportSchema,
} from './schemas/audit.js';
import { RefTo } from './schemas/parts.js';

export interface AuditRoutesOptions {
  db: Database;
  clock: () => Date;
  /** How long an export may go without its client reading before it is cut (EXPORT_STALL_MS). */
  exportStallMs: number;
}


function filtersOf(query: AuditFilters & Record<string, unknown>): AuditFilters {
  const keys = ['tenant_id', 'product', 'actor_id', 'action', 'target_id', 'target_type', 'crud', 'is_failure', 'since', 'until'] as const;
  const filters: AuditFilters = {};
  for (const key of keys) if (query[key] !== undefined) Object.assign(filters, { [key]: query[key] });
  return filters;
}

// Operators read every log; a tenant's IT_ADMIN reads that tenant's (tenant_id is required).
const READ_LOG: Access = { allow: ['platform_admin', 'it_admin'], tenant: tenantFrom.query('tenant_id') };

// Every id is a UUID of this length; the one an event gets does not change its size.
const LARGEST_ID = '00000000-0000-0000-0000-000000000000';

/**
 * The checks of a published event beyond its schema: whose namespace its action is in, when it
 * says it happened, and how large it is. All run before any database work.
 */
function checkPublished(event: AuditEventBodyInput, received: Date, publisher: AuditPublisher): void {
  // The schema's if/then refuses this already; kept so the rule holds whatever validates the body.
  if (!event.actor && event.is_anonymous !== true) throw invalidBody('/actor', 'is required unless is_anonymous is true');
  if (isReservedAction(event.action)) {
    throw new AppError('reserved_action', {
      detail: `"${event.action.split(/[.:/]/, 1)[0]}." actions are the registry's own record of its changes; publish under another namespace`,
      errors: [{ path: '/action', in: 'body', message: 'is in a namespace reserved for the registry' }],
    });
  }
  if (event.created && !isCreatedInWindow(event.created, received)) {
    throw invalidBody(
      '/created',
      `must lie between ${CREATED_MAX_BEHIND_MS / 86_400_000} days before and ${CREATED_MAX_AHEAD_MS / 60_000} minutes after now`,
    );
  }
  // Measured at the largest position and hash it could take, so the stored event is never larger.
  const size = eventBytes(
    toRecord(event, { id: LARGEST_ID, chainSeq: Number.MAX_SAFE_INTEGER, prevHash: 'f'.repeat(64), received, publisher }),
  );
  if (size > MAX_EVENT_BYTES) {
    throw new AppError('event_too_large', {
      detail: `the event is ${size} bytes in its canonical form; the largest stored is ${MAX_EVENT_BYTES}`,
    });
  }
}

export const auditRoutes: FastifyPluginAsyncTypebox<AuditRoutesOptions> = async (app, { db, clock, exportStallMs }) => {
  app.post(
    '/v1/audit',
    {
      config: {
        access: { allow: ['platform_admin', 'service'] },
        // A retry with the same external_id is answered 200 with the event it appended before.
        answerHeaders: { 200: ['Idempotent-Replayed'] },
        problems: ['not_found', 'reserved_action', 'event_too_large'],
      },
      schema: {
        operationId: 'appendAuditEvent',
        tags: ['audit'],
        summary: 'Append an event; a retry with the same external_id answers the original',
        body: AuditEventBody,
        response: {
          201: RefTo(AppendedEventSchema, { description: 'Appended' }),
          200: RefTo(AppendedEventSchema, { description: 'An event with this external_id already exists; nothing appended' }),
        },
      },
    },
    async (request, reply) => {
      const event = request.body;
      const principal = request.principal!;
      const publisher: AuditPublisher = { sub: principal.sub, client: principal.client };
      const received = clock();
      checkPublished(event, received, publisher);
      const result = await db.transaction(async (tx) => {
        // Holds the tenant (if any) until commit, so it cannot vanish between check and append.
        if (event.tenant_id && !(await lockTenantIdForKeyShare(tx, event.tenant_id))) throw notFound('tenant');
        return appendEvent(tx, event, received, publisher);
      });
      if (result.replayed) reply.header('idempotent-replayed', 'true');
      return reply.code(result.replayed ? 200 : 201).send({ id: result.id, hash: result.hash });
    },
  );

  app.get(
    '/v1/audit',
    {
      config: { access: READ_LOG, problems: ['invalid_cursor'] },
      schema: {
        operationId: 'listAuditEvents',
        tags: ['audit'],
        summary: 'Events newest first, filtered, one keyset page at a time',
        querystring: AuditListQuery,
        response: { 200: RefTo(AuditPageSchema) },
      },
    },
    async (request) => {
      const { limit = 50, cursor } = request.query;
      const after = cursor ? decodePosition(cursor) : null;
      // A page of large events holds fewer than `limit` (store/audit.ts, BATCH_BYTES); the
      // cursor then continues where it was cut.
      const page = await queryEvents(db, filtersOf(request.query), after, limit);
      const last = page.events.at(-1);
      return {
        items: page.events.map(toAuditEvent),
        next_cursor: page.more && last ? encodePosition(last) : null,
      };
    },
  );

  app.get(
    '/v1/audit/export',
    {
      config: { access: READ_LOG, heavyRead: 'export' },
      schema: {
        operationId: 'exportAuditEvents',
        tags: ['audit'],
        summary: 'Every matching event, newest first, streamed as NDJSON or CSV',
        querystring: AuditExportQuery,
        response: {
          200: {
            description: 'The events, streamed',
            content: {
              'application/x-ndjson': { schema: { type: 'string', description: 'one AuditEvent JSON object per line' } },
              'text/csv': { schema: { type: 'string', description: 'a header row, then one row per event' } },
            },
          },
        },
      },
    },
    async (request, reply) => {
      const format = request.query.format ?? 'ndjson';
      const { contentType, extension } = EXPORT_FORMATS[format];
      return sendStreamed(request, reply, exportLines(scanEvents(db, filtersOf(request.query)), format), {
        contentType,
        filename: `audit-${clock().toISOString().slice(0, 10)}.${extension}`,
        stallMs: exportStallMs,
      });
    },
  );

  app.get(
    '/v1/audit/verify',
    {
      config: { access: READ_LOG, heavyRead: 'verify' },
      schema: {
        operationId: 'verifyAuditChain',
        tags: ['audit'],
        summary: "Re-walk a tenant's hash chain (or the platform chain) and report the first break",
        querystring: AuditVerifyQuery,
        response: { 200: RefTo(ChainReportSchema) },
      },
    },
    async (request) => {
      const chainKey = chainKeyOf(request.query.tenant_id);
      // One snapshot for the head and every row, so appends made meanwhile cannot look like a
      // broken tail.
      return db.transaction(async (tx) => {
        await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
        const head = await chainHead(tx, chainKey);
        return verifyChain(walkChain(tx, chainKey), head, await chainContext(tx, chainKey));
      });
    },
  );
};
