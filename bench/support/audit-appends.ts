// Append throughput: the real appendEvent inside db.transaction, next to a baseline of the same
// INSERT without the chain (no head row, no lock, no second write), each run by the same pool at
// the same concurrency.
import { randomUUID } from 'node:crypto';
import { hashRecord, toRecord, type AuditEventInput } from '../../src/domain/audit.js';
import { INSERT_EVENT, appendEvent, eventRowParams } from '../../src/store/audit.js';
import type { Database, Queryable } from '../../src/store/database.js';
import { summarize, type Summary } from './stats.js';

export interface AppendScenario {
  name: string;
  concurrency: number;
  /** Tenant id each worker appends to. */
  tenantOf: (worker: number) => string;
  withExternalId: boolean;
}

/** Mean milliseconds per append spent in each step. */
export type Breakdown = Record<string, number>;

export interface RunResult {
  events: number;
  seconds: number;
  eventsPerSecond: number;
  latency: Summary;
  /** Statements sent inside the transaction, per append (BEGIN and COMMIT come on top). */
  statementsPerAppend: number;
  breakdown: Breakdown;
}

export interface ScenarioResult {
  scenario: AppendScenario;
  append: RunResult;
  baseline: RunResult;
}

// The step names of the statements appendEvent sends, told apart by how they start.
const STEPS: readonly [prefix: string, step: string][] = [
  ['INSERT INTO audit_chains', 'head upsert (takes the lock)'],
  ['SELECT id, hash FROM audit_log', 'external_id lookup'],
  ['INSERT INTO audit_log', 'insert event'],
  ['UPDATE audit_chains', 'head update'],
];
const REST = 'BEGIN, COMMIT, connection wait, JS';

const stepOf = (sql: string) => STEPS.find(([prefix]) => sql.trimStart().startsWith(prefix))?.[1] ?? 'other';

class StepClock {
  readonly spent = new Map<string, number>();
  statements = 0;

  add(step: string, ms: number) {
    this.spent.set(step, (this.spent.get(step) ?? 0) + ms);
  }

  /** The transaction, seen through a wrapper that times each statement it runs. */
  wrap(tx: Queryable): Queryable {
    return {
      query: async <Row>(text: string, params?: readonly unknown[]) => {
        const t0 = performance.now();
        try {
          return await tx.query<Row>(text, params);
        } finally {
          this.statements += 1;
          this.add(stepOf(text), performance.now() - t0);
        }
      },
      exec: (script: string) => tx.exec(script),
    };
  }
}

let runCounter = 0;

function eventFor(tenantId: string, worker: number, index: number, externalId: string | null): AuditEventInput {
  return {
    action: 'document.viewed',
    crud: 'r',
    tenant_id: tenantId,
    product: 'docs',
    group: { id: tenantId, name: 'Bench Tenant' },
    actor: { id: `user-bench-${worker}`, name: `Bench User ${worker}`, href: `https://portal.example.com/users/user-bench-${worker}` },
    target: { id: `document-${index % 5000}`, name: `Document ${index % 5000}`, type: 'document' },
    source_ip: '10.20.30.40',
    description: 'document.viewed by a bench user',
    metadata: { request_id: randomUUID().slice(0, 16), user_agent: 'Mozilla/5.0 (bench)' },
    component: 'portal-api',
    version: '1.12.0',
    external_id: externalId,
  };
}

/**
 * The baseline: the same row, hashed the same way, written by the same INSERT appendEvent sends,
 * alone in its transaction. Each worker writes its own private chain_key with a sequence counted
 * in memory, so the unique (chain_key, chain_seq) holds without any head row.
 */
function baselineWriter(runId: number) {
  const sequences = new Map<number, number>();
  return async (tx: Queryable, input: AuditEventInput, worker: number) => {
    const seq = (sequences.get(worker) ?? 0) + 1;
    sequences.set(worker, seq);
    const record = {
      ...toRecord(input, { id: randomUUID(), chainSeq: seq, prevHash: null, received: new Date() }),
      chain_key: `bench-baseline-${runId}-${worker}`,
    };
    await tx.query(INSERT_EVENT, eventRowParams(record, hashRecord(record)));
  };
}

