import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { validate } from '@readme/openapi-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { TENANT_STATUSES } from '../src/domain/lifecycle.js';
import { openApiYaml } from '../src/http/openapi.js';
import { servedRoutes } from '../src/http/not-found.js';
import { eachDriver } from './support/drivers.js';
import { type Client } from './support/http.js';
import { startServer, type TestServer } from './support/server.js';

const SPEC_FILE = new URL('../openapi.yaml', import.meta.url);

type Spec = { paths: Record<string, Record<string, unknown>> };
const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

// A value for each path parameter that the route's own validation accepts.
const SAMPLE_PARAMS: Record<string, string> = {
  id: '7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11',
  slug: 'acme',
};

function operationsOf(spec: Spec): Array<{ method: string; path: string }> {
  return Object.entries(spec.paths).flatMap(([path, item]) =>
    Object.keys(item)
      .filter((key) => HTTP_METHODS.includes(key))
      .map((method) => ({ method: method.toUpperCase(), path })),
  );
}

eachDriver('openapi.yaml', (driver) => {
  let server: TestServer;
  let api: Client;
  let committed: string;
  beforeAll(async () => {
    server = await startServer(driver);
    api = server.api;
    committed = await readFile(SPEC_FILE, 'utf8');
  });
  afterAll(() => server.close());

  it('is exactly what the code generates (run `make openapi` after changing a route)', () => {
    expect(committed).toBe(openApiYaml(server.app));
  });

  it('is served at /openapi.yaml, the same document', async () => {
    const answer = await api.get('/openapi.yaml');
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^application\/yaml/);
    expect(answer.text).toBe(committed);
  });

  it('passes an independent OpenAPI 3.1 validator', async () => {
    expect((parse(committed) as { openapi: string }).openapi).toBe('3.1.0');
    const result = await validate(fileURLToPath(SPEC_FILE));
    expect(result.valid ? [] : result.errors).toEqual([]);
  });

  it('describes only routes the server serves', async () => {
    const spec = parse(committed) as Spec;
    const operations = operationsOf(spec);
    expect(operations.length).toBeGreaterThan(5);
    for (const { method, path } of operations) {
      const concrete = path.replace(/\{(\w+)\}/g, (_m, name: string) => SAMPLE_PARAMS[name] ?? 'x');
      // An unreadable resume point makes the event stream answer at once (400) instead of streaming.
      const answer = await api.request(method, concrete, { headers: { 'last-event-id': 'probe' } });
      const code = typeof answer.body === 'object' ? answer.body.code : undefined;
      expect(code, `${method} ${path}`).not.toBe('route_not_found');
      expect(answer.status, `${method} ${path}`).not.toBe(405);
    }
  });

  it('describes every route the server serves', () => {
    const spec = parse(committed) as Spec;
    const documented = new Set(operationsOf(spec).map(({ method, path }) => `${method} ${path}`));
    const served = servedRoutes(server.app)
      .filter((route) => route.method !== 'HEAD')
      .map((route) => `${route.method} ${route.url.replace(/:(\w+)/g, '{$1}')}`);
    expect(served.length).toBeGreaterThan(5);
    expect(served.filter((route) => !documented.has(route))).toEqual([]);
  });
});

describe('openapi.yaml conventions', () => {
  it('declares a problem+json answer for every error status', async () => {
    const spec = parse(await readFile(SPEC_FILE, 'utf8')) as {
      paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>>;
    };
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        for (const [status, response] of Object.entries(operation.responses)) {
          if (Number(status) >= 400) {
            expect(Object.keys(response.content ?? {}), `${method} ${path} ${status}`).toEqual(['application/problem+json']);
          }
        }
      }
    }
  });
});

