// What never reaches a log line: secrets by the name of their field, anywhere in a logged object
// (not only where a redact path was foreseen), and by their shape (an API key or a JWT) anywhere
// in the written line: messages, error messages and stacks that quoted a request included.

const SECRET_FIELDS = new Set([
  'authorization',
  'cookie',
  'set-cookie',
  'key',
  'api_key',
  'apikey',
  'key_hash',
  'password',
  'secret',
  'client_secret',
  'clientsecret',
  'access_token',
  'refresh_token',
  'id_token',
  'token',
  'pepper',
]);

// API keys, JWTs and webhook signing secrets (whsec_ and base64).
const SECRET_SHAPES = /bp_[0-9A-Za-z]{10,}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*|whsec_[A-Za-z0-9+/]{16,}={0,2}/g;
export const REDACTED = '[redacted]';
// Log objects are shallow; deeper ones are cut rather than walked at length.
const MAX_DEPTH = 6;

/** Replaces the values of secret-named fields; errors are left to pino's serializer. */
export function redactFields(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object' || depth > MAX_DEPTH || value instanceof Error) return value;
  if (Array.isArray(value)) return value.map((item) => redactFields(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [name, item] of Object.entries(value as Record<string, unknown>)) {
    out[name] = SECRET_FIELDS.has(name.toLowerCase()) && item !== null && item !== undefined ? REDACTED : redactFields(item, depth + 1);
  }
  return out;
}

/** Replaces every API key and JWT in a written line. */
export function redactShapes(line: string): string {
  SECRET_SHAPES.lastIndex = 0;
  return SECRET_SHAPES.test(line) ? line.replace(SECRET_SHAPES, REDACTED) : line;
}
