// A small Server-Sent Events client for tests, since Node 20 has no EventSource: it reads a
// fetch body as it arrives and parses it as the HTML standard's event stream says (lines ended
// by LF, CRLF or CR; `field: value` with one optional space; comments start with a colon; a
// blank line dispatches the message). It keeps everything it saw, so a test waits for a
// condition on what arrived rather than for a time.

export interface SseMessage {
  /** The message's `id:` (the last one seen, as EventSource's lastEventId), or null before any. */
  id: string | null;
  /** `event:`, or null for the default "message". */
  event: string | null;
  data: string;
}

export interface SseConnection {
  status: number;
  headers: Headers;
  /** The body as text, when the answer was not a stream (any status but 200). */
  text: string;
  /** Every message dispatched so far, in order. */
  readonly messages: SseMessage[];
  /** Every comment line (without its colon), in order: heartbeats. */
  readonly comments: string[];
  /** The `retry:` the server asked for, if it did. */
  readonly retry: number | null;
  /** Whether the body has ended (the server closed the answer or the connection). */
  readonly ended: boolean;
  /** Polls until `condition` holds, or throws naming `what` after `timeoutMs`. */
  until(condition: (self: SseConnection) => boolean, what: string, timeoutMs?: number): Promise<void>;
  /** Stops reading and drops the connection. */
  close(): void;
}

// A loaded 2-core machine may take seconds to commit and deliver; a deadline this long only
// turns a hang into a failure.
const DEFAULT_WAIT_MS = 20_000;

/** Opens `url` as an event stream with `headers` (authorization, Last-Event-ID). */
export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseConnection> {
  const controller = new AbortController();
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
  const messages: SseMessage[] = [];
  const comments: string[] = [];
  let retry: number | null = null;
  let ended = false;

  const connection: SseConnection = {
    status: response.status,
    headers: response.headers,
    text: '',
    messages,
    comments,
    get retry() {
      return retry;
    },
    get ended() {
      return ended;
    },
    async until(condition, what, timeoutMs = DEFAULT_WAIT_MS) {
      const deadline = Date.now() + timeoutMs;
      while (!condition(connection)) {
        if (Date.now() > deadline) {
          throw new Error(`SSE: gave up waiting for ${what} after ${timeoutMs} ms (${messages.length} messages, ${comments.length} comments, ended ${ended})`);
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    close() {
      controller.abort();
    },
  };

  if (response.status !== 200 || response.body === null) {
    connection.text = await response.text();
    ended = true;
    return connection;
  }

  // The message being assembled, and the last id (it carries over messages without one).
  let lastId: string | null = null;
  let event: string | null = null;
  let data: string[] = [];
  const line = (text: string) => {
    if (text === '') {
      // An empty data buffer dispatches nothing (the id still counts).
      if (data.length > 0) messages.push({ id: lastId, event, data: data.join('\n') });
      event = null;
      data = [];
      return;
    }
    if (text.startsWith(':')) {
      comments.push(text.slice(1).trimStart());
      return;
    }
    const colon = text.indexOf(':');
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
    else if (field === 'id' && !value.includes('\0')) lastId = value;
    else if (field === 'retry' && /^[0-9]+$/.test(value)) retry = Number(value);
  };

  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  void (async () => {
    let pending = '';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        pending += value;
        // A CR at the very end may be the first half of a CRLF: wait for the next chunk.
        let match: RegExpExecArray | null;
        const ending = /\r\n|\n|\r(?!$)/g;
        let start = 0;
        while ((match = ending.exec(pending)) !== null) {
          line(pending.slice(start, match.index));
          start = match.index + match[0].length;
        }
        pending = pending.slice(start);
      }
    } catch {
      // Aborted by close() or cut by the server: either way the stream is over.
    } finally {
      ended = true;
    }
  })();
  return connection;
}

/** The JSON of each message, in order. */
export const dataOf = <T = Record<string, unknown>>(connection: SseConnection): T[] =>
  connection.messages.map((message) => JSON.parse(message.data) as T);
