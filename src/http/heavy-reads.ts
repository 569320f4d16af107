// Admission of heavy reads: the audit export and the chain verification each walk a whole log,
// hold a batch of events while they do, and (verify) a database connection. Without a bound, a
// few callers running them in parallel, or exports whose clients stop reading, exhausted the
// heap and took every tenant down. Each kind has its own budget per replica, so exports held
// open by stalled clients never keep an auditor from verifying; within a budget one caller gets
// at most `perCaller` slots. A slot is held until the answer is finished or its connection
// closes, whichever comes first.
//
// Routes opt in with `config: { heavyRead: 'export' | 'verify' }`; the hook runs after the access
// rules, so a refused caller never takes a slot.
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { AppError } from '../problems.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Admitted through the replica's heavy-read budget of this kind. */
    heavyRead?: HeavyRead;
  }
}

export type HeavyRead = 'export' | 'verify' | 'stream';

export interface HeavyReadLimit {
  /** Heavy reads running at once on this replica. */
  perReplica: number;
  /** Of those, at most this many for one caller (token subject). */
  perCaller: number;
}

// A heavy read takes seconds at most, unless its client stalls; a second is long enough for one
// to finish and short enough that a retrying client does not wait for nothing.
const RETRY_AFTER_SECONDS = '1';

/** The counts behind the budget; exported for the tests and /metrics. */
export class HeavyReadGate {
  private running = 0;
  private readonly byCaller = new Map<string, number>();

  constructor(
    readonly limits: HeavyReadLimit,
    private readonly what: string,
  ) {}

  get inFlight(): number {
    return this.running;
  }

  /** Takes a slot for `caller` and returns its release (idempotent), or throws the refusal. */
  admit(caller: string): () => void {
    const mine = this.byCaller.get(caller) ?? 0;
    if (mine >= this.limits.perCaller) {
      throw new AppError('too_many_heavy_reads', {
        detail: `at most ${this.limits.perCaller} ${this.what} at once per caller; retry when one has finished`,
        headers: { 'retry-after': RETRY_AFTER_SECONDS },
      });
    }
    if (this.running >= this.limits.perReplica) {
      throw new AppError('busy', {
        detail: `this replica is running as many ${this.what} as it takes; retry shortly`,
        headers: { 'retry-after': RETRY_AFTER_SECONDS },
      });
    }
    this.running += 1;
    this.byCaller.set(caller, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running -= 1;
      const left = (this.byCaller.get(caller) ?? 1) - 1;
      if (left === 0) this.byCaller.delete(caller);
      else this.byCaller.set(caller, left);
    };
  }
}

export type HeavyReadLimits = Record<HeavyRead, HeavyReadLimit>;

const NAMES: Record<HeavyRead, string> = { export: 'audit exports', verify: 'chain verifications', stream: 'event streams' };

export function registerHeavyReads(app: FastifyInstance, limits: HeavyReadLimits): Record<HeavyRead, HeavyReadGate> {
  const gates = {
    export: new HeavyReadGate(limits.export, NAMES.export),
    verify: new HeavyReadGate(limits.verify, NAMES.verify),
    stream: new HeavyReadGate(limits.stream, NAMES.stream),
  };
  app.addHook('onRoute', (route) => {
    const kind = route.config?.heavyRead;
    if (!kind) return;
    const gate = gates[kind];
    const admit = (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
      let release: () => void;
      try {
        release = gate.admit(request.principal?.sub ?? request.ip);
      } catch (error) {
        return done(error as Error);
      }
      // 'close' comes once the answer is fully sent, and also when the client goes away first.
      reply.raw.once('close', release);
      done();
    };
    const existing = route.preHandler;
    route.preHandler = existing === undefined ? [admit] : [...(Array.isArray(existing) ? existing : [existing]), admit];
  });
  return gates;
}
