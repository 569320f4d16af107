// Webhooks as rules: when a failed delivery is tried again, what a signing secret looks like, and
// which URLs an endpoint may have. Where an address may lead is the URL guard's question
// (events/url-guard.ts); this file only knows the text of the URL.
import { randomBytes } from 'node:crypto';

/**
 * The delay before each attempt at one event, from the moment the previous one failed: the
 * first at once, then backing off over hours (the schedule Standard Webhooks' reference
 * implementation uses). Eight attempts over about 27.6 hours: a receiver that is down for a
 * night and a day still gets every event, and the feed's retention (30 days by default) keeps
 * the events that long. After the last attempt fails the event is given up (dead) and the
 * endpoint moves on to the next one.
 */
export const RETRY_SCHEDULE_MS: readonly number[] = [
  0,
  5_000,
  5 * 60_000,
  30 * 60_000,
  2 * 3_600_000,
  5 * 3_600_000,
  10 * 3_600_000,
  10 * 3_600_000,
];

/**
 * What to do after attempt number `attempt` (1-based) failed: try again after a delay, or give
 * the event up when the schedule has no attempt left.
 */
export function afterFailure(schedule: readonly number[], attempt: number): { retryInMs: number } | 'dead' {
  const delay = schedule[attempt];
  return delay === undefined ? 'dead' : { retryInMs: delay };
}

/** A signing secret as Standard Webhooks writes them: whsec_ and the base64 of random bytes. */
export const SECRET_PREFIX = 'whsec_';
// 32 bytes: as strong as the HMAC-SHA256 key can use, inside the 24 to 64 the specification asks.
const SECRET_BYTES = 32;

export function newWebhookSecret(): string {
  return `${SECRET_PREFIX}${randomBytes(SECRET_BYTES).toString('base64')}`;
}

/** After a rotation, the old secret keeps signing (beside the new one) this long. */
export const SECRET_GRACE_MS = 24 * 3_600_000;

/** How many endpoints the registry keeps: each costs the dispatcher a read of the feed per round. */
export const MAX_WEBHOOKS = 100;

// Longer URLs are not endpoints anyone types; the bound keeps rows and log lines small.
export const MAX_URL_LENGTH = 2_000;

/** Why a URL cannot be an endpoint (one sentence), or null when its text is acceptable. */
export function urlProblem(text: string): string | null {
  if (text.length > MAX_URL_LENGTH) return `must be at most ${MAX_URL_LENGTH} characters`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'must be an absolute URL';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must be http or https';
  // Credentials in a URL end up in logs and in every listing; the signature authenticates us.
  if (url.username !== '' || url.password !== '') return 'must not carry a user name or password';
  if (url.hostname === '') return 'must name a host';
  if (url.hash !== '') return 'must not have a fragment';
  return null;
}

/**
 * What came of an entry of the delivery log: delivered (2xx), failed (tried again later), dead
 * (the last attempt failed; the event was given up), expired (events went past the feed's
 * retention before they could be sent).
 */
export const DELIVERY_OUTCOMES = ['delivered', 'failed', 'dead', 'expired'] as const;
export type DeliveryOutcome = (typeof DELIVERY_OUTCOMES)[number];

/** The type of the ping POST /v1/webhooks/{id}/test sends; it is never in the feed. */
export const TEST_EVENT_TYPE = 'webhook.test';
