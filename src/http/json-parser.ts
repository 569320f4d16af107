// JSON bodies, parsed by Fastify's own safe parser (it refuses __proto__ and constructor
// poisoning), with three additions:
// - An empty body with a JSON content type counts as no body. Many HTTP clients send
//   "Content-Type: application/json" on every POST, also on actions that take no body
//   (activate, cancel); those should not fail as malformed JSON.
// - Every string must be storable: PostgreSQL text cannot hold U+0000, and a lone UTF-16
//   surrogate would be stored as U+FFFD, silently changing what was sent (and hashed). Nor may
//   a string start with U+FEFF: the embedded database hands text back through a TextDecoder,
//   which drops a leading byte order mark, so such a value came back one character short and
//   an audit event holding one failed its own chain verification (hash_mismatch), a false
//   tamper alarm (found by test/reliability/fuzz.test.ts).
// - Nesting is bounded: JSON.parse takes 10,000 levels of [[[...]]] in a 64 KiB body, but
//   JSON.stringify (on the way to a jsonb column) and every recursive walk after it overflow the
//   stack on them, which was a 500 (found by test/reliability/fuzz.test.ts). No body of this API
//   needs more than a few levels; entitlement config, the one free-form object, gets MAX_DEPTH.
// No other media type is parsed, so a text/plain or form body answers 415.
// A route whose body may be left out altogether (rotate, provision) says so in
// `config.optionalBody`; it sees {} when none came, and openapi.yaml marks its body not required.
import type { FastifyInstance, preValidationHookHandler } from 'fastify';
import { invalidBody } from '../problems.js';

/** JSON pointer of the first string (value or key) PostgreSQL cannot store as given, if any. */
export function firstUnstorableString(value: unknown, path = ''): string | undefined {
  const unstorable = (text: string) => text.includes('\u0000') || !text.isWellFormed() || text.startsWith('\ufeff');
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

/** Levels of arrays and objects a body may nest; the body itself is level 1. */
export const MAX_DEPTH = 32;

/** JSON pointer of the first array or object nested deeper than `limit` levels, if any. */
export function firstTooDeep(value: unknown, limit = MAX_DEPTH, path = '', depth = 1): string | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  if (depth > limit) return path || '/';
  // The recursion stops at `limit`, so it is as deep as the limit, never as deep as the body.
  for (const [key, item] of Object.entries(value)) {
    const found = firstTooDeep(item, limit, `${path}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`, depth + 1);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * A body nested deeper than MAX_DEPTH opens more than MAX_DEPTH arrays and objects; one with
 * fewer brackets (every body of the hot paths) is not walked. Counting characters is cheaper
 * than walking the parsed value.
 */
function mayBeTooDeep(text: string): boolean {
  if (text.length <= 2 * MAX_DEPTH) return false;
  let openers = 0;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    // 0x7b "{", 0x5b "["
    if ((code === 0x7b || code === 0x5b) && ++openers > MAX_DEPTH) return true;
  }
  return false;
}

const BLANK = /^\s*$/;

// Finding a NUL is the point here, so the lint rule against control characters does not apply.
// eslint-disable-next-line no-control-regex
export const MAY_BE_UNSTORABLE = /\u0000|[\uD800-\uDFFF\uFEFF]|\\u(?:0000|[dD][89a-fA-F]|[fF][eE][fF][fF])/;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Every field of the body is optional, and so is the body: none counts as {}. */
    optionalBody?: true;
  }
}

const noBodyIsEmpty: preValidationHookHandler = (request, _reply, done) => {
  request.body ??= {};
  done();
};

export function registerJsonParser(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    if (!route.config?.optionalBody) return;
    const own = route.preValidation;
    route.preValidation = [noBodyIsEmpty, ...(own === undefined ? [] : Array.isArray(own) ? own : [own])];
  });
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body.toString();
    if (BLANK.test(text)) {
      done(null, undefined);
      return;
    }
    void parseJson(request, text, (error, parsed) => {
      if (error) return done(error, undefined);
      const invalid = (path: string, message: string) =>
        done(invalidBody(path, message), undefined);
      // Depth first: the walk for unstorable strings below recurses as deep as the body does.
      const deep = mayBeTooDeep(text) ? firstTooDeep(parsed) : undefined;
      if (deep !== undefined) return invalid(deep, `nests arrays and objects deeper than ${MAX_DEPTH} levels`);
      // Only a body that can hold such a string (a NUL, a surrogate, a byte order mark, or an
      // escape of one) is walked; the usual small ASCII body is not.
      const path = MAY_BE_UNSTORABLE.test(text) ? firstUnstorableString(parsed) : undefined;
      if (path === undefined) return done(null, parsed);
      invalid(path, 'contains a NUL character or an unpaired surrogate, or starts with a byte order mark');
    });
  });
}
