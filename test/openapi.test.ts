import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { validate } from '@readme/openapi-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
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
