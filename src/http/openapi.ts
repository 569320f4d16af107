// The OpenAPI 3.1 document, generated from the route schemas themselves: the same TypeBox
// objects that validate and serialize become the spec, so it cannot drift from the code.
// openapi.yaml at the repository root is this output, committed; a test keeps them equal.
// What the schemas cannot say is generated from each route's declaration too: who may call it
// (security), the problems it answers with, the headers its answers carry, an optional body.
import swagger from '@fastify/swagger';
import type { FastifyInstance, FastifySchema, RouteOptions } from 'fastify';
import type { Access } from './access.js';
import { problemsOf } from './declared-problems.js';
import { problemResponses } from './schemas/problem.js';
import Type from 'typebox';
import { SHARED_SCHEMAS } from './schemas/components.js';
import { ANSWER_HEADERS, answerHeadersOf } from './answer-headers.js';

// Set on an operation by `transform` for `transformObject` to finish: the plugin has no place for
// response headers by reference, nor for a body that may be left out.
const HEADERS_MARK = 'x-registry-answer-headers';
const OPTIONAL_BODY_MARK = 'x-registry-optional-body';

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
      // Relative: the registry that served this document. A client generated from the file points
      // its base URL at a registry, e.g. http://localhost:8090 for make dev (ADDR defaults to :8090).
      servers: [{ url: '/', description: 'the registry serving this document (make dev: http://localhost:8090)' }],
      components: {
        headers: Object.fromEntries(
          Object.entries(ANSWER_HEADERS).map(([name, { description, schema }]) => [name, { description, schema: { ...schema } }]),
        ),
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
    transform: ({ schema, url, route }) => ({ url, schema: withAnswerHeaders(withProblems(withAccess(schema, route.config?.access), route), route) }),
    // Only the OpenAPI 3 document is made here, never Swagger 2.
    transformObject: (document) => ('openapiObject' in document ? finished(document.openapiObject) : document.swaggerObject),
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
  if (!access) return schema;
  // Said outright, so no one reads a missing security as an oversight (Redocly's security-defined).
  if ('public' in access) return { ...schema, security: [] };
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

function withAnswerHeaders(schema: FastifySchema, route: Pick<RouteOptions, 'config' | 'schema' | 'method'>): FastifySchema {
  const statuses = Object.keys(schema.response as object).map(Number);
  const headers = Object.fromEntries(answerHeadersOf(route, statuses));
  const marks = { [HEADERS_MARK]: headers, ...(route.config?.optionalBody ? { [OPTIONAL_BODY_MARK]: true } : {}) };
  return { ...schema, ...marks };
}

type Operation = {
  requestBody?: { required?: boolean };
  responses?: Record<string, { headers?: Record<string, unknown> }>;
  [mark: string]: unknown;
};
type OpenApiDocument = { paths?: Record<string, Record<string, Operation>>; components?: { schemas?: Record<string, unknown> } };

/** The document with what `transform` marked put in place, and the marks gone. */
function finished<T extends object>(openapiObject: T): T {
  const document = openapiObject as OpenApiDocument;
  for (const item of Object.values(document.paths ?? {})) {
    for (const operation of Object.values(item)) {
      const headers = (operation[HEADERS_MARK] ?? {}) as Record<string, string[]>;
      for (const [status, names] of Object.entries(headers)) {
        const response = operation.responses?.[status];
        if (response) response.headers = Object.fromEntries(names.map((name) => [name, { $ref: `#/components/headers/${name}` }]));
      }
      if (operation[OPTIONAL_BODY_MARK] && operation.requestBody) operation.requestBody.required = false;
      delete operation[HEADERS_MARK];
      delete operation[OPTIONAL_BODY_MARK];
    }
  }
  for (const schema of SHARED_SCHEMAS) restoreRefDescriptions(schema, document.components?.schemas?.[(schema as unknown as { $id: string }).$id]);
  return openapiObject;
}

/**
 * The plugin drops whatever stands beside a $ref, as OpenAPI 3.0 required; 3.1 allows it, and
 * the description of a field that is a shared schema (current_status) is worth keeping.
 */
function restoreRefDescriptions(source: unknown, target: unknown): void {
  if (typeof source !== 'object' || source === null || typeof target !== 'object' || target === null) return;
  const from = source as Record<string, unknown>;
  const to = target as Record<string, unknown>;
  if (typeof from.$ref === 'string' && typeof to.$ref === 'string' && typeof from.description === 'string') to.description ??= from.description;
  for (const [key, value] of Object.entries(from)) if (key in to) restoreRefDescriptions(value, to[key]);
}

export function openApiYaml(app: FastifyInstance): string {
  return app.swagger({ yaml: true });
}
