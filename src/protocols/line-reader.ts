// Bounded CRLF line splitter for the line-based protocols (POP3, SMTP).
// Pure and incremental: push(bytes), then pull lines with next(). No sockets, no timers.
// A line longer than its bound is reported once as 'too-long' and the reader stops: it never
// buffers more than the bound plus one chunk. Bytes after the last complete line stay raw
// (takeBuffered) so commands pipelined behind a login reach the backend unchanged.

/** What every reader holds while it holds nothing: one zero-length buffer for the process (a
 *  buffer per connection, however empty, cost 0.2 KiB; nothing can be written into this one). */
export const EMPTY_BUFFER: Buffer = Buffer.alloc(0);

export type LineEvent = { type: 'line'; text: string } | { type: 'too-long' };

/** Where the text of the line at the start of `buf` ends: before its CRLF or bare LF (`lf`:
 *  where the LF is), or with no LF yet before a final CR, which may be the first half of the
 *  CRLF: otherwise a line of exactly the bound would pass or fail by how it was split. */
export function lineEnd(buf: Buffer, lf: number): number {
  if (lf >= 0) return lf > 0 && buf[lf - 1] === 0x0d ? lf - 1 : lf;
  return buf.length - (buf.at(-1) === 0x0d ? 1 : 0);
}

export class LineReader {
  private buf: Buffer = EMPTY_BUFFER;
  private overflowed = false;

  /** `limit`: the longest line accepted, CRLF excluded, asked afresh for each line from its
   *  first bytes (SMTP: an AUTH line may be longer than other commands) and from whatever the
   *  owner knows (a SASL response may be longer than a command). */
  constructor(private readonly limit: (head: Buffer) => number) {}

  get bufferedBytes(): number {
    return this.buf.length;
  }

  push(chunk: Buffer): void {
    if (this.overflowed) return;
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
  }

  /** The next complete line (CRLF or bare LF, as most servers accept), or null for "need more". */
  next(): LineEvent | null {
    if (this.overflowed) return null;
    const lf = this.buf.indexOf(0x0a);
    const end = lineEnd(this.buf, lf);
    if (end > this.limit(this.buf)) {
      this.overflowed = true;
      this.buf = EMPTY_BUFFER;
      return { type: 'too-long' };
    }
    if (lf < 0) return null;
    // latin1 keeps every byte as one char, so nothing is lost or merged; callers decode.
    const text = this.buf.toString('latin1', 0, end);
    // Nothing left: the chunk read from the socket is not kept alive by an empty view of it.
    this.buf = lf + 1 < this.buf.length ? this.buf.subarray(lf + 1) : EMPTY_BUFFER;
    return { type: 'line', text };
  }

  /** Raw bytes not yet returned as lines; the reader is empty afterwards. */
  takeBuffered(): Buffer {
    const rest = Buffer.from(this.buf);
    this.buf = EMPTY_BUFFER;
    return rest;
  }

  /** Drop everything buffered (STARTTLS: plaintext read ahead must never run). */
  discard(): void {
    this.buf.fill(0);
    this.buf = EMPTY_BUFFER;
  }
}
