// Opaque keyset cursors: the position of the last item of a page, base64url-encoded JSON. Clients
// pass them back unchanged; anything that does not decode to a position is a 400, never a 500.
import { AppError } from '../problems.js';
import { isUuid } from '../domain/ids.js';

const invalidCursor = () =>
  new AppError('invalid_cursor', {
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


// Times exactly as toISOString() writes them for the years 0001 to 9999. JavaScript dates reach
// further (year 0, negative years, "+275760-09-13T00:00:00.000Z"), and toISOString() writes
// those too, but no stored time is outside these years (PostgreSQL refuses year 0 and cannot
// read the six-digit forms), so such a cursor was forged and must not reach the database.
const ISSUED_TIMESTAMP = /^(?!0000)\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Times exactly as this service writes them (millisecond ISO); anything else was not issued here. */
const isIssuedTimestamp = (text: string) => {
  if (!ISSUED_TIMESTAMP.test(text)) return false;
  const time = Date.parse(text);
  return !Number.isNaN(time) && new Date(time).toISOString() === text;
};

/** A keyset position in a list ordered by (time, id). */
export interface Position {
  created: string;
  id: string;
}

export const encodePosition = (position: Position): string => encodeCursor([position.created, position.id]);

export function decodePosition(cursor: string): Position {
  const [created, id] = decodeCursor(cursor, 2, (part, i) => (i === 0 ? isIssuedTimestamp(part) : isUuid(part)));
  return { created: created!, id: id! };
}
