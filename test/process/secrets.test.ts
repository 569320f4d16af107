// API key secrets in the real process: after keys are created, verified, rotated and revoked, and
// sent where they do not belong (malformed, in bodies with extra fields, in Authorization
// headers, in URLs), neither the plaintext nor its hash may be found in the logs (at trace level),
// in any answer but the one that issued it, or in the audit log. Bearer tokens stay out of the logs.
import { createHash, createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiKey } from '../../src/http/schemas/api-key.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { randomSlug } from '../support/factories.js';
import { DAY_MS } from '../support/time.js';
import { call, type Answer, type RequestOptions } from '../support/http.js';
import { devToken, PROCESS_TEST_TIMEOUT_MS, startService, stopAll, stopService, type ServiceProcess } from './spawn.js';

type CreatedKey = ApiKey & { key: string };

const PEPPER = 'secrets-test-pepper-with-more-than-32-characters';
const VERIFY = '/v1/internal/api-keys/verify';

/** Every form in which a key could leak: itself, the parts never displayed, its hashes. */
function leakFormsOf(key: string): string[] {
  const forms = [key, key.slice(7, 20), key.slice(21, 38)];
  for (const digest of [createHash('sha256').update(key).digest(), createHmac('sha256', PEPPER).update(key).digest()]) {
    forms.push(digest.toString('hex'), digest.toString('base64'), digest.toString('base64url'));
  }
  return forms;
}

/** The answers in which any of the keys shows, as "what was asked: the answer". */
const leakingAnswers = (answers: Array<{ what: string; answer: Answer }>, keys: string[]) =>
  answers.filter(({ answer }) => leaksIn(answer.text, keys).length > 0).map(({ what, answer }) => `${what}: ${answer.text}`);

/** The forms of any of the keys found in text (hex compared without regard to case). */
function leaksIn(text: string, keys: string[]): string[] {
  const lower = text.toLowerCase();
  return keys.flatMap((key) => leakFormsOf(key).filter((form) => text.includes(form) || lower.includes(form.toLowerCase())));
}

/** A one-character change that breaks the checksum. */
const mistyped = (key: string) => key.slice(0, 25) + (key[25] === 'Q' ? 'R' : 'Q') + key.slice(26);

let service: ServiceProcess;
let adminToken: string;
let serviceToken: string;
/** Every plaintext key the service issued. */
const issued: string[] = [];
/** The answers that carried a plaintext by design (create, rotate), each with its own key. */
const issuing: Array<{ answer: Answer; key: string }> = [];
/** Every other answer, with what was asked. */
const others: Array<{ what: string; answer: Answer }> = [];
/** Answers to a key sent as a field name, which are checked on their own. */
const keyAsName: Array<{ what: string; answer: Answer }> = [];
let auditExports: string[] = [];
let logs = '';

async function send(what: string, method: string, path: string, options: RequestOptions = {}, token?: string, into = others): Promise<Answer> {
  const answer = await call(service.baseUrl, method, path, options, token);
  into.push({ what, answer });
  return answer;
}

const asAdmin = (what: string, method: string, path: string, options: RequestOptions = {}) => send(what, method, path, options, adminToken);
const verify = (what: string, body: unknown) => send(what, 'POST', VERIFY, { body }, serviceToken);

async function issue(path: string, body: Record<string, unknown>): Promise<CreatedKey> {
  const answer = await call<CreatedKey>(service.baseUrl, 'POST', path, { body }, adminToken);
  expect(answer.status, answer.text).toBe(201);
  issued.push(answer.body.key);
  issuing.push({ answer, key: answer.body.key });
  return answer.body;
}

async function exportText(query: string): Promise<string> {
  const response = await fetch(new URL(`/v1/audit/export?${query}`, service.baseUrl), { headers: { authorization: `Bearer ${adminToken}` } });
  expect(response.status).toBe(200);
  return response.text();
}

