// Every route answers only the problems it declares: its own codes (config.problems) and those
// its kind implies. The tests' apps run with the check on (test/support/server.ts), so any test
// that provokes an undeclared answer fails; this file shows the check itself can fail, and
// that openapi.yaml states the same declarations.
import Fastify from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { registerDeclaredProblems, problemsOf } from '../../src/http/declared-problems.js';
import { registerErrorHandler } from '../../src/http/error-handler.js';
import { AppError, PROBLEM_CODES, PROBLEMS } from '../../src/problems.js';
import { startServer, type TestServer } from '../support/server.js';

describe('the check', () => {
  const app = Fastify();
  registerErrorHandler(app);
  registerDeclaredProblems(app, { check: true });
  app.get('/declared', { config: { problems: ['invalid_transition'] } }, async () => {
    throw new AppError('invalid_transition', { detail: 'not now', extensions: { current_status: 'frozen' } });
  });
  app.get('/undeclared', { config: { problems: ['not_found'] } }, async () => {
    throw new AppError('invalid_transition', { detail: 'not now' });
  });
  app.get('/fine', async () => ({ ok: true }));
  afterAll(() => app.close());

  it('lets a declared problem through as it is', async () => {
    const answer = await app.inject({ method: 'GET', url: '/declared' });
    expect(answer.statusCode).toBe(409);
    expect(answer.json()).toMatchObject({ code: 'invalid_transition', current_status: 'frozen' });
  });

  it('turns an undeclared one into a 500 that names the route, the status and the code', async () => {
    const answer = await app.inject({ method: 'GET', url: '/undeclared' });
    expect(answer.statusCode).toBe(500);
    expect(answer.json()).toMatchObject({
      code: 'internal_error',
      detail: 'GET /undeclared answered 409 invalid_transition, which it does not declare',
    });
  });

  it('leaves answers below 400 alone', async () => {
    expect((await app.inject({ method: 'GET', url: '/fine' })).statusCode).toBe(200);
  });
});

describe('what a route implies', () => {
  it('a public GET without input: internal_error alone', () => {
    expect(problemsOf({ method: 'GET', config: { access: { public: true } }, schema: {} })).toEqual(['internal_error']);
  });

  it('a token-protected, tenant-scoped PUT with a body and an Idempotency-Key: all of theirs', () => {
    const codes = problemsOf({
      method: 'PUT',
      config: { access: { allow: ['it_admin'], tenant: () => undefined }, idempotent: {}, problems: ['trial_used'] },
      schema: { body: {}, params: {} },
    });
    expect(codes).toEqual(
      [
        'bad_request', 'contention', 'forbidden', 'idempotency_in_progress', 'idempotency_key_reused', 'internal_error', 'malformed_json',
        'not_found', 'payload_too_large', 'rate_limited', 'timeout', 'trial_used', 'unauthorized', 'unavailable',
        'unsupported_media_type', 'uri_too_long', 'validation_failed',
      ].sort(),
    );
  });
});

describe('openapi.yaml', () => {
  let server: TestServer;
  afterAll(() => server?.close());

  it('lists every code in the Problem schema, and each answer only codes of its own status', async () => {
    server = await startServer('pglite');
    const spec = parse((await server.api.get('/openapi.yaml')).text) as {
      components: { schemas: { Problem: { properties: { code: { enum: string[] } } } } };
      paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema?: { allOf?: Array<{ properties?: { code?: { enum: string[] } } }> } }> }> }>>;
    };
    expect(spec.components.schemas.Problem.properties.code.enum.sort()).toEqual([...PROBLEM_CODES].sort());
    let answers = 0;
    for (const operations of Object.values(spec.paths)) {
      for (const operation of Object.values(operations)) {
        for (const [status, response] of Object.entries(operation.responses)) {
          const codes = response.content?.['application/problem+json']?.schema?.allOf?.[1]?.properties?.code?.enum;
          if (!codes) continue;
          answers += 1;
          for (const code of codes) expect(PROBLEMS[code as keyof typeof PROBLEMS].status, `${code} at ${status}`).toBe(Number(status));
        }
      }
    }
    expect(answers).toBeGreaterThan(100);
  });
});
