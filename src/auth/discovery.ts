// The issuer's signing keys, found through OIDC discovery (the discovery document -> jwks_uri) on
// first use or in the background at boot rather than before listening, so the service starts
// while Keycloak is down. jose's remote key set caches the keys and refetches when a token names
// an unknown kid, at most once per cooldown: a flood of garbage tokens with made-up kids cannot
// hammer Keycloak.
//
// The issuer is the configured string exactly (KEYCLOAK_ISSUER): tokens must carry it in iss and
// the discovery document must name it, with or without a trailing slash as configured. The
// document is fetched from the issuer itself, or from another address of it (KEYCLOAK_DISCOVERY_URL:
// an internal URL of Keycloak whose tokens carry its public hostname). A document that names
// another issuer is a configuration mismatch, reported by name: in the status (GET /readyz), once
// in the log, and in each 503 it causes.
import { createRemoteJWKSet, errors, type JWTVerifyGetKey } from 'jose';
import { IssuerMisconfiguredError, IssuerUnavailableError } from './verifier.js';

const WELL_KNOWN = '/.well-known/openid-configuration';

/**
 * The URL of the discovery document of `base`: `base` itself when it already ends in
 * /.well-known/openid-configuration, otherwise that path appended after dropping a trailing
 * slash of `base` (OpenID Connect Discovery 1.0, section 4), so https://x/ gives
 * https://x/.well-known/openid-configuration, not https://x//.well-known/...
 */
export function discoveryDocumentUrl(base: string): URL {
  const url = new URL(base);
  if (!url.pathname.endsWith(WELL_KNOWN)) url.pathname = url.pathname.replace(/\/+$/, '') + WELL_KNOWN;
  return url;
}

/**
 * Where the keys are fetched from. With the document fetched from another address than the
 * issuer's (KEYCLOAK_DISCOVERY_URL), a jwks_uri on the issuer's own origin (scheme, host and
 * port) names the public address, which this replica may not reach: its path is fetched from the
 * discovery URL's origin instead, since whatever serves the document there serves the keys too.
 * A jwks_uri on any other origin, or with no separate discovery URL, is fetched as named.
 */
export function jwksUrlFor(jwksUri: URL, issuer: string, documentUrl: URL): URL {
  const issuerOrigin = new URL(issuer).origin;
  if (jwksUri.origin !== issuerOrigin || documentUrl.origin === issuerOrigin) return jwksUri;
  const rewritten = new URL(jwksUri.href);
  rewritten.protocol = documentUrl.protocol;
  rewritten.host = documentUrl.host;
  return rewritten;
}

/**
 * What is known of the issuer. unknown: discovery has not finished yet. up: the document and the
 * keys were fetched. down: either could not be (reason). mismatch: the document names another
 * issuer (found) than the one configured.
 */
export type IssuerStatus =
  | { state: 'unknown' }
  | { state: 'up'; jwksUrl: string }
  | { state: 'down'; reason: string }
  | { state: 'mismatch'; reason: string; found: unknown };

export interface IssuerChange {
  status: IssuerStatus;
  issuer: string;
  /** Where the document was fetched from. */
  documentUrl: string;
  /** up: the jwks_uri as the document names it (it differs from status.jwksUrl when rewritten). */
  jwksUri?: string;
  /** down: the error behind the reason, for the log (with addresses and causes). */
  cause?: unknown;
}

export interface DiscoveryOptions {
  /** Per HTTP request to the issuer; a hung Keycloak must not hang every authenticated request. */
  timeoutMs?: number;
  /** Minimum time between JWKS fetches triggered by unknown kids. */
  cooldownMs?: number;
  /** After a failed discovery, requests fail fast for this long instead of retrying each time. */
  retryAfterFailureMs?: number;
  /**
   * Where the discovery document is fetched from, when not from the issuer's own address: a base
   * URL (the document's path is appended) or the document's full URL (KEYCLOAK_DISCOVERY_URL).
   */
  discoveryUrl?: string | null;
  /**
   * Called when the status changes (not with every request that meets it): the place where the
   * cause of a failure is logged, once.
   */
  onChange?: (change: IssuerChange) => void;
}