type Schema = Record<string, unknown>;
type Response = { headers?: Record<string, { $ref?: string }>; content?: Record<string, { schema: Schema }> };
type Operation = {
  operationId: string;
  parameters?: Array<{ in: string; name: string; schema: Schema }>;
  requestBody?: { required?: boolean };
  security?: Array<Record<string, string[]>>;
  responses: Record<string, Response>;
};
type Document = {
  servers?: Array<{ url: string }>;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema>; headers: Record<string, unknown> };
};

describe('openapi.yaml as a contract a generated client relies on', () => {
  let spec: Document;
  let operations: Array<Operation & { method: string; path: string }>;
  beforeAll(async () => {
    spec = parse(await readFile(SPEC_FILE, 'utf8')) as Document;
    operations = Object.entries(spec.paths).flatMap(([path, item]) =>
      Object.entries(item).map(([method, operation]) => ({ ...operation, method: method.toUpperCase(), path })),
    );
  });

  const header = (name: string) => ({ $ref: `#/components/headers/${name}` });

  it('names every JSON answer body: a schema of components/schemas, never an inline object', () => {
    const inline: string[] = [];
    for (const { method, path, responses } of operations) {
      for (const [status, response] of Object.entries(responses)) {
        for (const [type, { schema }] of Object.entries(response.content ?? {})) {
          // An error is the one Problem schema, its code narrowed to the route's own codes.
          const named = Number(status) >= 400 ? (schema.allOf as Schema[] | undefined)?.[0]?.$ref : schema.$ref;
          const expected = Number(status) >= 400 ? '#/components/schemas/Problem' : /^#\/components\/schemas\/\w+$/;
          // Streams and documents (YAML, NDJSON, CSV, SSE, metrics) are text, described as such.
          if (schema.type === 'string' && !/^application\/(problem\+)?json$/.test(type)) continue;
          if (typeof named !== 'string' || !(typeof expected === 'string' ? named === expected : expected.test(named))) {
            inline.push(`${method} ${path} ${status} ${type}`);
          }
        }
      }
    }
    expect(operations.length).toBeGreaterThan(40);
    expect(inline).toEqual([]);
  });

  it('documents 414 uri_too_long on every operation with a path parameter', () => {
    const withParams = operations.filter((operation) => operation.parameters?.some((parameter) => parameter.in === 'path'));
    expect(withParams.length).toBeGreaterThan(10);
    expect(withParams.filter((operation) => !operation.responses['414']).map(({ method, path }) => `${method} ${path}`)).toEqual([]);
  });

  it('sends X-Request-Id with every answer, one shared header', () => {
    expect(spec.components.headers['X-Request-Id']).toMatchObject({ schema: { type: 'string' } });
    for (const { method, path, responses } of operations) {
      for (const [status, response] of Object.entries(responses)) {
        expect(response.headers?.['X-Request-Id'], `${method} ${path} ${status}`).toEqual(header('X-Request-Id'));
      }
    }
  });

  it('documents Location on every 201 that has a URL to give', () => {
    const created = operations.filter((operation) => operation.responses['201']);
    const located = created.filter((operation) => operation.responses['201']!.headers?.Location).map(({ operationId }) => operationId);
    // An appended audit event and a trial entitlement have no URL of their own to read them at.
    const unlocated = created.filter((operation) => !operation.responses['201']!.headers?.Location).map(({ operationId }) => operationId);
    expect(located.sort()).toEqual(['createApiKey', 'createTenant', 'createWebhook', 'rotateApiKey']);
    expect(unlocated.sort()).toEqual(['appendAuditEvent', 'startTrial']);
  });

  it('documents WWW-Authenticate on every 401, Retry-After on every 429 and 503, ETag on tenant reads and edits', () => {
    for (const { method, path, responses } of operations) {
      if (responses['401']) expect(responses['401'].headers?.['WWW-Authenticate'], `${method} ${path}`).toEqual(header('WWW-Authenticate'));
      for (const status of ['429', '503']) {
        if (responses[status]) expect(responses[status].headers?.['Retry-After'], `${method} ${path} ${status}`).toEqual(header('Retry-After'));
      }
    }
    const withEtag = operations.filter((operation) => operation.responses['200']?.headers?.ETag).map(({ operationId }) => operationId);
    expect(withEtag.sort()).toEqual(['activateTenant', 'archiveTenant', 'cancelTenant', 'getTenant', 'getTenantBySlug', 'updateTenant']);
    expect(operations.find((operation) => operation.operationId === 'updateTenant')?.responses['412']?.headers?.ETag).toEqual(header('ETag'));
  });

  it('documents Idempotent-Replayed where a retry is answered again, and Content-Disposition on exports', () => {
    const replayed = operations.filter((operation) => Object.values(operation.responses).some((response) => response.headers?.['Idempotent-Replayed']));
    expect(replayed.map(({ operationId }) => operationId).sort()).toEqual(
      ['appendAuditEvent', 'createApiKey', 'createTenant', 'createWebhook', 'requestProduct', 'startTrial'].sort(),
    );
    const exports = operations.filter((operation) => operation.responses['200']?.headers?.['Content-Disposition']);
    expect(exports.map(({ operationId }) => operationId).sort()).toEqual(['exportAuditEvents', 'exportTenant']);
  });

  it('says who may call: security [] on the public routes, the bearer scheme on every other', () => {
    const isPublic = (operation: Operation) => operation.security?.length === 0;
    expect(operations.filter(isPublic).map(({ path }) => path).sort()).toEqual(['/healthz', '/metrics', '/openapi.yaml', '/readyz']);
    for (const operation of operations.filter((candidate) => !isPublic(candidate))) {
      expect(operation.security, `${operation.method} ${operation.path}`).toEqual([{ bearer: [] }]);
    }
    expect(spec.servers?.length).toBeGreaterThan(0);
  });

  it('takes no body for rotate and provision unless the caller has one', () => {
    for (const id of ['rotateApiKey', 'provisionTenantInKeycloak']) {
      expect(operations.find((operation) => operation.operationId === id)?.requestBody?.required, id).toBe(false);
    }
  });

  it('spells a tenant status one way: the TenantStatus schema, referenced wherever a status appears', () => {
    expect(spec.components.schemas.TenantStatus).toMatchObject({ enum: [...TENANT_STATUSES] });
    const ref = '#/components/schemas/TenantStatus';
    const { schemas } = spec.components;
    const property = (schema: string, name: string) => (schemas[schema]!.properties as Record<string, Schema>)[name];
    expect(property('Tenant', 'status')!.$ref).toBe(ref);
    expect(property('TenantClaims', 'status')!.$ref).toBe(ref);
    expect(property('KeyVerdict', 'tenant_status')!.$ref).toBe(ref);
    expect(property('Problem', 'current_status')!.$ref).toBe(ref);
    const filter = operations.find((operation) => operation.operationId === 'listTenants')?.parameters?.find((p) => p.name === 'status');
    expect(filter?.schema.$ref).toBe(ref);
    // Nowhere else is the list of statuses spelled out, nor a status a bare string.
    const spelled: string[] = [];
    const walk = (node: unknown, at: string): void => {
      if (typeof node !== 'object' || node === null) return;
      const record = node as Schema;
      if (Array.isArray(record.enum) && TENANT_STATUSES.every((status) => (record.enum as unknown[]).includes(status))) spelled.push(at);
      for (const [key, value] of Object.entries(record)) walk(value, `${at}/${key}`);
    };
    walk(spec, '#');
    expect(spelled).toEqual(['#/components/schemas/TenantStatus']);
    const bare = Object.entries(schemas)
      .flatMap(([name, schema]) => Object.entries((schema.properties ?? {}) as Record<string, Schema>).map(([key, value]) => ({ at: `${name}.${key}`, key, value })))
      .filter(({ key, value }) => ['current_status', 'tenant_status'].includes(key) && value.$ref !== ref);
    expect(bare).toEqual([]);
  });
});
