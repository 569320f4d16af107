// Shapes of webhooks: an endpoint as operators see it (never its secret), what create and
// rotate-secret answer (the secret, once), the delivery log, replay and the test ping.
import Type, { type Static } from 'typebox';
import { TYPE_FILTER_PATTERN } from '../../domain/change-event.js';
import { DELIVERY_OUTCOMES, MAX_URL_LENGTH } from '../../domain/webhook.js';
import { Nullable, RefTo, Text, Timestamp, Uuid } from './parts.js';

// Types an endpoint filters on, as GET /v1/events takes them.
const MAX_TYPE_FILTERS = 20;
// Sequence numbers as the feed counts them (src/http/schemas/event.ts: at most 15 digits).
const MAX_SEQ = 999_999_999_999_999;

const Url = Type.String({
  minLength: 1,
  maxLength: MAX_URL_LENGTH,
  description: 'http or https, without credentials; its host must not be or resolve to an internal address (WEBHOOK_ALLOW_PRIVATE)',
});
const Types = Type.Array(Type.String({ pattern: TYPE_FILTER_PATTERN, maxLength: 100 }), {
  maxItems: MAX_TYPE_FILTERS,
  uniqueItems: true,
  description: 'event types to deliver (tenant.created) and namespaces (tenant.*); empty: every type',
});
const Seq = (description: string) => Type.Integer({ minimum: 1, maximum: MAX_SEQ, description });

export const WebhookSchema = Type.Object(
  {
    id: Uuid(),
    url: Type.String(),
    description: Nullable(Type.String()),
    types: Type.Array(Type.String()),
    tenant_id: Nullable(Uuid({ description: "one tenant's events only; null: every tenant's, and events of no tenant" })),
    enabled: Type.Boolean({ description: 'a disabled endpoint keeps its place: enabled again, it resumes there' }),
    last_seq: Type.Integer({ minimum: 0, description: 'the cursor: every event up to this seq was delivered, given up or did not match' }),
    attempts: Type.Integer({ minimum: 0, description: 'failed attempts at the next event so far' }),
    next_attempt_at: Nullable(Timestamp({ description: 'when the next event is tried again; null: as soon as there is one' })),
    previous_secret_valid_until: Nullable(Timestamp({ description: 'after a rotation, until when the old secret still signs too' })),
    created_at: Timestamp(),
    updated_at: Timestamp(),
    created_by: Type.String(),
  },
  { $id: 'Webhook', title: 'Webhook', additionalProperties: false },
);
export type Webhook = Static<typeof WebhookSchema>;

const Secret = (description: string) => Type.String({ pattern: '^whsec_[A-Za-z0-9+/]+={0,2}$', description });

export const CreatedWebhookSchema = Type.Object(
  {
    ...WebhookSchema.properties,
    secret: Type.Optional(
      Secret('the signing secret (Standard Webhooks, whsec_...): shown here once, never again; absent from a replay (Idempotent-Replayed: true)'),
    ),
  },
  { $id: 'CreatedWebhook', title: 'CreatedWebhook', additionalProperties: false, description: 'The new webhook, with its secret' },
);

export const RotatedWebhookSchema = Type.Object(
  {
    ...WebhookSchema.properties,
    secret: Secret('the new signing secret: shown here once; the previous one signs beside it for 24 hours'),
  },
  { $id: 'RotatedWebhook', title: 'RotatedWebhook', additionalProperties: false, description: 'The webhook with its new secret' },
);

export const CreateWebhookBody = Type.Object(
  {
    url: Url,
    description: Type.Optional(Text(200)),
    types: Type.Optional(Types),
    tenant_id: Type.Optional(Uuid({ description: "deliver only this tenant's events" })),
    enabled: Type.Optional(Type.Boolean({ default: true })),
    from_seq: Type.Optional(Seq('the first event to deliver (it must still be kept); absent: only events committed from now on')),
  },
  { additionalProperties: false },
);

export const UpdateWebhookBody = Type.Object(
  {
    url: Type.Optional(Url),
    description: Type.Optional(Nullable(Text(200))),
    types: Type.Optional(Types),
    tenant_id: Type.Optional(Nullable(Uuid())),
    enabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false, minProperties: 1, description: 'What to change; the cursor stays where it is' },
);

export const WebhookParams = Type.Object({ id: Uuid() }, { additionalProperties: false });

export const WebhookListSchema = Type.Object(
  { items: Type.Array(RefTo(WebhookSchema)) },
  { $id: 'WebhookList', title: 'WebhookList', description: 'Every webhook, oldest first (there are at most 100)', additionalProperties: false },
);

export const DeliverySchema = Type.Object(
  {
    id: Type.String({ pattern: '^[0-9]{1,19}$' }),
    event_id: Nullable(Uuid({ description: "the event's id, which is the webhook-id header; null for a stretch lost to retention" })),
    seq: Nullable(Type.Integer({ description: 'null for a test ping; for an expired entry, the last seq lost' })),
    type: Nullable(Type.String()),
    attempt: Type.Integer({ minimum: 0, description: "1 for an event's first attempt; 0 for an expired entry" }),
    outcome: Type.Enum(DELIVERY_OUTCOMES, {
      description:
        'delivered (2xx); failed (tried again later); dead (the last attempt failed: the event was given up); expired (events were past retention before they could be sent)',
    }),
    http_status: Nullable(Type.Integer()),
    latency_ms: Nullable(Type.Integer({ description: 'until the answer headers came' })),
    error: Nullable(Type.String({ description: 'timeout, connection_refused, connection_reset, dns_failure, tls_error, address_refused, http_<status>, ...' })),
    attempted_at: Timestamp(),
  },
  { $id: 'WebhookDelivery', title: 'WebhookDelivery', additionalProperties: false },
);
export type Delivery = Static<typeof DeliverySchema>;

export const DeliveryPageSchema = Type.Object(
  {
    items: Type.Array(RefTo(DeliverySchema)),
    next_cursor: Nullable(Type.String({ description: 'pass as cursor for older entries; null on the last page' })),
  },
  { $id: 'WebhookDeliveryPage', title: 'WebhookDeliveryPage', additionalProperties: false },
);

export const DeliveryListQuery = Type.Object(
  {
    cursor: Type.Optional(Type.String({ maxLength: 100 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
  },
  { additionalProperties: false },
);

export const ReplayBody = Type.Object(
  { from_seq: Seq('deliver every matching event from this seq on again (it must still be kept)') },
  { additionalProperties: false },
);

export const TestPingSchema = Type.Object(
  {
    id: Uuid({ description: 'the webhook-id of the ping' }),
    outcome: Type.Enum(['delivered', 'failed'] as const),
    http_status: Nullable(Type.Integer()),
    latency_ms: Type.Integer(),
    error: Nullable(Type.String()),
  },
  { $id: 'WebhookTestPing', title: 'WebhookTestPing', additionalProperties: false, description: 'How the ping went (it is in the delivery log too)' },
);
