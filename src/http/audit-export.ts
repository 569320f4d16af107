// Export encodings of audit events, produced line by line from an async stream of events so an
// export of any size holds one batch in memory.
import type { StoredEvent } from '../store/audit.js';
import { toAuditEvent } from './audit-view.js';

export const EXPORT_FORMATS = {
  ndjson: { contentType: 'application/x-ndjson; charset=utf-8', extension: 'ndjson' },
  csv: { contentType: 'text/csv; charset=utf-8', extension: 'csv' },
} as const;
export type ExportFormat = keyof typeof EXPORT_FORMATS;

type Cell = string | number | boolean | null | undefined;

const CSV_COLUMNS: Array<[string, (e: StoredEvent) => Cell]> = [
  ['id', (e) => e.id],
  ['created', (e) => e.created],
  ['received', (e) => e.received],
  ['tenant_id', (e) => e.tenant_id],
  ['product', (e) => e.product],
  ['action', (e) => e.action],
  ['crud', (e) => e.crud],
  ['actor_id', (e) => e.actor?.id],
  ['actor_name', (e) => e.actor?.name],
  ['target_id', (e) => e.target?.id],
  ['target_type', (e) => e.target?.type],
  ['target_name', (e) => e.target?.name],
  ['source_ip', (e) => e.source_ip],
  ['is_failure', (e) => e.is_failure],
  ['is_anonymous', (e) => e.is_anonymous],
  ['description', (e) => e.description],
  ['external_id', (e) => e.external_id],
  ['fields', (e) => (e.fields ? JSON.stringify(e.fields) : null)],
  ['metadata', (e) => (e.metadata ? JSON.stringify(e.metadata) : null)],
  ['publisher_sub', (e) => e.publisher?.sub],
  ['publisher_client', (e) => e.publisher?.client],
  ['chain_key', (e) => e.chain_key],
  ['chain_seq', (e) => e.chain_seq],
  ['prev_hash', (e) => e.prev_hash],
  ['hash', (e) => e.hash],
];

// What starts a formula in a spreadsheet: = + - @, in their ASCII and full-width forms (Excel
// and LibreOffice read U+FF1D as =), and tab or CR, which some of them skip before looking.
const FORMULA_START = '=+\\-@\\t\\r\\uFF1D\\uFF0B\\uFF0D\\uFF20';
// A formula at the start, after leading spaces; or after a ; or tab inside the cell: an import
// that splits on those (the list separator of many locales) turns what follows into a cell start.
// (Every import of comma-separated text honours the quotes around a cell holding a comma.)
const FORMULA_AT_START = new RegExp(`^[ ]*[${FORMULA_START}]`);
const FORMULA_AFTER_SEPARATOR = new RegExp(`([;\\t][ ]*)(?=[${FORMULA_START}])`, 'g');

/**
 * One CSV cell (RFC 4180 quoting). Audit data is partly written by outsiders, so a text a
 * spreadsheet would run as a formula is defused with an apostrophe, at its start and after every
 * ; or tab inside it; and a cell holding any separator (, ; tab) is quoted whole.
 */
export function csvCell(value: Cell): string {
  if (value === null || value === undefined) return '';
  let text = String(value).replace(FORMULA_AFTER_SEPARATOR, "$1'");
  if (FORMULA_AT_START.test(text)) text = `'${text}`;
  return /[",;\t\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export async function* exportLines(events: AsyncIterable<StoredEvent>, format: ExportFormat): AsyncGenerator<string> {
  if (format === 'csv') yield `${CSV_COLUMNS.map(([name]) => name).join(',')}\r\n`;
  for await (const event of events) {
    yield format === 'csv'
      ? `${CSV_COLUMNS.map(([, pick]) => csvCell(pick(event))).join(',')}\r\n`
      : `${JSON.stringify(toAuditEvent(event))}\n`;
  }
}
