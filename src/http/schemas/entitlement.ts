// Shapes of entitlements, the catalog as the portal reads it, and sales requests.
import Type, { type Static } from 'typebox';
import { PRODUCT_CODE_PATTERN } from '../../domain/products.js';
import {
  CATALOG_STATES,
  ENTITLEMENT_SOURCES,
  ENTITLEMENT_STATUSES,
  REQUEST_CLOSE_REASONS,
  REQUEST_STATUSES,
} from '../../domain/entitlements.js';
import { Nullable, RefTo, Text, Timestamp, Uuid } from './parts.js';

export const ProductCode = Type.String({ pattern: PRODUCT_CODE_PATTERN, description: 'a product code from the catalog' });

const Status = Type.Enum(ENTITLEMENT_STATUSES, {
  description: 'expired: a trial whose end has passed (computed when read)',
});

export const EntitlementSchema = Type.Object(
  {
    tenant_id: Uuid(),
    product: Type.String(),
    status: Status,
    source: Type.Enum(ENTITLEMENT_SOURCES, { description: 'how it reached its status' }),
    trial_ends_at: Nullable(Timestamp()),
    days_left: Nullable(Type.Integer({ description: 'whole days left in a running trial' })),
    granted_at: Nullable(Timestamp()),
    config: Type.Record(Type.String(), Type.Unknown()),
  },
  { $id: 'Entitlement', title: 'Entitlement', additionalProperties: false },
);
export type Entitlement = Static<typeof EntitlementSchema>;

export const EntitlementListSchema = Type.Object(
  { items: Type.Array(RefTo(EntitlementSchema)) },
  { $id: 'EntitlementList', title: 'EntitlementList', additionalProperties: false, description: 'Every entitlement of the tenant' },
);

export const TenantQuery = Type.Object({ tenant_id: Uuid() }, { additionalProperties: false });

export const EntitlementParams = Type.Object({ tenant_id: Uuid(), product: ProductCode }, { additionalProperties: false });

export const GrantBody = Type.Object(
  {
    config: Type.Optional(
      Type.Record(Type.String({ maxLength: 100 }), Type.Unknown(), {
        maxProperties: 50,
        description: 'product settings for this tenant; replaces the previous ones when given',
      }),
    ),
  },
  { additionalProperties: false },
);

export const CatalogItemSchema = Type.Object(
  {
    code: Type.String(),
    name: Type.String(),
    description: Type.String(),
    requestable: Type.Boolean(),
    trial_days: Nullable(Type.Integer()),
    state: Type.Optional(
      Nullable(Type.Enum(CATALOG_STATES, { description: 'with tenant_id: the tenant\'s state' })),
    ),
    trial_ends_at: Type.Optional(Nullable(Timestamp())),
    days_left: Type.Optional(Nullable(Type.Integer())),
  },
  { $id: 'CatalogItem', title: 'CatalogItem', additionalProperties: false },
);

export const CatalogSchema = Type.Object(
  { items: Type.Array(RefTo(CatalogItemSchema)) },
  { $id: 'Catalog', title: 'Catalog', additionalProperties: false, description: 'Every product in the catalog' },
);

export const CatalogQuery = Type.Object({ tenant_id: Type.Optional(Uuid()) }, { additionalProperties: false });

export const ProductRequestBody = Type.Object(
  {
    tenant_id: Uuid(),
    product: ProductCode,
    message: Type.Optional(Type.String({ minLength: 1, maxLength: 2000, description: 'a note for sales' })),
  },
  { additionalProperties: false },
);

export const ProductRequestSchema = Type.Object(
  {
    id: Uuid(),
    tenant_id: Uuid(),
    product: Type.String(),
    message: Nullable(Type.String()),
    status: Type.Enum(REQUEST_STATUSES),
    requested_by: Nullable(Type.String()),
    sales_owner: Nullable(Type.String({ description: 'who in sales works the request; null: nobody yet' })),
    created_at: Timestamp(),
    closed_at: Nullable(Timestamp()),
    closed_reason: Nullable(Type.Enum(REQUEST_CLOSE_REASONS)),
    closed_by: Nullable(Type.String({ description: 'who granted, revoked or declined; null while open' })),
    decline_reason: Nullable(Type.String({ description: 'why sales declined the request' })),
  },
  { $id: 'ProductRequest', title: 'ProductRequest', additionalProperties: false },
);
export type ProductRequest = Static<typeof ProductRequestSchema>;

export const ProductRequestPageSchema = Type.Object(
  {
    items: Type.Array(RefTo(ProductRequestSchema)),
    next_cursor: Nullable(Type.String({ description: 'pass as cursor for the next page; null on the last' })),
  },
  { $id: 'ProductRequestPage', title: 'ProductRequestPage', additionalProperties: false, description: 'One page of requests' },
);

/** A sales owner as tenants carry one (sales_owner of POST /v1/tenants). */
const SalesOwner = (description: string) => Text(200, { description });

export const RequestListQuery = Type.Object(
  {
    status: Type.Optional(Type.Enum(REQUEST_STATUSES, { default: 'open' })),
    tenant_id: Type.Optional(Uuid()),
    sales_owner: Type.Optional(SalesOwner("only this sales owner's requests")),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);

export const TrialRequestBody = Type.Object({ tenant_id: Uuid(), product: ProductCode }, { additionalProperties: false });

export const RequestParams = Type.Object({ id: Uuid() }, { additionalProperties: false });

export const DeclineBody = Type.Object(
  { reason: Text(1000, { description: 'why sales declines; kept with the request and in its audit event' }) },
  { additionalProperties: false },
);

export const AssignBody = Type.Object(
  { sales_owner: Nullable(SalesOwner('who in sales works the request; null: nobody')) },
  { additionalProperties: false },
);
