// Shapes of the tenant resource: what is returned and what creating one accepts.
import { PROVISIONING_STATES } from '../../domain/provisioning.js';
import Type, { type Static } from 'typebox';
import { TENANT_KINDS, TENANT_STATUSES } from '../../domain/lifecycle.js';
import { SLUG_MAX_LENGTH, SLUG_MIN_LENGTH, SLUG_PATTERN } from '../../domain/slug.js';
import { Nullable, RefTo, Text, Timestamp, Uuid } from './parts.js';

export const Slug = Type.String({
  pattern: SLUG_PATTERN,
  minLength: SLUG_MIN_LENGTH,
  maxLength: SLUG_MAX_LENGTH,
  description: `${SLUG_MIN_LENGTH}-${SLUG_MAX_LENGTH} characters: lowercase letters, digits and inner dashes`,
  examples: ['acme'],
});

/**
 * A tenant's status, one named schema wherever a status appears (the tenant, the list filter,
 * verify and claims answers, a problem's current_status), so a generated client has one type.
 */
export const TenantStatusSchema = Type.Enum(TENANT_STATUSES, {
  $id: 'TenantStatus',
  title: 'TenantStatus',
  description: "a tenant's status as of the answer (README, Tenant lifecycle): a trial reads as frozen the instant its trial_ends_at passes",
});

const ContractDate = (options: { description?: string } = {}) => Type.String({ format: 'date', ...options });

export const TenantSchema = Type.Object(
  {
    id: Uuid(),
    slug: Type.String(),
    name: Type.String(),
    status: RefTo(TenantStatusSchema, { description: 'as of the answer: a trial reads as frozen the instant trial_ends_at passes' }),
    kind: Type.Enum(TENANT_KINDS),
    plan: Nullable(Type.String()),
    trial_ends_at: Nullable(Timestamp({ description: 'set while the tenant is in trial' })),
    erp_id: Nullable(Type.String()),
    stripe_id: Nullable(Type.String()),
    sales_owner: Nullable(Type.String()),
    keycloak_org_id: Nullable(Type.String({ description: 'the Keycloak organization, once provisioned' })),
    keycloak_provisioning: Type.Enum(PROVISIONING_STATES, {
      description: 'none: no IT admin was given; failed: retry with POST /v1/tenants/{id}/keycloak/provision',
    }),
    contract_starts_on: Nullable(ContractDate()),
    contract_ends_on: Nullable(ContractDate()),
    created_at: Timestamp(),
    updated_at: Timestamp(),
  },
  { $id: 'Tenant', title: 'Tenant', additionalProperties: false },
);
export type Tenant = Static<typeof TenantSchema>;

export const CreateTenantBody = Type.Object(
  {
    slug: Slug,
    name: Text(200, { description: 'display name' }),
    kind: Type.Optional(Type.Enum(TENANT_KINDS)),
    plan: Type.Optional(Text(64)),
    erp_id: Type.Optional(Text(128, { description: 'the customer number in the ERP' })),
    stripe_id: Type.Optional(Text(128, { description: 'the Stripe customer id' })),
    sales_owner: Type.Optional(Text(200)),
    admin_email: Type.Optional(
      Type.String({ format: 'email', maxLength: 254, description: 'the IT admin to invite through Keycloak' }),
    ),
    admin_name: Type.Optional(Text(200)),
  },
  { additionalProperties: false },
);

export const CreatedTenantSchema = Type.Object(
  {
    tenant: RefTo(TenantSchema),
    invite_url: Type.Optional(Type.String({ description: 'only with APP_ENV=dev' })),
  },
  { $id: 'CreatedTenant', title: 'CreatedTenant', additionalProperties: false, description: 'The created tenant' },
);

export const ProvisionBody = Type.Object(
  {
    admin_email: Type.Optional(
      Type.String({ format: 'email', maxLength: 254, description: 'defaults to the admin given at creation' }),
    ),
    admin_name: Type.Optional(Text(200)),
  },
  { additionalProperties: false },
);

