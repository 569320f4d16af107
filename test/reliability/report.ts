// The second half of `make reliability`: reads what the reliability tests recorded
// (reliability/figures/*.json, written by figures.ts) and prints it, and writes RELIABILITY.md
// with the same figures, the machine and the date. A section missing from the figures means its
// test did not run to its end, and the report says so instead of keeping an old number.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FIGURES_DIR, type Figure } from './figures.js';

interface Section {
  section: string;
  tried: string;
  figures: Figure[];
  recorded_at: string;
}

/** Every section `make reliability` is expected to produce, in the order the report shows them. */
const EXPECTED = [
  'database outage [pg]',
  'several replicas [pg]',
  'heavy audit reads [pg]',
  'refused bodies [pg]',
  'hostile input [pglite]',
  'hostile input [pg]',
  'keycloak faults',
  'JetStream relay through a NATS restart [pg]',
  'JetStream relay failover [pg]',
  'change event delivery through faults [pg]',
];

const OUTPUT = fileURLToPath(new URL('../../RELIABILITY.md', import.meta.url));

function readSections(): Section[] {
  let files: string[] = [];
  try {
    files = readdirSync(FIGURES_DIR).filter((file) => file.endsWith('.json'));
  } catch {
    // No figures at all: every section is reported missing below.
  }
  const sections = files.map((file) => JSON.parse(readFileSync(path.join(FIGURES_DIR, file), 'utf8')) as Section);
  const rank = (name: string) => (EXPECTED.includes(name) ? EXPECTED.indexOf(name) : EXPECTED.length);
  return sections.sort((a, b) => rank(a.section) - rank(b.section) || a.section.localeCompare(b.section));
}

// Counts get thousands separators; a seed is an identifier and is shown as given.
const format = (figure: Figure) =>
  typeof figure.value === 'number' && !/seed/i.test(figure.label) ? figure.value.toLocaleString('en-US') : String(figure.value);

function render(sections: Section[]): string {
  const cpus = os.cpus();
  const missing = EXPECTED.filter((name) => !sections.some((section) => section.section === name));
  const lines = [
    '# Reliability',
    '',
    'What `make reliability` tried against the service and what survived. Every figure below was',
    'counted by a test that also asserts the behaviour (test/reliability/); the tests run in CI with',
    '`make test` too, and this file is rewritten from their latest run.',
    '',
    `Run: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${cpus.length} × ${cpus[0]?.model ?? 'unknown CPU'}, ` +
      `${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}.`,
    '',
  ];
  for (const section of sections) {
    lines.push(`## ${section.section}`, '', section.tried, '', '| | |', '|---|---:|');
    for (const figure of section.figures) lines.push(`| ${figure.label} | ${format(figure)} |`);
    lines.push('');
  }
  if (missing.length > 0) lines.push('## Not run to the end', '', ...missing.map((name) => `- ${name}`), '');
  return lines.join('\n');
}

const sections = readSections();
const markdown = render(sections);
writeFileSync(OUTPUT, markdown);
console.log(markdown);
const missing = EXPECTED.filter((name) => !sections.some((section) => section.section === name));
if (missing.length > 0) {
  console.error(`missing figures: ${missing.join(', ')}`);
  process.exitCode = 1;
}