beforeAll(async () => {
  service = await startService({ APP_ENV: 'dev', LOG_LEVEL: 'trace', API_KEY_PEPPER: PEPPER, BODY_LIMIT_BYTES: '8192' });
  adminToken = await devToken(service.baseUrl, ['platform_admin']);
  serviceToken = await devToken(service.baseUrl, ['registry_service']);

  const body = { slug: randomSlug('sec'), name: 'Secrets GmbH' };
  const created = await call<{ tenant: Tenant }>(service.baseUrl, 'POST', '/v1/tenants', { body }, adminToken);
  expect(created.status, created.text).toBe(201);
  const tenant = created.body.tenant;
  expect((await asAdmin('grant', 'PUT', `/v1/entitlements/${tenant.id}/compliance`, { body: {} })).status).toBe(200);

  const plain = await issue('/v1/api-keys', { tenant_id: tenant.id, name: 'plain' });
  const limited = await issue('/v1/api-keys', {
    tenant_id: tenant.id,
    name: 'limited',
    scopes: ['documents:read'],
    products: ['compliance'],
    expires_at: new Date(Date.now() + DAY_MS).toISOString(),
  });
  const doomed = await issue('/v1/api-keys', { tenant_id: tenant.id, name: 'doomed' });

  // Verdicts of every kind.
  for (const key of issued) expect((await verify('verify', { key })).status).toBe(200);
  await verify('verify with product and scope', { key: limited.key, product: 'compliance', scope: 'documents:read' });
  await verify('insufficient scope', { key: limited.key, scope: 'documents:write' });
  await verify('not entitled', { key: plain.key, product: 'risk' });

  const rotated = await issue(`/v1/api-keys/${plain.id}/rotate`, { grace_seconds: 60 });
  await verify('old key in grace', { key: plain.key });
  await verify('new key', { key: rotated.key });
  expect((await asAdmin('revoke', 'DELETE', `/v1/api-keys/${doomed.id}`)).status).toBe(204);
  await verify('revoked', { key: doomed.key });
  await asAdmin('rotate a revoked key', 'POST', `/v1/api-keys/${doomed.id}/rotate`, { body: {} });
  await asAdmin('list', 'GET', `/v1/api-keys?tenant_id=${tenant.id}&include_revoked=true`);

  // Keys where they do not belong.
  for (const key of issued) {
    await verify('mistyped', { key: mistyped(key) });
    await verify('extended', { key: `${key}0` });
    await verify('extra field with the key', { key, note: key });
    await verify('extra field with text around the key', { key: 'x', comment: `my key is ${key}, please help` });
    await verify('too long', { key: key.repeat(5) });
    await verify('wrong type', { key: [key] });
    await send('no token, key in body', 'POST', VERIFY, { body: { key } });
    await send('malformed JSON', 'POST', VERIFY, { raw: `{"key": "${key}"`, headers: { 'content-type': 'application/json' } }, serviceToken);
    await send('text body', 'POST', VERIFY, { raw: key, headers: { 'content-type': 'text/plain' } }, serviceToken);
    await send('oversized body', 'POST', VERIFY, { body: { key, padding: key.repeat(250) } }, serviceToken);
    for (const authorization of [`Bearer ${key}`, `Basic ${key}`, key, `Bearer ${key} ${key}`, `ApiKey ${key}`]) {
      const scheme = authorization.split(' ')[0]!;
      await send(`Authorization: ${scheme}`, 'POST', VERIFY, { body: { key }, headers: { authorization } });
      await send(`Authorization on a list: ${scheme}`, 'GET', `/v1/api-keys?tenant_id=${tenant.id}`, { headers: { authorization } });
    }
    await asAdmin('key as the id of a revoke', 'DELETE', `/v1/api-keys/${key}`);
    await asAdmin('key as the id of a rotate', 'POST', `/v1/api-keys/${key}/rotate`, { body: {} });
    await asAdmin('key in a path of no route', 'GET', `/v1/internal/api-keys/verify/${key}`);
    await asAdmin('key in a path of another method', 'GET', `/v1/api-keys/${key}`);
    await asAdmin('key in a query value', 'GET', `/v1/api-keys?tenant_id=${key}`);
    await asAdmin('key as a tenant', 'POST', '/v1/api-keys', { body: { tenant_id: key, name: key } });
    await send('body field named by the key', 'POST', VERIFY, { body: { key: 'x', [key]: true } }, serviceToken, keyAsName);
    await send('query parameter named by the key', 'GET', `/v1/api-keys?tenant_id=${tenant.id}&${key}=1`, {}, adminToken, keyAsName);
  }

  await asAdmin('audit page of the tenant', 'GET', `/v1/audit?tenant_id=${tenant.id}&limit=200`);
  await asAdmin('audit page of everything', 'GET', '/v1/audit?limit=200');
  await asAdmin('audit chain of the tenant', 'GET', `/v1/audit/verify?tenant_id=${tenant.id}`);
  auditExports = [await exportText(`tenant_id=${tenant.id}`), await exportText(''), await exportText('format=csv')];

  // Stopping flushes the usage recorder and the last log lines before the logs are read.
  const exit = await stopService(service);
  expect(exit?.code).toBe(0);
  logs = service.stdout() + service.stderr();
}, PROCESS_TEST_TIMEOUT_MS);

afterAll(() => stopAll());

describe('API key secrets', () => {
  it('ran the scenario it claims to: keys issued, requests refused, trace logs written', () => {
    expect(issued).toHaveLength(4);
    expect(new Set(others.map(({ answer }) => answer.status))).toEqual(new Set([200, 204, 400, 401, 404, 409, 413, 415]));
    expect(logs.split('\n').filter((line) => line.includes('"msg":"request"')).length).toBeGreaterThan(others.length);
    expect(auditExports[1]).toContain('api_key.rotated');
  });

  it('shows each plaintext only in the answer that issued it', () => {
    for (const { answer, key } of issuing) {
      expect(answer.text).toContain(key);
      expect(leaksIn(answer.text, issued.filter((other) => other !== key))).toEqual([]);
    }
  });

  it('shows no key or hash in any other answer', () => {
    expect(leakingAnswers(others, issued)).toEqual([]);
  });

  it('shows no key or hash in a validation error about a field the key names', () => {
    expect(keyAsName.every(({ answer }) => answer.status === 400)).toBe(true);
    expect(leakingAnswers(keyAsName, issued)).toEqual([]);
  });

  it('writes no key or hash to the audit log, in any export', () => {
    for (const text of auditExports) expect(leaksIn(text, issued)).toEqual([]);
  });

  it('writes no key, hash or bearer token to the logs', () => {
    expect(leaksIn(logs, issued)).toEqual([]);
    for (const token of [adminToken, serviceToken]) {
      expect(logs).not.toContain(token);
      expect(logs).not.toContain(token.split('.')[2]);
    }
  });
});
