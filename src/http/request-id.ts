// X-Request-Id: taken from the caller when it is a sane token (so one id follows a request
// through the portal, the registry and the logs), generated otherwise, echoed on every answer.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export const REQUEST_ID_HEADER = 'x-request-id';

// A generated id is a UUID (version 4 layout) whose first 20 hex digits are random, drawn once
// per process, and whose last 12 count the process's requests: unique across replicas and
// restarts, as an id for support and logs needs, but not unpredictable (it guards nothing). It
// costs one number formatting per request; randomUUID() builds its string from 20 pieces, which
// was ~2% of a hot key verification's instructions.
const COUNTER_DIGITS = 12;
const COUNTER_LIMIT = 16 ** COUNTER_DIGITS;
let prefix = '';
let counter = COUNTER_LIMIT;

function generatedRequestId(): string {
  if (++counter >= COUNTER_LIMIT) {
    prefix = randomUUID().slice(0, 36 - COUNTER_DIGITS);
    counter = 0;
  }
  return prefix + counter.toString(16).padStart(COUNTER_DIGITS, '0');
}

/** The request's id: the caller's X-Request-Id when it is sane, a new one otherwise. */
export function requestIdFor(request: IncomingMessage): string {
  const given = request.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && SANE_REQUEST_ID.test(given) ? given : generatedRequestId();
}
