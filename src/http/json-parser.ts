// JSON bodies, parsed by Fastify's own safe parser (it refuses __proto__ and constructor
// poisoning), with two additions:
// - An empty body with a JSON content type counts as no body. Many HTTP clients send
//   "Content-Type: application/json" on every POST, also on actions that take no body
//   (activate, cancel); those should not fail as malformed JSON.
// - Every string must be storable: PostgreSQL text cannot hold U+0000, and a lone UTF-16
//   surrogate would be stored as U+FFFD, silently changing what was sent (and hashed).
// No other media type is parsed, so a text/plain or form body answers 415.
import type { FastifyInstance } from 'fastify';
import { AppError } from './problem.js';

/** JSON pointer of the first string (value or key) PostgreSQL cannot store as given, if any. */
export function firstUnstorableString(value: unknown, path = ''): string | undefined {
  const unstorable = (text: string) => text.includes('\u0000') || !text.isWellFormed();
  if (typeof value === 'string') return unstorable(value) ? path || '/' : undefined;
  if (value === null || typeof value !== 'object') return undefined;
  for (const [key, item] of Object.entries(value)) {
    const itemPath = `${path}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
    if (unstorable(key)) return itemPath;
    const found = firstUnstorableString(item, itemPath);
    if (found !== undefined) return found;
  }
  return undefined;
}

// Finding a NUL is the point here, so the lint rule against control characters does not apply.
// eslint-disable-next-line no-control-regex
const MAY_BE_UNSTORABLE = /\u0000|[\uD800-\uDFFF]|\\u(?:0000|[dD][89a-fA-F])/;

export function registerJsonParser(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body.toString();
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    void parseJson(request, text, (error, parsed) => {
      if (error) return done(error, undefined);
      // Only a body that can hold such a string (a NUL, a surrogate, or an escape of either) is
      // walked; the usual small ASCII body is not.
      const path = MAY_BE_UNSTORABLE.test(text) ? firstUnstorableString(parsed) : undefined;
      if (path === undefined) return done(null, parsed);
      done(
        new AppError(400, 'validation_failed', {
          detail: 'the request body is invalid',
          errors: [{ path, in: 'body', message: 'contains a NUL character or an unpaired surrogate' }],
        }),
        undefined,
      );
    });
  });
}
