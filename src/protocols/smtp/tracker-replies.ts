// Backend reply framing for the tracker: where each SMTP reply ends in the backend's byte
// stream and its code (RFC 5321 §4.2: "ddd-text" lines, then one "ddd text" or "ddd").
// Pure and incremental; holds no bytes (a few of the current line's first characters only).

const LF = 0x0a;
const CR = 0x0d;

export type ReplyStep =
  /** A whole reply ends just before `end`; `code` from its last line. */
  | { type: 'reply'; code: number; end: number }
  /** The line starting at `at` (0 when it began in an earlier chunk) is not `ddd[ -]…CRLF`. */
  | { type: 'bad'; at: number; reason: string };

export class ReplyScanner {
  /** The current line's first four bytes (code and separator), as latin1. */
  private head = '';
  private lineBytes = 0;
  private lastCr = false;

  /** The next reply in buf from `from`, or null when buf ends inside one. */
  next(buf: Buffer, from: number): ReplyStep | null {
    let i = from;
    while (i < buf.length) {
      const lf = buf.indexOf(LF, i);
      const end = lf < 0 ? buf.length : lf;
      if (this.head.length < 4) this.head += buf.toString('latin1', i, Math.min(end, i + 4 - this.head.length));
      const startedHere = this.lineBytes === 0;
      const lineAt = startedHere ? i : 0;
      if (end > i) this.lastCr = buf[end - 1] === CR;
      this.lineBytes += end - i;
      if (lf < 0) return null;
      const bad = this.check();
      const head = this.head;
      this.head = '';
      this.lineBytes = 0;
      this.lastCr = false;
      i = lf + 1;
      if (bad) return { type: 'bad', at: lineAt, reason: bad };
      if (head[3] !== '-') return { type: 'reply', code: Number(head.slice(0, 3)), end: i };
    }
    return null;
  }

  /** Why the line just ended (at its LF) is not a reply line, or null. */
  private check(): string | null {
    if (!this.lastCr) return 'backend reply line without CRLF';
    const code = /^[2-5][0-9]{2}/.test(this.head);
    // "ddd" alone is a whole reply line (RFC 5321 §4.2: Reply-code [ SP textstring ] CRLF).
    const sep = this.head[3] === ' ' || this.head[3] === '-' || (this.head[3] === '\r' && this.lineBytes === 4);
    return code && sep ? null : 'backend reply line is not "ddd[ -]text"';
  }
}
