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
  ['hash', (e) => e.hash],
];

/**
 * One CSV cell (RFC 4180 quoting). A text that a spreadsheet would run as a formula (=, +, -, @,
 * tab, CR at its start) gets a leading apostrophe: audit data is partly written by outsiders.
 */
export function csvCell(value: Cell): string {
  if (value === null || value === undefined) return '';
  let text = String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export async function* exportLines(events: AsyncIterable<StoredEvent>, format: ExportFormat): AsyncGenerator<string> {
  if (format === 'csv') yield `${CSV_COLUMNS.map(([name]) => name).join(',')}\r\n`;
  for await (const event of events) {
    yield format === 'csv'
      ? `${CSV_COLUMNS.map(([, pick]) => csvCell(pick(event))).join(',')}\r\n`
      : `${JSON.stringify(toAuditEvent(event))}\n`;
  }
}
