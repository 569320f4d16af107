// /v1/webhooks: operators register endpoints that receive the change feed, signed as Standard
// Webhooks says (events/webhook-dispatcher.ts delivers). A secret is answered by create and
// rotate-secret only, never listed or logged. Every change writes an audit event of the platform
// chain in its transaction (services/webhooks.ts).
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { changeEventData, type ChangeEvent } from '../domain/change-event.js';
import { TEST_EVENT_TYPE, urlProblem } from '../domain/webhook.js';
import { signingSecrets, payloadOf } from '../events/webhook-dispatcher.js';
import { AddressRefused, createUrlGuard, hostOf, type Allowlist, type UrlGuard } from '../events/url-guard.js';
import { DEFAULT_ATTEMPT_TIMEOUT_MS, sendAttempt } from '../events/webhook-sender.js';
import { AppError, invalidBody, notFound } from '../problems.js';
import { createWebhook, editWebhook, removeWebhook, replayWebhook, rotateSecret } from '../services/webhooks.js';
import type { Database, Queryable } from '../store/database.js';
import { findTenantById } from '../store/tenants.js';
import { MAX_WEBHOOKS } from '../domain/webhook.js';
import { findWebhook, insertDelivery, listDeliveries, listWebhooks, lockWebhook, type DeliveryRow, type WebhookChanges, type WebhookRow } from '../store/webhooks.js';
import type { Access } from './access.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { originOf } from './origin.js';
import { RefTo } from './schemas/parts.js';
import {
  CreateWebhookBody,
  CreatedWebhookSchema,
  DeliveryListQuery,
  DeliveryPageSchema,
  ReplayBody,
  RotatedWebhookSchema,
  TestPingSchema,
  UpdateWebhookBody,
  WebhookListSchema,
  WebhookParams,
  WebhookSchema,
  type Delivery,
  type Webhook,
} from './schemas/webhook.js';

export interface WebhookRouteOptions {
  db: Database;
  clock: () => Date;
  /** WEBHOOK_ALLOW_PRIVATE, read (events/url-guard.ts). */
  allowPrivate: Allowlist;
  /** How long a test ping may take (DEFAULT_ATTEMPT_TIMEOUT_MS). */
  timeoutMs?: number;
}

// Endpoints reach into the registry's network on the operators' say: theirs alone.
const OPERATORS: Access = { allow: ['platform_admin'] };

export function toWebhook(row: WebhookRow, now: Date): Webhook {
  return {
    id: row.id,
    url: row.url,
    description: row.description,
    types: row.types,
    tenant_id: row.tenant_id,
    enabled: row.enabled,
    last_seq: row.last_seq,
    attempts: row.attempts,
    next_attempt_at: row.next_attempt_at?.toISOString() ?? null,
    previous_secret_valid_until: row.previous_secret_until && row.previous_secret_until > now ? row.previous_secret_until.toISOString() : null,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    created_by: row.created_by,
  };
}

const toDelivery = (row: DeliveryRow): Delivery => ({
  id: String(row.id),
  event_id: row.event_id,
  seq: row.seq,
  type: row.type,
  attempt: row.attempt,
  outcome: row.outcome,
  http_status: row.http_status,
  latency_ms: row.latency_ms,
  error: row.error,
  attempted_at: row.attempted_at.toISOString(),
});

/** Refuses a URL whose text is wrong (400 validation_failed) or whose host is internal (400 webhook_url_refused). */
async function checkUrl(guard: UrlGuard, url: string): Promise<void> {
  const problem = urlProblem(url);
  if (problem) throw invalidBody('/url', problem);
  const parsed = new URL(url);
  const verdict = await guard.check(parsed);
  if (verdict === null) return;
  const host = hostOf(parsed);
  const detail =
    verdict instanceof AddressRefused
      ? `${host === verdict.address ? host : `${host} resolves to ${verdict.address}, which`} is a ${verdict.kind.replace('_', '-')} address: webhooks do not reach internal networks unless WEBHOOK_ALLOW_PRIVATE allows it`
      : `${host} does not resolve`;
  throw new AppError('webhook_url_refused', { detail, errors: [{ path: '/url', in: 'body', message: 'is refused' }] });
}

/** Runs `change` on the webhook, locked in a transaction of its own; 404 when there is none. */
function changeWebhook<T>(db: Database, id: string, change: (tx: Queryable, current: WebhookRow) => Promise<T>): Promise<T> {
  return db.transaction(async (tx) => {
    const current = await lockWebhook(tx, id);
    if (!current) throw notFound('webhook');
    return change(tx, current);
  });
}

async function checkTenant(db: Database, tenantId: string | null | undefined): Promise<void> {
  if (tenantId && !(await findTenantById(db, tenantId))) throw invalidBody('/tenant_id', 'names no tenant');
}

