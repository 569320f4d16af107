// The public shape of a stored event: every field its hash covers, with its place in the chain
// (key, position, previous hash, canonical form), so an export can be verified without the service.
import type { CanonicalVersion } from '../domain/audit.js';
import type { StoredEvent } from '../store/audit.js';
import type { AuditEvent } from './schemas/audit.js';

export function toAuditEvent(event: StoredEvent): AuditEvent {
  const { chain_key, chain_seq, prev_hash, canonical_version, ...visible } = event;
  return { ...visible, chain: { key: chain_key, seq: chain_seq, prev_hash, canonical_version } };
}

/** The stored event an exported one was written from: the inverse of toAuditEvent. */
export function fromAuditEvent(event: AuditEvent): StoredEvent {
  const { chain, ...visible } = event;
  return { ...visible, chain_key: chain.key, chain_seq: chain.seq, prev_hash: chain.prev_hash, canonical_version: chain.canonical_version as CanonicalVersion };
}
