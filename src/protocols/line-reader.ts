// Bounded CRLF line splitter for the line-based protocols (POP3, SMTP).
// Pure and incremental: push(bytes), then pull lines with next(). No sockets, no timers.
// A line longer than the current bound is reported once as 'too-long' and the reader stops:
// it never buffers more than the bound plus one chunk. Bytes after the last complete line
// stay raw (takeBuffered) so commands pipelined behind a login reach the backend unchanged.

export type LineEvent = { type: 'line'; text: string } | { type: 'too-long' };

export class LineReader {
  private buf: Buffer = Buffer.alloc(0);
  private overflowed = false;

  /** `limit`: the longest line accepted, CRLF excluded, or a function of the line's first
   *  bytes (SMTP: AUTH lines may be longer than other commands); `setLimit` changes it per
   *  line (SASL responses are longer than commands). */
  constructor(private limit: number | ((head: Buffer) => number)) {}

  setLimit(limit: number | ((head: Buffer) => number)): void {
    this.limit = limit;
  }

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
    // With no LF yet, a final CR may be the first half of the CRLF: it must not count toward
    // the bound, or a line of exactly `limit` octets would pass or fail by how it was split.
    const end = lf >= 0 ? (lf > 0 && this.buf[lf - 1] === 0x0d ? lf - 1 : lf) : this.buf.length - (this.buf.at(-1) === 0x0d ? 1 : 0);
    if (end > (typeof this.limit === 'number' ? this.limit : this.limit(this.buf))) {
      this.overflowed = true;
      this.buf = Buffer.alloc(0);
      return { type: 'too-long' };
    }
    if (lf < 0) return null;
    // latin1 keeps every byte as one char, so nothing is lost or merged; callers decode.
    const text = this.buf.toString('latin1', 0, end);
    this.buf = this.buf.subarray(lf + 1);
    return { type: 'line', text };
  }

  /** Raw bytes not yet returned as lines; the reader is empty afterwards. */
  takeBuffered(): Buffer {
    const rest = Buffer.from(this.buf);
    this.buf = Buffer.alloc(0);
    return rest;
  }

  /** Drop everything buffered (STARTTLS: plaintext read ahead must never run). */
  discard(): void {
    this.buf.fill(0);
    this.buf = Buffer.alloc(0);
  }
}
