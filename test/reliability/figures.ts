// What a reliability test tried and what survived, kept for `make reliability`: each test records
// its figures under a section name, and the report (test/reliability/report.ts) prints them and
// writes RELIABILITY.md. Files go to reliability/figures/<section>.json, one per section, so tests
// in parallel worker processes never write the same file.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const FIGURES_DIR = fileURLToPath(new URL('../../reliability/figures/', import.meta.url));

/** One fact: a label a reader understands and a number or short text. */
export interface Figure {
  label: string;
  value: number | string;
}

/**
 * Records the figures of one section (e.g. "database outage [pg]"), replacing an earlier run's.
 * `tried` says in one sentence what the test did; `figures` what it counted.
 */
export function recordFigures(section: string, tried: string, figures: Figure[]): void {
  mkdirSync(FIGURES_DIR, { recursive: true });
  const file = path.join(FIGURES_DIR, `${section.replace(/[^a-z0-9]+/gi, '-').replace(/^-|-$/g, '').toLowerCase()}.json`);
  writeFileSync(file, `${JSON.stringify({ section, tried, figures, recorded_at: new Date().toISOString() }, null, 2)}\n`);
}