export interface IssuerDiscovery {
  /** The issuer as configured, which tokens must carry in iss. */
  readonly issuer: string;
  /** The key lookup for jwtVerify: discovers on first use, then jose's cached remote key set. */
  readonly keys: JWTVerifyGetKey;
  /** The status as last seen, without asking the issuer. */
  status(): IssuerStatus;
  /**
   * Discovers now unless discovery has succeeded, is under way (then waits for it) or failed
   * within the last retryAfterFailureMs; never throws. The status after it.
   */
  check(): Promise<IssuerStatus>;
}

/** Errors that say something about the token; any other failure to get a key is the issuer's. */
const TOKEN_ERRORS = [errors.JWKSNoMatchingKey, errors.JWKSMultipleMatchingKeys, errors.JOSENotSupported, errors.JWSInvalid];

/** A failed step of discovery: the reason (no addresses), what to throw at requests, and the cause. */
class DiscoveryFailure extends Error {
  constructor(
    readonly status: Extract<IssuerStatus, { state: 'down' | 'mismatch' }>,
    readonly toThrow: Error,
    cause?: unknown,
  ) {
    super(status.reason, { cause });
  }
}

const down = (reason: string, cause: unknown) =>
  new DiscoveryFailure({ state: 'down', reason }, new IssuerUnavailableError(cause, reason), cause);

/** Why a fetch failed, in a few words and without the address (it is shown by GET /readyz). */
function fetchFailure(error: unknown, timeoutMs: number): string {
  if (error instanceof errors.JWKSTimeout || (error instanceof Error && error.name === 'TimeoutError')) {
    return `no answer within ${timeoutMs} ms`;
  }
  if (error instanceof errors.JWKSInvalid) return 'the answer is not a JSON Web Key Set';
  // jose's own words for an answer other than 200 and for one that is not JSON.
  if (error instanceof errors.JOSEError && error.message.startsWith('Expected 200 OK')) return 'it did not answer 200 OK';
  if (error instanceof errors.JOSEError && /as JSON$/.test(error.message)) return 'the answer is not JSON';
  if (error instanceof TypeError) {
    // fetch() failing to connect: the cause's code (ECONNREFUSED, ENOTFOUND) names no address.
    const code = (error.cause as { code?: unknown } | undefined)?.code;
    return typeof code === 'string' ? `could not connect (${code})` : 'could not connect';
  }
  return error instanceof Error ? error.message : String(error);
}

