// What an invalidation names, read from the text the database writes. The triggers of migration
// 0004 log a scope per change, 'key:<hex of the stored key hash>' or 'tenant:<tenant id>', and
// NOTIFY it as '<log seq> <scope>'. Every reader of that text (the NOTIFY handler, the fallback
// poll, the read-back of a replica's own writes) goes through these two functions, so the caches
// only ever see a parsed scope and the grammar lives here alone.
//
// Whatever cannot be read as a scope this build knows is 'unrecognized', never dropped: a scope
// of a newer build, a truncated payload or a stray NOTIFY on the channel all mean "something
// changed that this replica cannot place", and the only safe answer to that is to evict
// everything.

export type InvalidationScope =
  /** One API key changed (revoked, rotated, deleted, its scopes or products edited). */
  | { readonly kind: 'key'; readonly keyHashHex: string }
  /** A tenant's row or one of its entitlements changed: everything cached about it goes. */
  | { readonly kind: 'tenant'; readonly tenantId: string }
  /** Not a scope this build can read: every cache forgets everything. */
  | { readonly kind: 'unrecognized' };

const UNRECOGNIZED: InvalidationScope = { kind: 'unrecognized' };

// Stored key hashes are SHA-256 or HMAC-SHA-256 digests (domain/api-key.ts): 32 bytes, 64 hex
// digits. PostgreSQL's encode(…, 'hex') writes lowercase, as Buffer#toString('hex') does for the
// key cache's entries.
const KEY_HASH_HEX = /^[0-9a-f]{64}$/;
// tenant_id is a uuid column; uuid::text is lowercase and hyphenated.
const TENANT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const KEY_PREFIX = 'key:';
const TENANT_PREFIX = 'tenant:';
/** The longest well-formed scope ('key:' and 64 digits); longer text is rejected before any other work. */
const MAX_SCOPE_LENGTH = KEY_PREFIX.length + 64;
// The log's seq is a bigint: at most 19 digits.
const NOTIFICATION = /^[0-9]{1,19} /;
const MAX_NOTIFICATION_LENGTH = 20 + MAX_SCOPE_LENGTH;

/**
 * A scope as logged in cache_invalidations.scope, read exactly as the triggers write it: no case
 * folding or trimming. A near miss (upper-case hex, a stray space) is not guessed at; it is
 * unrecognized, and evicting everything is always correct.
 */
export function parseScope(text: string): InvalidationScope {
  // Checked first, so a huge value costs nothing more than its length.
  if (text.length > MAX_SCOPE_LENGTH) return UNRECOGNIZED;
  if (text.startsWith(KEY_PREFIX)) {
    const keyHashHex = text.slice(KEY_PREFIX.length);
    return KEY_HASH_HEX.test(keyHashHex) ? { kind: 'key', keyHashHex } : UNRECOGNIZED;
  }
  if (text.startsWith(TENANT_PREFIX)) {
    const tenantId = text.slice(TENANT_PREFIX.length);
    return TENANT_ID.test(tenantId) ? { kind: 'tenant', tenantId } : UNRECOGNIZED;
  }
  return UNRECOGNIZED;
}

/** The payload of a NOTIFY on the invalidation channel: '<log seq> <scope>'. */
export function parseNotification(payload: string): InvalidationScope {
  if (payload.length > MAX_NOTIFICATION_LENGTH) return UNRECOGNIZED;
  const seq = NOTIFICATION.exec(payload);
  return seq ? parseScope(payload.slice(seq[0].length)) : UNRECOGNIZED;
}
