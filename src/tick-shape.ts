// Keeps one of process.nextTick's queue entries alive for the life of the process, so that the
// hidden class (V8 "map") its object literal builds never changes: a measured fix of a V8 quirk
// that made every nextTick about five times dearer in the service.
//
// nextTick builds each entry as `{ [async_id_symbol]: …, [trigger_async_id_symbol]: …, callback,
// args }`. V8 defines computed keys of a literal through a runtime call whose feedback knows only
// two states: one map, or any. Maps with no live object are collected by a full GC, and the next
// entry is built with new ones; the call site then reads "any" for good, and optimized code calls
// into the runtime for both keys of every entry (18 calls per hot verify, ~23k of its ~134k
// instructions under callgrind). The benchmark's bare node:http server never had a full GC with no
// entry alive, so it did not pay this; the service, which loads a large module graph and collects
// garbage while it boots, did every time. One entry held from the start keeps its map chain alive (a map holds its parent),
// so every later entry finds the same maps. The entry is caught as it is made, by an init hook
// enabled for one nextTick call only: executionAsyncResource() would find it too, but its first
// call switches every later callback from native code onto a slower path, for good.
// @tenant-registry/verify holds one the same way for products (packages/verify/src/tick-shape.ts):
// the package must stand alone, and this module loads before anything else, built or not.
import { createHook } from 'node:async_hooks';

let kept: object | undefined;
const noop = () => {};

/** Holds the shape of nextTick's entries; call as early in the process as possible (before its first full GC). Idempotent. */
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
