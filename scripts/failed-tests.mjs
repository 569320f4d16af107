#!/usr/bin/env node
// Prints, in a few lines each, the tests that failed in vitest's JSON reports (the `json`
// reporter, written beside the usual one by scripts/test-suite). A CI log is often read from its
// end; this puts what failed there, after the Keycloak suites and the static checks have printed.
// Usage: failed-tests.mjs LABEL=REPORT.json ...   A report that is missing or unreadable is said
// to be so (vitest died before writing it); the script itself always exits 0.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import process from 'node:process';

const say = (line) => process.stdout.write(`${line}\n`);

const MESSAGE_LINES = 12;
const MAX_TESTS = 25;

/** The message's first lines, and of its stack only the first frame outside node_modules (the test's line). */
function firstLines(text, count) {
  const lines = String(text)
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line.trim() !== '');
  const message = lines.filter((line) => !/^\s*at /.test(line));
  const frame = lines.find((line) => /^\s*at /.test(line) && !line.includes('node_modules') && !line.includes('node:'));
  const shown = message.slice(0, count);
  if (message.length > count) shown.push(`… ${message.length - count} more lines: see the test's output above`);
  if (frame !== undefined) shown.push(frame.trim());
  return shown.map((line) => `      ${line}`).join('\n');
}

let printed = 0;
for (const argument of process.argv.slice(2)) {
  const split = argument.indexOf('=');
  const label = argument.slice(0, split);
  const path = argument.slice(split + 1);
  let report;
  try {
    report = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    report = null;
  }
  if (report === null || typeof report !== 'object' || !Array.isArray(report.testResults)) {
    say(`${label}: no report (the run ended before writing one): read its output above`);
    continue;
  }
  const files = report.testResults.filter((file) => file !== null && typeof file === 'object');
  const failedFiles = files.filter(
    (file) => file.status === 'failed' || (file.assertionResults ?? []).some((test) => test.status === 'failed'),
  );
  if (failedFiles.length === 0) {
    if (report.success === false) {
      say(`${label}: no test failed, yet the run did (an unhandled error or a setup failure): read its output above`);
    }
    continue;
  }
  say(`${label}: ${report.numFailedTests ?? 0} failed test(s) in ${failedFiles.length} file(s)`);
  for (const file of failedFiles) {
    say(`  ${typeof file.name === 'string' ? relative(process.cwd(), file.name) : '(a file with no name)'}`);
    const failed = (file.assertionResults ?? []).filter((test) => test.status === 'failed');
    if (failed.length === 0 && file.message) say(firstLines(file.message, MESSAGE_LINES));
    for (const test of failed) {
      if (printed === MAX_TESTS) break;
      printed += 1;
      say(`    ✗ ${test.fullName ?? test.title}`);
      say(firstLines((test.failureMessages ?? []).join('\n'), MESSAGE_LINES));
    }
  }
}
if (printed === MAX_TESTS) say(`(only the first ${MAX_TESTS} failed tests are listed here)`);
