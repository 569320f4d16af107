// Forged list cursors on both drivers: a cursor is opaque, but it is only base64url JSON, so a
// caller can write one holding any position. A timestamp JavaScript accepts but PostgreSQL cannot
// take (year 0, negative years, years past 9999) used to reach the query and answer 500 with a
// stack in the log; every forged cursor must answer 400 invalid_cursor and log nothing at error
// level, while the extremes a stored time can have still page normally.
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import { eachDriver } from '../support/drivers.js';
import { problemOf, type Client } from '../support/http.js';
import { startServer, type TestServer } from '../support/server.js';

// pino's numeric levels: 50 is error, 60 fatal.
const ERROR_LEVEL = 50;
// The widest range a JavaScript Date holds: ±100,000,000 days around 1970.
const JS_DATE_LIMIT_MS = 8.64e15;
// Per endpoint and driver; each run is one request.
const PROPERTY_RUNS = 150;
const ENDPOINTS = ['/v1/audit', '/v1/catalog/requests'];

const cursorOf = (parts: unknown) => Buffer.from(JSON.stringify(parts)).toString('base64url');

eachDriver('forged cursors', (driver) => {
  let output = '';
  let server: TestServer;
  let api: Client;

  beforeAll(async () => {
    const logger = createLogger({ appEnv: 'prod', logLevel: 'info' }, { destination: { write: (line: string) => void (output += line) } });
    server = await startServer(driver, { logger });
    api = server.api;
  });
  afterAll(() => server.close());
  beforeEach(() => {
    output = '';
  });

  /** Lines written at error level or above since the test began. */
  const errorLines = () =>
    output
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as { level: number; msg: string })
      .filter((line) => line.level >= ERROR_LEVEL);

  const page = (endpoint: string, cursor: string) => api.get<{ items: unknown[] }>(`${endpoint}?cursor=${encodeURIComponent(cursor)}`);

  describe.each(ENDPOINTS)('GET %s', (endpoint) => {
    it.each([
      ['the last millisecond JavaScript can hold', '+275760-09-13T00:00:00.000Z'],
      ['the first JavaScript can hold', '-271821-04-20T00:00:00.000Z'],
      ['year 0', '0000-01-01T00:00:00.000Z'],
      ['the last millisecond of year 0', '0000-12-31T23:59:59.999Z'],
      ['year -1', '-000001-01-01T00:00:00.000Z'],
      ['year 10000', '+010000-01-01T00:00:00.000Z'],
    ])('answers 400 invalid_cursor to a cursor at %s, logging no error', async (_case, created) => {
      const answer = await page(endpoint, cursorOf([created, randomUUID()]));
      expect(answer.status).toBe(400);
      expect(problemOf(answer)).toMatchObject({ code: 'invalid_cursor', errors: [{ path: '/cursor', in: 'querystring' }] });
      expect(errorLines()).toEqual([]);
      expect(output).not.toContain('"stack"');
    });

    it.each([
      ['the first millisecond of year 1', '0001-01-01T00:00:00.000Z'],
      ['year 99, written with four digits', '0099-06-15T12:00:00.000Z'],
      ['the last millisecond of year 9999', '9999-12-31T23:59:59.999Z'],
    ])('pages normally from a cursor at %s', async (_case, created) => {
      const answer = await page(endpoint, cursorOf([created, randomUUID()]));
      expect(answer.status).toBe(200);
      expect(Array.isArray(answer.body.items)).toBe(true);
      expect(errorLines()).toEqual([]);
    });

    it('answers 200 or 400 invalid_cursor to any forged cursor, never a 5xx, and logs no error', async () => {
      const anyDate = fc.date({ min: new Date(-JS_DATE_LIMIT_MS), max: new Date(JS_DATE_LIMIT_MS), noInvalidDate: true });
      const forged = fc.oneof(
        // A position of any time JavaScript can write, with a real-looking id.
        fc.tuple(anyDate.map((date) => date.toISOString()), fc.uuid()).map(cursorOf),
        // The right shape with anything in it.
        fc.tuple(fc.string({ maxLength: 40 }), fc.string({ maxLength: 40 })).map(cursorOf),
        // Any JSON at all.
        fc.jsonValue({ maxDepth: 3 }).map(cursorOf),
        // Not even base64url JSON.
        fc.string({ minLength: 1, maxLength: 120 }),
      );
      await fc.assert(
        fc.asyncProperty(forged, async (cursor) => {
          const answer = await page(endpoint, cursor);
          if (answer.status === 200) return;
          expect(answer.status).toBe(400);
          expect(problemOf(answer).code).toMatch(/^(invalid_cursor|validation_failed)$/);
        }),
        { numRuns: PROPERTY_RUNS, seed: 20_260_301 },
      );
      expect(errorLines()).toEqual([]);
    });
  });
});
