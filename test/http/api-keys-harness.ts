// The API key tests' server and helpers: a server on a TestClock (back at START before each
// test) whose key verification is built here rather than by startServer, so a test holds its usage
// recorder (to flush it) and sees the queries it makes; the key calls as a platform admin, verify
// as the registry service. Call apiKeysApi(driver) inside a describe block: it starts the server
// before the block's tests and closes it after them.
import { afterAll, beforeAll, beforeEach, expect } from 'vitest';
import type { ApiKey } from '../../src/http/schemas/api-key.js';
import type { AuditEvent } from '../../src/http/schemas/audit.js';
import type { VerifyAnswer } from '../../src/domain/key-verdict.js';
import type { KeyVerification } from '../../src/keys/setup.js';
import type { Database } from '../../src/store/database.js';
import { openMigratedDatabase, type TestDatabase } from '../support/drivers.js';
import { problemOf, type Answer, type Client } from '../support/http.js';
import { identities } from '../support/identities.js';
import { hearingNotifications, type HearingDatabase } from '../support/notifications.js';
import { startServerOn, type StartedApp } from '../support/server.js';
import { TestClock } from '../support/time.js';
import type { DriverName } from '../support/drivers.js';

export type CreatedKey = ApiKey & { key: string };

export const NO_SUCH_TENANT = '7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11';
export const NO_SUCH_KEY = '2b1c7e55-0d7a-4f0e-8d7e-5a1f3c9b8e42';
export const API_KEY_FIELDS = [
  'created_at',
  'expires_at',
  'id',
  'last4',
  'last_used_at',
  'name',
  'prefix',
  'products',
  'revoked_at',
  'scopes',
  'tenant_id',
];
export const USAGE_WRITE = /UPDATE api_keys SET last_used_at/;

/** The database with every query recorded, so a test can count the writes of one kind. */
export function recorded(db: Database) {
  const queries: Array<{ text: string; params: readonly unknown[] }> = [];
  const wrapped: Database = {
    ...db,
    query: <Row,>(text: string, params: readonly unknown[] = []) => {
      queries.push({ text, params });
      return db.query<Row>(text, params);
    },
  };
  return { db: wrapped, queries };
}

export function apiKeysApi(driver: DriverName) {
  let started:
    | { database: TestDatabase; server: StartedApp; keys: KeyVerification; queries: Array<{ text: string; params: readonly unknown[] }>; service: Client; hearing: HearingDatabase }
    | undefined;
  const clock = new TestClock();

  beforeAll(async () => {
    const database = await openMigratedDatabase(driver);
    const hearing = hearingNotifications(database.db);
    const probe = recorded(hearing.db);
    // The whole app on the recording database: the usage recorder's writes are among its queries.
    const server = await startServerOn(probe.db, { clock: clock.now });
    started = { database, server, keys: server.keys, queries: probe.queries, service: await server.as(identities.service()), hearing };
  });
  afterAll(async () => {
    await started?.server.close();
    await started?.database.close();
  });
  beforeEach(() => clock.reset());

  const state = () => {
    if (!started) throw new Error('the server starts in beforeAll');
    return started;
  };
  const database = () => state().database;
  const server = () => state().server;
  const keys = () => state().keys;
  /** Every query the key verification made, in order. */
  const queries = () => state().queries;
  /** A client calling as a platform admin. */
  const api = () => state().server.api;
  /** A client calling as the registry service (verify). */
  const service = () => state().service;
  /** Resolves once the server has heard the cache invalidations of everything committed so far. */
  const notificationsArrived = () => state().hearing.arrived();

  const create = (body: Record<string, unknown>) => api().post<CreatedKey>('/v1/api-keys', { body });
  const createKey = async (tenantId: string, body: Record<string, unknown> = {}) => {
    const answer = await create({ tenant_id: tenantId, name: 'CI deploy', ...body });
    expect(answer.status, answer.text).toBe(201);
    return answer.body;
  };
  const list = (tenantId: string, query = '') => api().get<{ items: ApiKey[] }>(`/v1/api-keys?tenant_id=${tenantId}${query}`);
  const listed = async (tenantId: string, query = '') => {
    const answer = await list(tenantId, query);
    expect(answer.status).toBe(200);
    return answer.body.items;
  };
  const get = (id: string, caller = api()) => caller.get<ApiKey>(`/v1/api-keys/${id}`);
  const update = (id: string, body: unknown, caller = api()) => caller.request<ApiKey>('PATCH', `/v1/api-keys/${id}`, { body });
  const revoke = (id: string) => api().request('DELETE', `/v1/api-keys/${id}`);
  const rotate = (id: string, body: Record<string, unknown> = {}) => api().post<CreatedKey>(`/v1/api-keys/${id}/rotate`, { body });
  const verify = async (key: string, question: Record<string, string> = {}) => {
    const answer = await service().post<VerifyAnswer>('/v1/internal/api-keys/verify', { body: { key, ...question } });
    expect(answer.status, answer.text).toBe(200);
    return answer.body;
  };
  const events = async (tenantId: string, action: string) => {
    const answer = await api().get<{ items: AuditEvent[] }>(`/v1/audit?tenant_id=${tenantId}&action=${action}&limit=200`);
    expect(answer.status).toBe(200);
    return answer.body.items;
  };
  const expectProblem = (answer: Answer, status: number, code: string) => {
    expect(answer.status, answer.text).toBe(status);
    const problem = problemOf(answer);
    expect(problem.code).toBe(code);
    return problem;
  };
  const storedRow = async (id: string) => {
    const [row] = await database().db.query<Record<string, unknown>>('SELECT * FROM api_keys WHERE id = $1', [id]);
    expect(row).toBeDefined();
    return row!;
  };

  return {
    get database() {
      return database();
    },
    get server() {
      return server();
    },
    get keys() {
      return keys();
    },
    get queries() {
      return queries();
    },
    get api() {
      return api();
    },
    get service() {
      return service();
    },
    clock,
    create, createKey, list, listed, get, update, revoke, rotate, verify, events, expectProblem, storedRow, notificationsArrived,
  };
}
