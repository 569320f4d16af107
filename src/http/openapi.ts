// The OpenAPI 3.1 document, generated from the route schemas themselves: the same TypeBox
// objects that validate and serialize become the spec, so it cannot drift from the code.
// openapi.yaml at the repository root is this output, committed; a test keeps them equal.
import swagger from '@fastify/swagger';
import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify';
import type { Access } from './access.js';
import { problemsOf } from './declared-problems.js';
import { problemResponses } from './schemas/problem.js';
import Type from 'typebox';
import { SHARED_SCHEMAS } from './schemas/components.js';

/** Must be registered before the routes: the plugin collects them as they are added. */
export async function registerOpenApi(app: FastifyInstance, version: string): Promise<void> {
  let document: string | undefined;
  for (const schema of SHARED_SCHEMAS) app.addSchema(schema);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'tenant-registry',
        version,
        description:
          'Control plane of the platform: tenants and their lifecycle, entitlements, API keys, ' +
          'the audit log and Keycloak provisioning. Errors are application/problem+json (RFC 9457).',
      },
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            description: 'An access token of the Keycloak realm (KEYCLOAK_ISSUER)',
          },
        },
      },
      tags: [
        { name: 'tenants', description: 'Tenants (organizations) and their lifecycle' },
        { name: 'catalog', description: 'Products on offer, sales requests and self-serve trials' },
        { name: 'entitlements', description: 'What each tenant may use' },
        { name: 'api-keys', description: 'Keys for headless products, and their verification' },
        { name: 'audit', description: 'The tamper-evident audit log' },
        { name: 'keycloak', description: 'What Keycloak asks of the registry' },
        { name: 'health', description: 'Probes for the orchestrator' },
        { name: 'meta', description: 'This document' },
      ],
    },
    // Every route that needs a token says so, and every route lists the problems it answers with.
    transform: ({ schema, url, route }) => ({ url, schema: withProblems(withAccess(schema, route.config?.access), route) }),
    // Shared schemas keep their own names (components/schemas/Problem) instead of def-N.
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
    },
  });

  app.get(
    '/openapi.yaml',
    {
      config: { access: { public: true } },
      schema: {
        operationId: 'openapi',
        tags: ['meta'],
        summary: 'This OpenAPI document',
        produces: ['application/yaml'],
        response: { 200: Type.String({ description: 'OpenAPI 3.1 document in YAML' }) },
      },
    },
    async (_request, reply) => {
      // Rendering walks every route schema; the routes cannot change once the app is ready.
      document ??= openApiYaml(app);
      return reply.type('application/yaml; charset=utf-8').send(document);
    },
  );
}

function withAccess(schema: FastifySchema, access: Access | undefined): FastifySchema {
  if (!access || 'public' in access) return schema;
  const tenantScoped = access.allow.includes('member') || access.allow.includes('it_admin');
  const who = access.allow.join(', ') + (tenantScoped ? ' (own tenant only)' : '');
  return {
    ...schema,
    description: [schema.description, `Who may call: ${who}.`].filter(Boolean).join(' '),
    security: [{ bearer: [] }],
  };
}

function withProblems(schema: FastifySchema, route: Pick<RouteOptions, 'config' | 'schema' | 'method'>): FastifySchema {
  return { ...schema, response: { ...(schema.response as object), ...problemResponses(problemsOf(route)) } };
}

export function openApiYaml(app: FastifyInstance): string {
  return app.swagger({ yaml: true });
}
