// A Server-Sent Events parser as the HTML standard describes the format: lines end with LF, CRLF
// or CR; `field: value` with one optional space after the colon; a line starting with a colon is
// a comment (the registry's heartbeats); a blank line dispatches the message. Only what the
// registry's stream uses is kept: data, id and comments (event names and retry are read past).

export interface SseMessage {
  /** The last `id:` seen, carried over messages without one (EventSource's lastEventId). */
  id: string | null;
  data: string;
}

export interface SseHandlers {
  message(message: SseMessage): void;
  comment(text: string): void;
}

// A message larger than this is no event of the registry's (events are a few hundred bytes):
// the parser refuses to buffer without bound for a stream that never ends a line.
export const MAX_PENDING_CHARS = 1024 * 1024;

export class SseParser {
  private pending = '';
  private data: string[] = [];
  private dataChars = 0;
  private lastId: string | null = null;

  constructor(private readonly handlers: SseHandlers) {}

  /** Feeds decoded text; throws when a line or a message outgrows MAX_PENDING_CHARS. */
  push(text: string): void {
    this.pending += text;
    let start = 0;
    for (let i = 0; i < this.pending.length; i += 1) {
      const char = this.pending.charCodeAt(i);
      if (char !== 10 && char !== 13) continue;
      // A CR at the very end may be the first half of a CRLF: wait for the next chunk.
      if (char === 13 && i === this.pending.length - 1) break;
      this.line(this.pending.slice(start, i));
      if (char === 13 && this.pending.charCodeAt(i + 1) === 10) i += 1;
      start = i + 1;
    }
    this.pending = this.pending.slice(start);
    if (this.pending.length + this.dataChars > MAX_PENDING_CHARS) throw new Error('event stream message too large');
  }

  private line(text: string): void {
    if (text === '') {
      if (this.data.length > 0) this.handlers.message({ id: this.lastId, data: this.data.join('\n') });
      this.data = [];
      this.dataChars = 0;
      return;
    }
    if (text.charCodeAt(0) === 58 /* : */) {
      this.handlers.comment(text.slice(1).trimStart());
      return;
    }
    const colon = text.indexOf(':');
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') {
      this.data.push(value);
      this.dataChars += value.length;
    } else if (field === 'id' && !value.includes('\0')) {
      this.lastId = value;
    }
  }
}