async function fetchDocument(documentUrl: URL, timeoutMs: number): Promise<{ issuer?: unknown; jwks_uri?: unknown }> {
  const what = "the issuer's discovery document could not be fetched";
  let response: Response;
  try {
    response = await fetch(documentUrl, { signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/json' } });
  } catch (error) {
    throw down(`${what}: ${fetchFailure(error, timeoutMs)}`, error);
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw down(`${what}: it answered HTTP ${response.status}`, new Error(`GET ${documentUrl.href} answered ${response.status}`));
  }
  try {
    const document: unknown = await response.json();
    if (typeof document !== 'object' || document === null) throw new Error('not a JSON object');
    return document;
  } catch (error) {
    throw down(`${what}: ${error instanceof Error && error.name === 'TimeoutError' ? fetchFailure(error, timeoutMs) : 'it is not a JSON object'}`, error);
  }
}

export function issuerDiscovery(issuer: string, options: DiscoveryOptions = {}): IssuerDiscovery {
  const timeoutMs = options.timeoutMs ?? 3_000;
  const retryAfterFailureMs = options.retryAfterFailureMs ?? 5_000;
  const documentUrl = discoveryDocumentUrl(options.discoveryUrl ?? issuer);
  let status: IssuerStatus = { state: 'unknown' };
  let keys: JWTVerifyGetKey | undefined;
  let discovering: Promise<JWTVerifyGetKey> | undefined;
  let failure: { error: Error; at: number } | undefined;

  const report = (next: IssuerStatus, details: Partial<IssuerChange> = {}) => {
    const same = JSON.stringify(next) === JSON.stringify(status);
    status = next;
    if (!same) options.onChange?.({ status: next, issuer, documentUrl: documentUrl.href, ...details });
  };

  const fail = (error: DiscoveryFailure): Error => {
    keys = undefined;
    failure = { error: error.toThrow, at: Date.now() };
    report(error.status, error.status.state === 'down' ? { cause: error.cause } : {});
    return error.toThrow;
  };

  const discover = async (): Promise<JWTVerifyGetKey> => {
    try {
      const document = await fetchDocument(documentUrl, timeoutMs);
      // A discovery document for another issuer would let its keys sign for this one. The
      // comparison is exact: the token's iss is compared the same way.
      if (document.issuer !== issuer) {
        const found = typeof document.issuer === 'string' ? `names issuer ${JSON.stringify(document.issuer)}` : 'names no issuer';
        const reason = `the issuer's discovery document ${found}, expected ${JSON.stringify(issuer)}`;
        throw new DiscoveryFailure({ state: 'mismatch', reason, found: document.issuer }, new IssuerMisconfiguredError(reason));
      }
      const jwksUri = typeof document.jwks_uri === 'string' ? URL.parse(document.jwks_uri) : null;
      if (jwksUri === null || (jwksUri.protocol !== 'https:' && jwksUri.protocol !== 'http:')) {
        throw down("the issuer's discovery document has no http(s) jwks_uri", new Error(`jwks_uri: ${JSON.stringify(document.jwks_uri)}`));
      }
      const jwksUrl = jwksUrlFor(jwksUri, issuer, documentUrl);
      const keySet = createRemoteJWKSet(jwksUrl, { timeoutDuration: timeoutMs, cooldownDuration: options.cooldownMs ?? 30_000 });
      // The keys are fetched now, so "up" means a token can be verified, not only that the
      // document was there (a jwks_uri this replica cannot reach shows here, not on a request).
      try {
        await keySet.reload();
      } catch (error) {
        throw down(`the issuer's keys (jwks_uri) could not be fetched: ${fetchFailure(error, timeoutMs)}`, error);
      }
      keys = keySet;
      failure = undefined;
      report({ state: 'up', jwksUrl: jwksUrl.href }, { jwksUri: jwksUri.href });
      return keySet;
    } catch (error) {
      throw fail(error instanceof DiscoveryFailure ? error : down('discovery failed', error));
    } finally {
      discovering = undefined;
    }
  };

  /** The keys, discovering first when due; throws the last failure within its window. */
  const currentKeys = (): JWTVerifyGetKey | Promise<JWTVerifyGetKey> => {
    if (keys) return keys;
    if (discovering) return discovering;
    if (failure && Date.now() - failure.at < retryAfterFailureMs) throw failure.error;
    // Concurrent first requests share one discovery.
    return (discovering = discover());
  };

  return {
    issuer,
    status: () => status,
    async check() {
      try {
        await currentKeys();
      } catch {
        // The status says what failed.
      }
      return status;
    },
    async keys(header, token) {
      const keySet = await currentKeys();
      try {
        return await keySet(header, token);
      } catch (error) {
        if (TOKEN_ERRORS.some((type) => error instanceof type)) throw error;
        // A JWKS endpoint that answers 5xx, garbage or nothing: nobody can be verified right
        // now. Discovery starts over after the failure window (the issuer may have moved).
        throw fail(down(`the issuer's keys (jwks_uri) could not be fetched: ${fetchFailure(error, timeoutMs)}`, error));
      }
    },
  };
}

/** The key lookup alone, for a verifier whose issuer's status nobody asks for. */
export function discoveredKeys(issuer: string, options: DiscoveryOptions = {}): JWTVerifyGetKey {
  return issuerDiscovery(issuer, options).keys;
}
