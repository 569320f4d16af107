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

export const TenantSchema = Type.Object(
  {
    id: Uuid(),
    slug: Type.String(),
    name: Type.String(),
    status: Type.Enum(TENANT_STATUSES),
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
  { additionalProperties: false, description: 'The created tenant' },
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
