// Shapes of the change event feed: an event, a page of them, and how they are asked for.
import Type from 'typebox';
import { TYPE_FILTER_PATTERN, type ChangeEvent } from '../../domain/change-event.js';
import { Nullable, RefTo, Timestamp, Uuid } from './parts.js';

// Sequence numbers travel as decimal text: a cursor is opaque to clients, and text keeps every
// JSON parser exact whatever the number grows to.
export const SEQ_PATTERN = '^(0|[1-9][0-9]{0,14})$';

export const ChangeEventSchema = Type.Unsafe<ChangeEvent>(
  Type.Object(
    {
      id: Uuid({ description: 'the event id; also the id of its audit event, the webhook-id of its deliveries and the Nats-Msg-Id of its message' }),
      seq: Type.Integer({ minimum: 1, description: 'its place in the global sequence: every committed event has one, with no gaps' }),
      type: Type.String({ description: 'what changed: tenant.created, entitlement.granted, api_key.revoked, ...' }),
      tenant_id: Nullable(Uuid()),
      tenant_prev_seq: Nullable(Type.Integer({ description: "the seq of the tenant's previous event; null for its first" })),
      occurred_at: Timestamp(),
      data: Type.Object(
        {
          actor: Type.Object({ id: Type.String(), name: Nullable(Type.String()) }, { additionalProperties: false }),
          target: Type.Object(
            { id: Type.String(), type: Nullable(Type.String()), name: Nullable(Type.String()) },
            { additionalProperties: false },
          ),
          product: Nullable(Type.String()),
          fields: Type.Record(Type.String(), Type.String()),
        },
        { additionalProperties: false },
      ),
    },
    { $id: 'ChangeEvent', title: 'ChangeEvent', additionalProperties: false },
  ),
);

export const EventPageSchema = Type.Object(
  {
    items: Type.Array(RefTo(ChangeEventSchema)),
    next_cursor: Type.String({ pattern: SEQ_PATTERN, description: 'pass as `after` for the next page; it has passed every event up to it, matching or not' }),
    has_more: Type.Boolean({ description: 'false once the page reached the newest event: poll later, or use the stream' }),
  },
  { $id: 'EventPage', title: 'EventPage', additionalProperties: false },
);

const MAX_TYPE_FILTERS = 20;

const EventFilterQuery = {
  types: Type.Optional(
    Type.String({
      maxLength: 1_000,
      description: `comma-separated event types, a namespace.* taking a whole namespace (at most ${MAX_TYPE_FILTERS})`,
      examples: ['tenant.*,entitlement.granted'],
    }),
  ),
  tenant_id: Type.Optional(Uuid({ description: "one tenant's events; required for a tenant's IT admin" })),
};

export const EventListQuery = Type.Object(
  {
    after: Type.Optional(Type.String({ pattern: SEQ_PATTERN, description: 'the cursor: the seq of the last event seen; the oldest kept event when absent' })),
    ...EventFilterQuery,
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })),
  },
  { additionalProperties: false },
);

export const EventStreamQuery = Type.Object(
  {
    after: Type.Optional(Type.String({ pattern: SEQ_PATTERN, description: 'where to start when there is no Last-Event-ID; the newest event when both are absent' })),
    ...EventFilterQuery,
  },
  { additionalProperties: false },
);

/** The type filters of a query: each a type or namespace.*, at most MAX_TYPE_FILTERS; undefined when one is not. */
export function parseTypeFilters(text: string | undefined): string[] | undefined {
  if (text === undefined || text === '') return [];
  const types = [...new Set(text.split(','))];
  const pattern = new RegExp(TYPE_FILTER_PATTERN);
  if (types.length > MAX_TYPE_FILTERS || !types.every((type) => pattern.test(type))) return undefined;
  return types;
}