type Writer = (tx: Queryable, input: AuditEventInput, worker: number) => Promise<unknown>;

/** What the rounds of one run add up to. */
class Tally {
  readonly clock = new StepClock();
  readonly latencies: number[] = [];
  seconds = 0;
  events = 0;

  result(): RunResult {
    const inStatements = [...this.clock.spent].filter(([step]) => step !== REST).reduce((sum, [, ms]) => sum + ms, 0);
    const breakdown: Breakdown = {};
    for (const [step, ms] of this.clock.spent) breakdown[step] = (step === REST ? ms - inStatements : ms) / this.events;
    return {
      events: this.events,
      seconds: this.seconds,
      eventsPerSecond: this.events / this.seconds,
      latency: summarize(this.latencies),
      statementsPerAppend: this.clock.statements / this.events,
      breakdown,
    };
  }
}

/** `count` transactions shared out to the workers, each taking the next as it finishes. */
async function run(db: Database, scenario: AppendScenario, count: number, write: Writer, tally: Tally): Promise<void> {
  const runId = ++runCounter;
  let next = 0;
  const worker = async (id: number) => {
    const tenantId = scenario.tenantOf(id);
    for (let index = next++; index < count; index = next++) {
      const externalId = scenario.withExternalId ? `bench-${process.pid}-${runId}-${index}` : null;
      const input = eventFor(tenantId, id, index, externalId);
      const t0 = performance.now();
      await db.transaction((tx) => write(tally.clock.wrap(tx), input, id));
      const ms = performance.now() - t0;
      tally.latencies.push(ms);
      tally.clock.add(REST, ms);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: scenario.concurrency }, (_, id) => worker(id)));
  tally.seconds += (performance.now() - started) / 1000;
  tally.events += count;
}

const appendWriter: Writer = (tx, input) => appendEvent(tx, input, new Date());

/**
 * An untimed warm-up of both, then `rounds` alternating rounds of baseline and appends (ABBA
 * order), so background load on a shared machine weighs on both sides of the ratio alike.
 */
export async function measureScenario(
  db: Database,
  scenario: AppendScenario,
  options: { appends: number; warmup: number; rounds: number },
): Promise<ScenarioResult> {
  const baselineWrite = baselineWriter(++runCounter);
  if (options.warmup > 0) {
    await run(db, scenario, options.warmup, baselineWrite, new Tally());
    await run(db, scenario, options.warmup, appendWriter, new Tally());
  }
  const baseline = new Tally();
  const append = new Tally();
  const rounds = Math.max(1, Math.min(options.rounds, options.appends));
  for (let round = 0; round < rounds; round += 1) {
    const count = Math.floor(options.appends / rounds) + (round < options.appends % rounds ? 1 : 0);
    const pair: [Writer, Tally][] = [
      [baselineWrite, baseline],
      [appendWriter, append],
    ];
    if (round % 2 === 1) pair.reverse();
    for (const [write, tally] of pair) await run(db, scenario, count, write, tally);
  }
  return { scenario, append: append.result(), baseline: baseline.result() };
}

/** Microseconds to build and hash one record: the CPU part of an append, outside the database. */
export function hashCostMicros(samples = 20_000): number {
  const input = eventFor(randomUUID(), 0, 0, 'bench-hash');
  const position = { id: randomUUID(), chainSeq: 1, prevHash: 'f'.repeat(64), received: new Date() };
  for (let i = 0; i < 2_000; i += 1) hashRecord(toRecord(input, position));
  const t0 = performance.now();
  for (let i = 0; i < samples; i += 1) hashRecord(toRecord(input, { ...position, chainSeq: i }));
  return ((performance.now() - t0) * 1000) / samples;
}
