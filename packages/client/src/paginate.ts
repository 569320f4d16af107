// Walking a cursor-paged list (`{items, next_cursor}`, next_cursor null on the last page): the
// caller says how to ask for a page, so the query stays typed by the operation it names.
import { unwrap } from './problem.js';

interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

interface PageAnswer<T> {
  data?: Page<T>;
  error?: unknown;
  response: Response;
}

/**
 * Every item of a paged list, page by page as the loop asks for them; a failed page throws a
 * RegistryProblem. Stop early with `break`:
 *   for await (const tenant of paginate((cursor) => registry.GET('/v1/tenants', { params: { query: { status: 'trial', cursor } } })))
 */
export async function* paginate<T>(page: (cursor: string | undefined) => Promise<PageAnswer<T>>): AsyncGenerator<T, void, undefined> {
  const seen = new Set<string>();
  let cursor: string | undefined;
  for (;;) {
    const { items, next_cursor } = await unwrap<PageAnswer<T>>(page(cursor));
    yield* items;
    if (next_cursor === null) return;
    // A cursor met twice would loop for ever (a caller's page function that ignores it, say).
    if (seen.has(next_cursor)) throw new Error('paginate: the same next_cursor came back twice; does the page function pass `cursor` on?');
    seen.add(next_cursor);
    cursor = next_cursor;
  }
}
