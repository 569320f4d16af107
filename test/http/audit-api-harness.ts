// The audit API tests' server and helpers: a server on a TestClock (moved forward by tests that
// need events received at a known, distinct time), publishing and listing through the API.
// Call auditApi(driver) inside a describe block: it starts the server before the block's tests
// and closes it after them.
import { afterAll, beforeAll, expect } from 'vitest';
import type { AuditEvent } from '../../src/http/schemas/audit.js';
import type { DriverName } from '../support/drivers.js';
import { problemOf, type Answer, type Client } from '../support/http.js';
import { startServer, type TestServer } from '../support/server.js';
import { TestClock } from '../support/time.js';

export interface Appended {
  id: string;
  hash: string;
}
export interface Page {
  items: AuditEvent[];
  next_cursor: string | null;
}
export type Query = Record<string, string | number | boolean>;
export type Body = Record<string, unknown>;

export const HEX64 = /^[0-9a-f]{64}$/;

export const queryString = (query: Query) =>
  new URLSearchParams(Object.fromEntries(Object.entries(query).map(([key, value]) => [key, String(value)]))).toString();
export const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Newest first by (created, id), the order the API promises. */
export const newestFirst = (a: { created: string; id: string }, b: { created: string; id: string }) =>
  a.created === b.created ? (a.id < b.id ? 1 : -1) : a.created < b.created ? 1 : -1;

export interface AuditApi {
  readonly server: TestServer;
  /** A client calling as a platform admin. */
  readonly api: Client;
  clock: TestClock;
  /** Moves the clock forward (1 s by default) and answers the new instant. */
  tick: (ms?: number) => Date;
  publish: (body: Body) => Promise<Answer<Appended>>;
  list: (query: Query) => Promise<Answer<Page>>;
  /** Publishes in parallel batches, failing on anything but 201; ids in the order of bodies. */
  publishAll: (bodies: Body[], batch?: number) => Promise<Appended[]>;
  /** Every page of a query, following next_cursor; the pages are returned for size checks. */
  listPages: (query: Query) => Promise<AuditEvent[][]>;
  /** Every event a query finds, 200 a page. */
  listAll: (query: Query) => Promise<AuditEvent[]>;
  expectValidationError: (answer: Answer, path: string, part: 'body' | 'querystring') => void;
}

export function auditApi(driver: DriverName): AuditApi {
  let started: TestServer | undefined;
  const clock = new TestClock();

  beforeAll(async () => {
    started = await startServer(driver, { clock: clock.now });
  });
  afterAll(() => started?.close());

  const harness: AuditApi = {
    get server() {
      if (!started) throw new Error('the server starts in beforeAll');
      return started;
    },
    get api() {
      return harness.server.api;
    },
    clock,
    tick: (ms = 1_000) => clock.advance(ms),
    publish: (body) => harness.api.post<Appended>('/v1/audit', { body }),
    list: (query) => harness.api.get<Page>(`/v1/audit?${queryString(query)}`),
    publishAll: async (bodies, batch = 25) => {
      const appended: Appended[] = [];
      for (let i = 0; i < bodies.length; i += batch) {
        const answers = await Promise.all(bodies.slice(i, i + batch).map(harness.publish));
        for (const answer of answers) {
          if (answer.status !== 201) throw new Error(`publish: ${answer.status} ${answer.text}`);
          appended.push(answer.body);
        }
      }
      return appended;
    },
    listPages: async (query) => {
      const pages: AuditEvent[][] = [];
      let cursor: string | null = null;
      do {
        const answer: Answer<Page> = await harness.list(cursor === null ? query : { ...query, cursor });
        if (answer.status !== 200) throw new Error(`list: ${answer.status} ${answer.text}`);
        pages.push(answer.body.items);
        cursor = answer.body.next_cursor;
        if (pages.length > 100) throw new Error('list: the cursor never ends');
      } while (cursor !== null);
      return pages;
    },
    listAll: async (query) => (await harness.listPages({ limit: 200, ...query })).flat(),
    expectValidationError: (answer, path, part) => {
      expect(answer.status).toBe(400);
      const problem = problemOf(answer);
      expect(problem.code).toBe('validation_failed');
      expect(problem.errors).toContainEqual(expect.objectContaining({ path, in: part }));
    },
  };
  return harness;
}
