// Opaque keyset cursors: the position of the last item of a page, base64url-encoded JSON. Clients
// pass them back unchanged; anything that does not decode to a position is a 400, never a 500.
import { AppError } from './problem.js';

const invalidCursor = () =>
  new AppError(400, 'invalid_cursor', {
    detail: 'the cursor is not one this service issued; start again without it',
    errors: [{ path: '/cursor', in: 'querystring', message: 'is not a valid cursor' }],
  });

export function encodeCursor(position: readonly (string | number)[]): string {
  return Buffer.from(JSON.stringify(position)).toString('base64url');
}

/** Decodes a cursor made of `size` strings, each checked by `valid`. */
export function decodeCursor(cursor: string, size: number, valid: (part: string, index: number) => boolean): string[] {
  let parts: unknown;
  try {
    parts = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalidCursor();
  }
  if (!Array.isArray(parts) || parts.length !== size) throw invalidCursor();
  if (!parts.every((part, index) => typeof part === 'string' && valid(part, index))) throw invalidCursor();
  return parts as string[];
}
