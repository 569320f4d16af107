// One HTTP attempt at a webhook delivery: the body signed as Standard Webhooks says, POSTed over
// node:http(s) through the URL guard's lookup, so the connection reaches only an address the
// guard checked at that moment. The answer is judged by its status alone: 2xx delivered,
// anything else (3xx included: redirects are not followed) failed. The response body is read
// and thrown away, up to a bound, so a receiver cannot make an attempt hold memory or its slot.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { SERVICE_VERSION } from '../version.js';
import { AddressRefused, hostOf, type UrlGuard } from './url-guard.js';

/** How long one attempt may take to get the answer's headers, by default. */
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 10_000;
// What is read of an answer's body before the connection is cut: receivers answer a line or two;
// anything longer is not read for anyone.
const MAX_DRAINED_BYTES = 64 * 1024;

export interface SignedMessage {
  /** webhook-id: the event's id, the same on every attempt, so receivers drop repeats. */
  id: string;
  /** The exact bytes that are signed and sent. */
  payload: string;
  /** The secrets to sign with: the current one, and during a rotation's grace the previous one. */
  secrets: readonly string[];
  timestamp: Date;
}

/** The Standard Webhooks headers of a message: one signature per secret, space-separated. */
export function signatureHeaders(message: SignedMessage): Record<string, string> {
  return {
    'webhook-id': message.id,
    'webhook-timestamp': String(Math.floor(message.timestamp.getTime() / 1000)),
    'webhook-signature': message.secrets.map((secret) => new Webhook(secret).sign(message.id, message.timestamp, message.payload)).join(' '),
  };
}

export interface AttemptResult {
  outcome: 'delivered' | 'failed';
  /** The answer's status; null when none came. */
  status: number | null;
  latencyMs: number;
  /** A short class of the failure (timeout, connection_refused, http_500, ...); null when delivered. */
  error: string | null;
}

class AttemptTimeout extends Error {
  readonly code = 'ERR_WEBHOOK_TIMEOUT';
}

/** A failure as the delivery log names it: a short class, never a message that could carry data. */
function errorClass(error: unknown): string {
  if (error instanceof AddressRefused) return 'address_refused';
  if (error instanceof AttemptTimeout) return 'timeout';
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return 'network_error';
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection_refused';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'connection_reset';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
      return 'dns_failure';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'unreachable';
    case 'ETIMEDOUT':
      return 'timeout';
    default:
      return /CERT|SSL|TLS/.test(code) ? 'tls_error' : 'network_error';
  }
}

export interface AttemptOptions {
  guard: UrlGuard;
  timeoutMs: number;
  /** Aborts the attempt (the dispatcher stopping); the result then says `aborted`. */
  signal?: AbortSignal;
}

/** POSTs the signed message to `url` once. Never throws: every failure is a result. */
export function sendAttempt(url: string, message: SignedMessage, options: AttemptOptions): Promise<AttemptResult> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const failed = (error: string, status: number | null = null): AttemptResult => ({ outcome: 'failed', status, latencyMs: elapsed(), error });
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return Promise.resolve(failed('invalid_url'));
  }
  // A literal address is connected to without a lookup: check it here.
  const host = hostOf(target);
  if (isIP(host) !== 0) {
    const refused = options.guard.refusal(host, host);
    if (refused) return Promise.resolve(failed(errorClass(refused)));
  }
  if (options.signal?.aborted) return Promise.resolve(failed('aborted'));

  const body = Buffer.from(message.payload, 'utf8');
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise<AttemptResult>((resolve) => {
    let settled = false;
    const settle = (result: AttemptResult) => {
      if (settled) return;
      settled = true;
      resolve(result);
    };
    const request = send(target, {
      method: 'POST',
      // A connection of its own: a pooled one may have been opened without this guard.
      agent: false,
      lookup: options.guard.lookup,
      headers: {
        'content-type': 'application/json',
        'content-length': String(body.length),
        'user-agent': `tenant-registry/${SERVICE_VERSION} (webhooks)`,
        ...signatureHeaders(message),
      },
    });
    // The deadline covers the whole exchange: the connection, the answer and draining its body.
    const timer = setTimeout(() => request.destroy(new AttemptTimeout('timed out')), options.timeoutMs);
    const abort = () => request.destroy(new Error('aborted'));
    options.signal?.addEventListener('abort', abort, { once: true });
    const finish = () => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', abort);
    };
    request.on('response', (response: IncomingMessage) => {
      const status = response.statusCode ?? 0;
      settle(status >= 200 && status < 300 ? { outcome: 'delivered', status, latencyMs: elapsed(), error: null } : failed(`http_${status}`, status));
      let drained = 0;
      response.on('data', (chunk: Buffer) => {
        drained += chunk.length;
        if (drained > MAX_DRAINED_BYTES) response.destroy();
      });
      response.on('error', () => {});
      response.on('close', finish);
    });
    request.on('error', (error) => {
      finish();
      settle(failed(options.signal?.aborted ? 'aborted' : errorClass(error)));
    });
    request.end(body);
  });
}
