// Where a DATA body ends, exactly where Dovecot 2.3's istream-dot.c ends it, for the tracker.
// Pure and incremental; it scans with Buffer.indexOf and copies nothing.
//
// Dovecot's dot stream (src/lib-mail/istream-dot.c in 2.3.19) starts as if after an LF and,
// at every LF, with or without a CR before it, matches ".", an optional CR, then LF: so the
// body ends at the first "\n.\n" or "\n.\r\n" (CR before the first LF or not), or with ".\n"
// or ".\r\n" as the body's first line. "\n..x" is dot-stuffing (body); "\n.x" is body too.
// "\r.\r\n" (no LF before the dot) does not end it. RFC 5321 §4.1.1.4 asks for CRLF.CRLF
// only; mirroring the backend keeps mailgate in step with it (smtp-tracker-dovecot.test.ts
// checks each case against Dovecot 2.3.19). A backend that ends bodies elsewhere would leave
// the tracker holding for a reply that does not come: the splice's abandon() is for that.

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const LF_DOT = Buffer.from('\n.');

/** Where in "LF . CR LF" the bytes seen so far stand (istream-dot.c's states 2-4). */
const At = { Text: 0, Lf: 2, LfDot: 3, LfDotCr: 4 } as const;
type At = (typeof At)[keyof typeof At];

/** After a "\n." (dot-stuffed lines come in runs) the next is looked for byte by byte a short
 *  way first: a run of them would otherwise cost a native indexOf call per line, several
 *  times the price of copying the body. */
const NEAR = 128;

function nearHit(buf: Buffer, i: number): number {
  const end = Math.min(i + NEAR, buf.length - 1);
  for (let j = i; j < end; j++) if (buf[j] === LF && buf[j + 1] === DOT) return j;
  return buf.indexOf(LF_DOT, end);
}

export class DotScanner {
  private at: At = At.Lf;

  /** A new body starts (right after the DATA command's 354): as if after an LF. */
  reset(): void {
    this.at = At.Lf;
  }

  /** Scans buf from `from`: the index just after the end-of-data line's LF, or -1 when the
   *  body goes on past buf (the state carries to the next call). */
  scan(buf: Buffer, from: number): number {
    let i = from;
    for (;;) {
      while (this.at !== At.Text) {
        if (i >= buf.length) return -1;
        const c = buf[i++];
        if (this.at === At.Lf) this.at = c === DOT ? At.LfDot : c === LF ? At.Lf : At.Text;
        else if (c === LF) {
          this.at = At.Lf;
          return i;
        } else this.at = this.at === At.LfDot && c === CR ? At.LfDotCr : At.Text;
      }
      const hit = i > from ? nearHit(buf, i) : buf.indexOf(LF_DOT, i);
      if (hit < 0) {
        if (i < buf.length && buf[buf.length - 1] === LF) this.at = At.Lf;
        return -1;
      }
      i = hit + 2;
      this.at = At.LfDot;
    }
  }
}
