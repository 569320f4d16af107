// Time in tests: the units the rules count in, the instant clocked tests start at, the ISO form
// the API answers with, and a clock a test moves by hand (handed to the app as AppDeps.clock).
export { DAY_MS } from '../../src/domain/time.js';

export const MINUTE_MS = 60_000;

/** The instant every clocked test starts at (ms since the epoch): 2026-11-27T10:00:00.000Z. */
export const START = Date.parse('2026-11-27T10:00:00.000Z');

/** Milliseconds since the epoch as the API writes instants: ISO 8601 in UTC, with milliseconds. */
export const iso = (ms: number): string => new Date(ms).toISOString();

/** A clock that stands still until a test moves it. */
export class TestClock {
  private current: number;

  constructor(private readonly start: number = START) {
    this.current = start;
  }

  /** The clock itself, for AppDeps.clock and startKeyVerification: the pinned instant. */
  readonly now = (): Date => new Date(this.current);

  /** The pinned instant, ms since the epoch. */
  get ms(): number {
    return this.current;
  }

  /** Pins the clock at `ms` since the epoch. */
  set(ms: number): void {
    this.current = ms;
  }

  /** Moves the clock forward by `ms` and answers the new instant. */
  advance(ms: number): Date {
    this.current += ms;
    return this.now();
  }

  /** Back to the instant the clock started at. */
  reset(): void {
    this.current = this.start;
  }
}
