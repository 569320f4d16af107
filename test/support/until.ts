// Waiting for something a test cannot be told about, by asking again: a wait, never a measurement.
// The deadline is generous, for a machine busy with the rest of the suite.
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Asks `check` every `everyMs` until it returns true or a value (returned), and fails naming
 * `what` once `timeoutMs` has passed. A throw from `check` ends the wait with it.
 */
export async function until<T>(
  check: () => Promise<T | false | undefined> | T | false | undefined,
  what: string,
  timeoutMs = 20_000,
  everyMs = 10,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== false && value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what} after ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}
