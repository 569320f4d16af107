// The catalog tests' server and helpers: a server on a TestClock (back at START before each
// test), the catalog, sales request (and queue), trial and entitlement calls as a platform admin
// (or another caller), and the audit events they leave. Call catalogApi(driver) inside a describe block: it
// starts the server before the block's tests and closes it after them.
import { afterAll, beforeAll, beforeEach, expect } from 'vitest';
import type { AuditEvent } from '../../src/http/schemas/audit.js';
import type { Entitlement, ProductRequest } from '../../src/http/schemas/entitlement.js';
import { problemOf, type Answer, type Client } from '../support/http.js';
import { startServer, type TestServer } from '../support/server.js';
import { TestClock } from '../support/time.js';
import type { DriverName } from '../support/drivers.js';

export interface CatalogItem {
  code: string;
  name: string;
  description: string;
  requestable: boolean;
  trial_days: number | null;
  state?: string | null;
  trial_ends_at?: string | null;
  days_left?: number | null;
}
export type RequestPage = {
  items: ProductRequest[];
  next_cursor: string | null;
};

export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const NO_SUCH_TENANT = '7d7e3f0e-8f5c-4c1e-9a8e-2f3c1b0a9d11';
export const PRODUCT_KEYS = ['code', 'description', 'name', 'requestable', 'trial_days'];

/** Oldest first by (created_at, id), the order the sales queue promises. */
export const oldestFirst = (a: ProductRequest, b: ProductRequest) =>
  a.created_at === b.created_at ? (a.id < b.id ? -1 : 1) : a.created_at < b.created_at ? -1 : 1;

export function catalogApi(driver: DriverName) {
  let started: TestServer | undefined;
  const clock = new TestClock();
  beforeAll(async () => {
    started = await startServer(driver, { clock: clock.now });
  });
  afterAll(() => started?.close());
  beforeEach(() => clock.reset());

  const server = (): TestServer => {
    if (!started) throw new Error('the server starts in beforeAll');
    return started;
  };
  const api = (): Client => server().api;

  const catalogOf = (tenantId: string, caller = api()) => caller.get<{ items: CatalogItem[] }>(`/v1/catalog?tenant_id=${tenantId}`);
  const stateOf = async (tenantId: string, code: string) => {
    const answer = await catalogOf(tenantId);
    expect(answer.status).toBe(200);
    return answer.body.items.find((item) => item.code === code);
  };
  const entitlementOf = async (tenantId: string, product: string) => {
    const answer = await api().get<{ items: Entitlement[] }>(`/v1/entitlements?tenant_id=${tenantId}`);
    expect(answer.status).toBe(200);
    return answer.body.items.find((item) => item.product === product);
  };
  const askSales = (tenantId: string, product: string, extra: Record<string, unknown> = {}, caller = api()) =>
    caller.post<ProductRequest>('/v1/catalog/request', { body: { tenant_id: tenantId, product, ...extra } });
  const startTrial = (tenantId: string, product: string, caller = api()) =>
    caller.post<Entitlement>('/v1/catalog/trial-request', { body: { tenant_id: tenantId, product } });
  const grant = async (tenantId: string, product: string) => {
    const answer = await api().request<Entitlement>('PUT', `/v1/entitlements/${tenantId}/${product}`, { body: {} });
    expect(answer.status).toBe(200);
  };
  const revoke = async (tenantId: string, product: string) => {
    expect((await api().request('DELETE', `/v1/entitlements/${tenantId}/${product}`)).status).toBe(204);
  };
  const decline = (id: string, body: unknown = { reason: 'No budget this year' }, caller = api()) =>
    caller.post<ProductRequest>(`/v1/catalog/requests/${id}/decline`, { body });
  const assign = (id: string, salesOwner: string | null, caller = api()) =>
    caller.post<ProductRequest>(`/v1/catalog/requests/${id}/assign`, { body: { sales_owner: salesOwner } });
  const requests = (query: Record<string, string | number>) =>
    api().get<RequestPage>(`/v1/catalog/requests?${new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)])).toString()}`);
  const events = async (tenantId: string, action: string) => {
    const answer = await api().get<{ items: AuditEvent[] }>(`/v1/audit?tenant_id=${tenantId}&action=${action}&limit=200`);
    expect(answer.status).toBe(200);
    return answer.body.items;
  };
  // Counted in the database so that an event written to any chain, not just the tenant's, shows.
  const eventCount = async () => (await server().db.query<{ n: number }>('SELECT count(*) AS n FROM audit_log'))[0]!.n;
  const expectProblem = (answer: Answer, status: number, code: string) => {
    expect(answer.status).toBe(status);
    const problem = problemOf(answer);
    expect(problem.code).toBe(code);
    return problem;
  };

  return {
    /** The server, started before the block's tests. */
    get server() {
      return server();
    },
    /** A client calling as a platform admin. */
    get api() {
      return api();
    },
    clock,
    catalogOf, stateOf, entitlementOf, askSales, startTrial, grant, revoke, decline, assign, requests, events, eventCount, expectProblem,
  };
}