// Below PostgreSQL's bigint maximum (19 digits can exceed it): a larger cursor was not issued here.
const DELIVERY_ID = /^[0-9]{1,18}$/;

export const webhookRoutes: FastifyPluginAsyncTypebox<WebhookRouteOptions> = async (app, options) => {
  const { db, clock } = options;
  const guard = createUrlGuard(options.allowPrivate);
  const timeoutMs = options.timeoutMs ?? DEFAULT_ATTEMPT_TIMEOUT_MS;
  const tags = ['webhooks'];

  app.post(
    '/v1/webhooks',
    {
      // A replay answers the webhook without its secret, which is kept nowhere but its row.
      config: {
        access: OPERATORS,
        idempotent: { withhold: ['secret'] },
        answerHeaders: { 201: ['Location'] },
        problems: ['webhook_url_refused', 'webhook_limit', 'cursor_expired'],
      },
      schema: {
        operationId: 'createWebhook',
        tags,
        summary: 'Register an endpoint for the change feed; its signing secret is in this answer only',
        description: `Deliveries start with the next event committed, or at from_seq. At most ${MAX_WEBHOOKS} webhooks.`,
        body: CreateWebhookBody,
        response: { 201: RefTo(CreatedWebhookSchema) },
      },
    },
    async (request, reply) => {
      const body = request.body;
      await checkUrl(guard, body.url);
      await checkTenant(db, body.tenant_id);
      const now = clock();
      const spec = {
        url: body.url,
        description: body.description?.trim() ?? null,
        types: body.types ?? [],
        tenantId: body.tenant_id?.toLowerCase() ?? null,
        enabled: body.enabled ?? true,
        fromSeq: body.from_seq ?? null,
      };
      const row = await db.transaction((tx) => createWebhook(tx, spec, originOf(request), now));
      return reply.code(201).header('location', `/v1/webhooks/${row.id}`).send({ ...toWebhook(row, now), secret: row.secret });
    },
  );

  app.get(
    '/v1/webhooks',
    {
      config: { access: OPERATORS },
      schema: { operationId: 'listWebhooks', tags, summary: 'Every webhook, oldest first, without secrets', response: { 200: RefTo(WebhookListSchema) } },
    },
    async () => {
      const now = clock();
      return { items: (await listWebhooks(db, MAX_WEBHOOKS)).map((row) => toWebhook(row, now)) };
    },
  );

  app.get(
    '/v1/webhooks/:id',
    {
      config: { access: OPERATORS, problems: ['not_found'] },
      schema: {
        operationId: 'getWebhook',
        tags,
        summary: 'One webhook, without its secret, with where its deliveries have got to',
        params: WebhookParams,
        response: { 200: RefTo(WebhookSchema, { description: 'The webhook' }) },
      },
    },
    async (request) => {
      const row = await findWebhook(db, request.params.id);
      if (!row) throw notFound('webhook');
      return toWebhook(row, clock());
    },
  );

  app.patch(
    '/v1/webhooks/:id',
    {
      config: { access: OPERATORS, problems: ['not_found', 'webhook_url_refused'] },
      schema: {
        operationId: 'updateWebhook',
        tags,
        summary: "Change a webhook's URL, description, filters or tenant, or disable and enable it",
        description:
          'The cursor stays: a disabled webhook enabled again resumes where it stopped. New filters apply from the cursor on. A new URL, or enabling, makes an event waiting for its next attempt due at once.',
        params: WebhookParams,
        body: UpdateWebhookBody,
        response: { 200: RefTo(WebhookSchema, { description: 'The webhook after the change' }) },
      },
    },
    async (request) => {
      const body = request.body;
      if (body.url !== undefined) await checkUrl(guard, body.url);
      await checkTenant(db, body.tenant_id);
      const changes: WebhookChanges = {
        ...(body.url !== undefined && { url: body.url }),
        ...(body.description !== undefined && { description: body.description?.trim() ?? null }),
        ...(body.types !== undefined && { types: body.types }),
        ...(body.tenant_id !== undefined && { tenantId: body.tenant_id?.toLowerCase() ?? null }),
        ...(body.enabled !== undefined && { enabled: body.enabled }),
      };
      const now = clock();
      const row = await changeWebhook(db, request.params.id, (tx, current) => editWebhook(tx, current, changes, originOf(request), now));
      return toWebhook(row, now);
    },
  );

  app.delete(
    '/v1/webhooks/:id',
    {
      config: { access: OPERATORS, problems: ['not_found'] },
      schema: {
        operationId: 'deleteWebhook',
        tags,
        summary: 'Delete a webhook and its delivery log; nothing more is sent to it',
        params: WebhookParams,
        response: { 204: Type.Null({ description: 'Deleted' }) },
      },
    },
    async (request, reply) => {
      const now = clock();
      await changeWebhook(db, request.params.id, (tx, current) => removeWebhook(tx, current, originOf(request), now));
      return reply.code(204).send(null);
    },
  );

  app.post(
    '/v1/webhooks/:id/rotate-secret',
    {
      config: { access: OPERATORS, problems: ['not_found'] },
      schema: {
        operationId: 'rotateWebhookSecret',
        tags,
        summary: 'A new signing secret, shown once; for 24 hours deliveries carry a signature by the old one as well',
        params: WebhookParams,
        response: { 200: RefTo(RotatedWebhookSchema) },
      },
    },
    async (request) => {
      const now = clock();
      const row = await changeWebhook(db, request.params.id, (tx, current) => rotateSecret(tx, current, originOf(request), now));
      return { ...toWebhook(row, now), secret: row.secret };
    },
  );

  app.get(
    '/v1/webhooks/:id/deliveries',
    {
      config: { access: OPERATORS, problems: ['not_found', 'invalid_cursor'] },
      schema: {
        operationId: 'listWebhookDeliveries',
        tags,
        summary: "A webhook's delivery log, newest first: every attempt, its status, latency and error class",
        description: 'Kept as long as the feed keeps events (EVENT_RETENTION_DAYS). It never holds a secret nor a response body.',
        params: WebhookParams,
        querystring: DeliveryListQuery,
        response: { 200: RefTo(DeliveryPageSchema) },
      },
    },
    async (request) => {
      const { cursor, limit = 50 } = request.query;
      const before = cursor === undefined ? null : Number(decodeCursor(cursor, 1, (part) => DELIVERY_ID.test(part))[0]);
      if (!(await findWebhook(db, request.params.id))) throw notFound('webhook');
      const rows = await listDeliveries(db, request.params.id, before, limit + 1);
      const items = rows.slice(0, limit);
      const last = items.at(-1);
      return { items: items.map(toDelivery), next_cursor: rows.length > limit && last ? encodeCursor([String(last.id)]) : null };
    },
  );

  app.post(
    '/v1/webhooks/:id/replay',
    {
      config: { access: OPERATORS, problems: ['not_found', 'cursor_expired'] },
      schema: {
        operationId: 'replayWebhook',
        tags,
        summary: 'Deliver every matching event from a seq on again, in order, starting now',
        description:
          'Moves the cursor back (or forward) to just before from_seq and starts the attempts afresh. Events past retention cannot be replayed (410 cursor_expired); from_seq may be at most one past the newest event.',
        params: WebhookParams,
        body: ReplayBody,
        response: { 200: RefTo(WebhookSchema, { description: 'The webhook, its cursor moved' }) },
      },
    },
    async (request) => {
      const now = clock();
      const row = await changeWebhook(db, request.params.id, (tx, current) => replayWebhook(tx, current, request.body.from_seq, originOf(request), now));
      return toWebhook(row, now);
    },
  );

  app.post(
    '/v1/webhooks/:id/test',
    {
      config: { access: OPERATORS, problems: ['not_found'] },
      schema: {
        operationId: 'testWebhook',
        tags,
        summary: `Send a signed ${TEST_EVENT_TYPE} ping now and answer how it went`,
        description: `The ping is shaped as a change event with seq 0 and type ${TEST_EVENT_TYPE}; it is not in the feed and never retried. It is sent even to a disabled webhook.`,
        params: WebhookParams,
        response: { 200: RefTo(TestPingSchema) },
      },
    },
    async (request) => {
      const row = await findWebhook(db, request.params.id);
      if (!row) throw notFound('webhook');
      const now = clock();
      const origin = originOf(request);
      const ping: ChangeEvent = {
        id: randomUUID(),
        seq: 0,
        type: TEST_EVENT_TYPE,
        tenant_id: null,
        tenant_prev_seq: null,
        occurred_at: now.toISOString(),
        data: changeEventData(origin.actor, { id: row.id, type: 'webhook', name: row.description }, null, null),
      };
      const result = await sendAttempt(row.url, { id: ping.id, payload: payloadOf(ping), secrets: signingSecrets(row, now), timestamp: now }, { guard, timeoutMs });
      await insertDelivery(db, {
        webhookId: row.id,
        eventId: ping.id,
        seq: null,
        type: TEST_EVENT_TYPE,
        attempt: 1,
        outcome: result.outcome,
        httpStatus: result.status,
        latencyMs: result.latencyMs,
        error: result.error,
        at: now,
      });
      return { id: ping.id, outcome: result.outcome, http_status: result.status, latency_ms: result.latencyMs, error: result.error };
    },
  );
};
