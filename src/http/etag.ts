// Optimistic concurrency on HTTP's own terms (RFC 9110): a read answers an ETag, a change sends
// it back in If-Match, and a change whose ETag no longer matches is refused (412) rather than
// applied over an edit the caller never saw.
import Type from 'typebox';

/** A strong entity tag of the given version text: `"<version>"`. */
export const strongEtag = (version: string): string => `"${version}"`;

/**
 * Whether If-Match allows a change of the resource whose ETag is `current`: `*` (it exists), or a
 * list naming it. A weak tag (W/"…") never matches, as the strong comparison If-Match uses says.
 */
export function etagMatches(ifMatch: string, current: string): boolean {
  const trimmed = ifMatch.trim();
  if (trimmed === '*') return true;
  return trimmed.split(',').some((tag) => tag.trim() === current);
}

export const IfMatchHeaders = Type.Object({
  'if-match': Type.Optional(
    Type.String({ minLength: 1, maxLength: 1024, description: 'the ETag of your last read, or * for any version' }),
  ),
});
