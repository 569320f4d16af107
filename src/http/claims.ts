// /v1/internal/keycloak/claims: the tenant bundle Keycloak puts into tokens. Keycloak calls it at
// token issuance (a remote-claim protocol mapper), so it is served from the tenant cache and
// always answers: the bundle, or a 404 problem when nothing names a known tenant.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import type { TenantCache } from '../caching/tenant-cache.js';
import { usableProducts } from '../domain/entitlements.js';
import { isUuid } from '../domain/ids.js';
import { tenantAt } from '../domain/lifecycle.js';
import type { TenantFacts } from '../store/tenant-facts.js';
import { notFound } from '../problems.js';
import { RefTo } from './schemas/parts.js';
import { TenantClaimsSchema } from './schemas/tenant.js';
import { SLUG_PATTERN } from '../domain/slug.js';

const SLUG = new RegExp(SLUG_PATTERN);

// Keycloak user attributes are lists of strings; a mapper may also send a single string.
const AttributeValues = Type.Union([Type.String({ maxLength: 200 }), Type.Array(Type.String({ maxLength: 200 }), { maxItems: 50 })]);

const ClaimsBody = Type.Object(
  {
    tenant_id: Type.Optional(Type.String({ maxLength: 100 })),
    tenant_slug: Type.Optional(Type.String({ maxLength: 100 })),
    user_attrs: Type.Optional(
      Type.Record(Type.String({ maxLength: 100 }), AttributeValues, {
        maxProperties: 100,
        description: 'the user\'s Keycloak attributes; tenant_id, tenant_slug and organization are read',
      }),
    ),
  },
  { additionalProperties: false },
);

// Remote-claim mappers send the user's attributes and more (username, client_id) as query
// parameters; what this endpoint does not read is ignored rather than refused.
const ClaimsQuery = Type.Object(
  {
    tenant_id: Type.Optional(AttributeValues),
    tenant_slug: Type.Optional(AttributeValues),
    organization: Type.Optional(AttributeValues),
  },
  { additionalProperties: true },
);


type Lookup = { id: string } | { slug: string };

const list = (value: string | string[] | undefined): string[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);

const byId = (ids: string[]): Lookup[] => ids.filter((id) => isUuid(id)).map((id) => ({ id }));
const bySlug = (slugs: string[]): Lookup[] => slugs.filter((slug) => SLUG.test(slug)).map((slug) => ({ slug }));

export const claimsRoutes: FastifyPluginAsyncTypebox<{ tenants: TenantCache; clock: () => Date }> = async (app, { tenants, clock }) => {
  async function bundleFor(candidates: Lookup[]) {
    let facts: TenantFacts | undefined;
    for (const lookup of candidates) {
      facts = await tenants.byIdOrSlug(lookup);
      if (facts) break;
    }
    if (!facts) throw notFound('tenant');
    const now = clock();
    const tenant = tenantAt(facts.tenant, now);
    const { entitlements } = facts;
    return {
      tenant_id: tenant.id,
      slug: tenant.slug,
      products: usableProducts(tenant.status, entitlements, now),
      plan: tenant.plan,
      status: tenant.status,
    };
  }

  const schema = {
    tags: ['keycloak'],
    response: { 200: RefTo(TenantClaimsSchema) },
  };

  app.post(
    '/v1/internal/keycloak/claims',
    {
      config: { access: { allow: ['service'] }, problems: ['not_found'] },
      schema: {
        ...schema,
        operationId: 'tenantClaims',
        summary: "A tenant's claim bundle, by tenant_id, tenant_slug or user attributes (in that order)",
        body: ClaimsBody,
      },
    },
    async (request) => {
      const { tenant_id: id, tenant_slug: slug, user_attrs: attrs = {} } = request.body;
      // tenant_id, then tenant_slug, then the user's attributes: tenant_id, tenant_slug, organization.
      return bundleFor([
        ...byId(list(id)),
        ...bySlug(list(slug)),
        ...byId(list(attrs.tenant_id)),
        ...bySlug(list(attrs.tenant_slug)),
        ...bySlug(list(attrs.organization)),
      ]);
    },
  );

  app.get(
    '/v1/internal/keycloak/claims',
    {
      config: { access: { allow: ['service'] }, problems: ['not_found'] },
      schema: {
        ...schema,
        operationId: 'tenantClaimsByQuery',
        summary: 'The same, with the lookups as query parameters (what remote-claim mappers send)',
        querystring: ClaimsQuery,
      },
    },
    async (request) => {
      const query = request.query;
      return bundleFor([...byId(list(query.tenant_id)), ...bySlug(list(query.tenant_slug)), ...bySlug(list(query.organization))]);
    },
  );
};