export const TenantIdParams = Type.Object({ id: Uuid() }, { additionalProperties: false });
export const TenantSlugParams = Type.Object({ slug: Slug }, { additionalProperties: false });

export const TenantListQuery = Type.Object(
  {
    // As tenants read now: a trial that has ended is found as frozen (TenantStatus says so).
    status: Type.Optional(RefTo(TenantStatusSchema)),
    kind: Type.Optional(Type.Enum(TENANT_KINDS)),
    plan: Type.Optional(Text(64)),
    sales_owner: Type.Optional(Text(200)),
    erp_id: Type.Optional(Text(128)),
    trial_ends_before: Type.Optional(Timestamp({ description: 'running trials that end by then' })),
    created_after: Type.Optional(Timestamp()),
    created_before: Type.Optional(Timestamp()),
    q: Type.Optional(Text(100, { description: 'a prefix of the slug or of the name, in any case' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 200, default: 50 })),
    cursor: Type.Optional(Type.String({ maxLength: 200, description: 'next_cursor of the previous page' })),
  },
  { additionalProperties: false },
);

export const TenantPageSchema = Type.Object(
  {
    items: Type.Array(RefTo(TenantSchema)),
    next_cursor: Nullable(Type.String({ description: 'null on the last page' })),
  },
  { $id: 'TenantPage', title: 'TenantPage', additionalProperties: false, description: 'One page of tenants, newest first' },
);

export const UpdateTenantBody = Type.Object(
  {
    name: Type.Optional(Text(200, { description: 'display name' })),
    plan: Type.Optional(Nullable(Text(64))),
    erp_id: Type.Optional(Nullable(Text(128, { description: 'the customer number in the ERP' }))),
    stripe_id: Type.Optional(Nullable(Text(128, { description: 'the Stripe customer id' }))),
    sales_owner: Type.Optional(Nullable(Text(200))),
    contract_starts_on: Type.Optional(Nullable(ContractDate())),
    contract_ends_on: Type.Optional(Nullable(ContractDate({ description: 'on or after contract_starts_on' }))),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    description:
      'The fields to change; null clears one. The slug cannot change: it is the alias of the Keycloak organization and part of URLs.',
  },
);

/** The moves the service makes by itself, as GET /v1/tenants/transitions lists them. */
export const SCHEDULED_MOVES = ['trial_ends', 'product_trial_expires'] as const;

export const TransitionsQuery = Type.Object(
  {
    before: Timestamp({ description: 'list what is due by then (what is overdue is listed too: the job writes it down within a minute)' }),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: 100 })),
  },
  { additionalProperties: false },
);

export const TransitionsSchema = Type.Object(
  {
    items: Type.Array(
      Type.Object(
        {
          at: Timestamp({ description: 'when it happens (or happened: not yet written down)' }),
          kind: Type.Enum(SCHEDULED_MOVES, {
            description: "trial_ends: the tenant's trial ends and it is frozen; product_trial_expires: a product trial ends",
          }),
          tenant_id: Uuid(),
          slug: Type.String(),
          name: Type.String(),
          product: Nullable(Type.String({ description: 'with product_trial_expires' })),
        },
        { additionalProperties: false },
      ),
    ),
    truncated: Type.Boolean({ description: 'more moves are due by `before` than `limit`: ask again with an earlier `before`' }),
  },
  { $id: 'TenantTransitions', title: 'TenantTransitions', additionalProperties: false, description: 'The moves due, soonest first' },
);

export const ArchiveTenantBody = Type.Object(
  { reason: Text(500, { description: 'why the tenant ends; kept in the tenant.archived event' }) },
  { additionalProperties: false },
);

/** What Keycloak puts into tokens about the user's tenant (GET and POST /v1/internal/keycloak/claims). */
export const TenantClaimsSchema = Type.Object(
  {
    tenant_id: Type.String(),
    slug: Type.String(),
    products: Type.Array(Type.String(), { description: 'what the tenant may use right now' }),
    plan: Nullable(Type.String()),
    status: RefTo(TenantStatusSchema),
  },
  { $id: 'TenantClaims', title: 'TenantClaims', additionalProperties: false, description: 'The claim bundle' },
);
