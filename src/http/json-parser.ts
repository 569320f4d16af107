// JSON bodies, parsed by Fastify's own safe parser (it refuses __proto__ and constructor
// poisoning), with one difference: an empty body with a JSON content type counts as no body.
// Many HTTP clients send "Content-Type: application/json" on every POST, also on actions that
// take no body (activate, cancel); those should not fail as malformed JSON. No other media type
// is parsed, so a text/plain or form body answers 415.
import type { FastifyInstance } from 'fastify';

export function registerJsonParser(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body.toString();
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    void parseJson(request, text, done);
  });
}
