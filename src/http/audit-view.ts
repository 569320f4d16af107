// The public shape of a stored event: the chain bookkeeping (chain key, position, previous hash)
// stays inside; the event's own hash is shown, as the receipt the publisher got.
import type { StoredEvent } from '../store/audit.js';
import type { AuditEvent } from './schemas/audit.js';

export function toAuditEvent(event: StoredEvent): AuditEvent {
  const { chain_key, chain_seq, prev_hash, ...visible } = event;
  return visible;
}
