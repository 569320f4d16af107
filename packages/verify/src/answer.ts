// What verify() answers: the registry's verdict (POST /v1/internal/api-keys/verify) as it reads
// at the moment of the call, plus REGISTRY_UNAVAILABLE, this package's own answer when it can
// neither reach the registry nor answer from what it knows. The shape is the registry's, so a
// product that called the registry directly before switches without changing what it reads.

/** The registry's codes, in the order it checks them, then this package's own. */
export const VERIFY_CODES = [
  'VALID',
  'MALFORMED',
  'NOT_FOUND',
  'REVOKED',
  'EXPIRED',
  'TENANT_INACTIVE',
  'NOT_ENTITLED',
  'INSUFFICIENT_SCOPE',
  'REGISTRY_UNAVAILABLE',
] as const;
export type VerifyCode = (typeof VERIFY_CODES)[number];

export interface Answer {
  readonly valid: boolean;
  readonly code: VerifyCode;
  /** The key's facts, when the key exists (as the registry answers them). */
  readonly key_id?: string;
  readonly tenant_id?: string;
  readonly slug?: string;
  readonly tenant_status?: string;
  readonly plan?: string | null;
  readonly scopes?: readonly string[];
  readonly products?: readonly string[];
  readonly expires_at?: string | null;
  /** The earliest instant the verdict could change by time alone; null: never. */
  readonly valid_until?: string | null;
}

export interface Question {
  /** The product the key must be entitled to (a catalog code); the verifier's default when absent. */
  product?: string | undefined;
  /** A scope the key must have; the verifier's default when absent. */
  scope?: string | undefined;
}

const KNOWN_CODES: ReadonlySet<string> = new Set(VERIFY_CODES);

/** The registry's answer, checked just enough that nothing below trusts a stranger's shape. */
export function parseRegistryAnswer(body: unknown): Answer | null {
  if (typeof body !== 'object' || body === null) return null;
  const answer = body as Record<string, unknown>;
  if (typeof answer.valid !== 'boolean' || typeof answer.code !== 'string' || !KNOWN_CODES.has(answer.code)) return null;
  if (answer.code === 'REGISTRY_UNAVAILABLE') return null;
  if (answer.key_id !== undefined && (typeof answer.key_id !== 'string' || typeof answer.tenant_id !== 'string')) return null;
  if (answer.scopes !== undefined && !Array.isArray(answer.scopes)) return null;
  return answer as unknown as Answer;
}

/** An instant the registry wrote (ISO 8601), as ms since the epoch; null when absent or null. */
export function instantOf(text: string | null | undefined): number | null {
  if (typeof text !== 'string') return null;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : ms;
}
