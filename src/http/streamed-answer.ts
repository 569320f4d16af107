// Answers of unbounded length (exports), sent as they are produced and no faster than the
// client reads them. The source is pulled only as fast as the socket drains (backpressure), so
// one batch is in memory at a time; a client that stops reading stops the pulls, and one that has
// pulled nothing for `stallMs` is cut, freeing its heavy-read slot. (Node's own socket timeout
// fires late while a write is pending, at about twice its setting, so the answer watches its
// own pulls.)
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';

// An export whose client has stopped reading holds its socket and its slot of the heavy-read
// budget; after this long without a byte moving it is cut. A client that reads at any pace
// keeps it alive, and half a minute is far beyond a network hiccup.
export const EXPORT_STALL_MS = 30_000;
// How often a running answer is checked for a stall: the cut comes at most this late.
const STALL_CHECK_MS = 1_000;

/** The items of `source`, calling `onPull` as each is taken: how an answer knows its client reads. */
async function* pulled<T>(source: AsyncIterable<T>, onPull: () => void): AsyncGenerator<T> {
  for await (const item of source) {
    onPull();
    yield item;
  }
}

/** Sends `chunks` as the body (of an attachment, given a `filename`), cut if the client stalls. */
export function sendStreamed(
  request: FastifyRequest,
  reply: FastifyReply,
  chunks: AsyncIterable<string>,
  options: { contentType: string; filename?: string; stallMs: number; headers?: Record<string, string> },
): FastifyReply {
  let lastPull = Date.now();
  // One chunk read ahead at most (Readable.from would read 16): what a client that stops reading
  // costs is the socket's buffer and a chunk or two, not sixteen of them.
  const body = Readable.from(pulled(chunks, () => (lastPull = Date.now())), { highWaterMark: 1 });
  const watchdog = setInterval(() => {
    if (Date.now() - lastPull > options.stallMs) request.raw.socket.destroy();
  }, STALL_CHECK_MS);
  watchdog.unref();
  reply.raw.once('close', () => clearInterval(watchdog));
  if (options.filename !== undefined) reply.header('content-disposition', `attachment; filename="${options.filename}"`);
  return reply.headers(options.headers ?? {}).type(options.contentType).send(body);
}
