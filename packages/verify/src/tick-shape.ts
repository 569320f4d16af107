// Holds one of process.nextTick's queue entries for the life of the process (once this package is
// imported), so that the hidden class V8 gives those entries never changes. Without it, a full GC
// that runs while no entry is alive (a product's boot is a likely time) has V8 build the entries
// with new maps; the computed keys of nextTick's object literal then lose their type feedback for
// good, and every nextTick goes through V8's runtime twice. Measured on the registry (which does
// the same in its src/tick-shape.ts): ~17% of the instructions of a hot key verification; on a
// product under load with this package's plugin, 58-68 against 75 µs of CPU per request. Import
// this package (or call keepTickObjectShape) as early in the process as you can. The entry is
// caught as it is made, by an init hook enabled for one nextTick call only, which leaves nothing
// switched on afterwards.
import { createHook } from 'node:async_hooks';

let kept: object | undefined;
const noop = () => {};

/** Holds the shape of nextTick's entries from now on; the package calls it when it is imported. Idempotent. */
export function keepTickObjectShape(): void {
  if (kept !== undefined) return;
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject') kept ??= resource;
    },
  });
  hook.enable();
  try {
    process.nextTick(noop);
  } finally {
    hook.disable();
  }
}

keepTickObjectShape();
