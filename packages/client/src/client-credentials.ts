// A token provider for services: the OAuth 2.0 client credentials grant (RFC 6749 section 4.4)
// against Keycloak's token endpoint, or any other issuer's. The token is kept until shortly before
// it expires and fetched again then; callers asking at the same time share one request to the
// issuer (single flight), so a burst of calls at expiry costs the issuer one token, not one each.

export interface ClientCredentialsOptions {
  /**
   * The token endpoint, e.g. https://sso.example.com/realms/platform/protocol/openid-connect/token.
   * Or give `issuer` (a Keycloak realm's URL) and the endpoint is Keycloak's path under it.
   */
  tokenUrl?: string;
  /** A Keycloak realm, https://sso.example.com/realms/platform. */
  issuer?: string;
  clientId: string;
  clientSecret: string;
  /** Space-separated scopes to ask for. */
  scope?: string;
  /** Extra form fields for the token request: `resource` (RFC 8707), `audience`. */
  params?: Record<string, string>;
  /**
   * How the client authenticates: HTTP Basic (the one every server must take, Keycloak's default)
   * or the id and secret in the form. Default client_secret_basic.
   */
  authMethod?: 'client_secret_basic' | 'client_secret_post';
  /** A token is fetched again this long before it expires, so none is sent on its last second. Default 30 s. */
  refreshBeforeSeconds?: number;
  fetch?: (request: Request) => Promise<Response>;
  /** The clock (ms since the epoch), for tests. */
  now?: () => number;
}

/** Returns a bearer token, fetching one when none is kept or the kept one is about to expire. */
export interface TokenProvider {
  (): Promise<string>;
  /** Forgets the kept token (after the registry refused it): the next call fetches a new one. */
  invalidate(): void;
}

/** The issuer refused or failed the token request; carries OAuth's `error`, never the secret. */
export class TokenRequestError extends Error {
  override name = 'TokenRequestError';
  constructor(
    readonly status: number,
    readonly error: string | null,
    description: string | null,
  ) {
    super(`token endpoint answered ${status}${error ? ` ${error}` : ''}${description ? `: ${description}` : ''}`);
  }
}

/** Without expires_in (it is only RECOMMENDED), a token is kept for a minute. */
const DEFAULT_LIFETIME_S = 60;

export function clientCredentials(options: ClientCredentialsOptions): TokenProvider {
  const tokenUrl = options.tokenUrl ?? (options.issuer ? `${options.issuer.replace(/\/+$/, '')}/protocol/openid-connect/token` : undefined);
  if (!tokenUrl) throw new TypeError('clientCredentials: give tokenUrl or issuer');
  const send = options.fetch ?? ((request: Request) => fetch(request));
  const now = options.now ?? Date.now;
  const marginMs = (options.refreshBeforeSeconds ?? 30) * 1000;

  let kept: { token: string; refreshAt: number } | null = null;
  let inFlight: Promise<string> | null = null;

  async function request(): Promise<string> {
    const form = new URLSearchParams({ grant_type: 'client_credentials', ...options.params });
    if (options.scope) form.set('scope', options.scope);
    const headers = new Headers({ 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' });
    if (options.authMethod === 'client_secret_post') {
      form.set('client_id', options.clientId);
      form.set('client_secret', options.clientSecret);
    } else {
      // RFC 6749 2.3.1: both parts form-encoded before they are joined and base64-encoded.
      const encode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+');
      headers.set('authorization', `Basic ${btoa(`${encode(options.clientId)}:${encode(options.clientSecret)}`)}`);
    }
    const requestedAt = now();
    const response = await send(new Request(tokenUrl!, { method: 'POST', headers, body: form }));
    const body = (await response.json().catch(() => null)) as Record<string, unknown> | null;
    if (!response.ok || typeof body?.access_token !== 'string') {
      const text = (key: string) => (typeof body?.[key] === 'string' ? body[key] : null);
      throw new TokenRequestError(response.status, text('error') ?? (response.ok ? 'no access_token' : null), text('error_description'));
    }
    const lifetimeS = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_LIFETIME_S;
    // Counted from when the request left, so the time it took is spent from the margin, not added
    // to the token's life; a token shorter-lived than twice the margin is refreshed at half-life.
    const lifetimeMs = lifetimeS * 1000;
    kept = { token: body.access_token, refreshAt: requestedAt + Math.max(lifetimeMs - marginMs, lifetimeMs / 2) };
    return body.access_token;
  }

  const provider = (async () => {
    if (kept && now() < kept.refreshAt) return kept.token;
    // A failure is not kept: every waiter sees it, and the next call asks the issuer again.
    inFlight ??= request().finally(() => {
      inFlight = null;
    });
    return inFlight;
  }) as TokenProvider;
  provider.invalidate = () => {
    kept = null;
  };
  return provider;
}
