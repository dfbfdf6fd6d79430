// The load generator's socket reader: lines for the dialogue, and byte counting without
// decoding for bulk transfers (an IMAP literal is skipped by length, a POP3 multi-line reply
// is scanned for its terminator), so the generator stays far cheaper than what it measures.

/** p-th percentile of an ascending array (nearest rank). */
export function pct(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Latency summary in ms: p50, p90, p99, max, mean. */
export function summary(xs) {
  if (xs.length === 0) return { n: 0, p50: null, p90: null, p99: null, max: null, mean: null };
  const s = Float64Array.from(xs).sort();
  const r = (v) => +v.toFixed(2);
  return { n: s.length, p50: r(pct(s, 50)), p90: r(pct(s, 90)), p99: r(pct(s, 99)), max: r(s[s.length - 1]), mean: r(s.reduce((a, b) => a + b, 0) / s.length) };
}

const POP3_END = Buffer.from('\r\n.\r\n');

export class Conn {
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.waiter = null;
    this.failure = null;
    /** Bulk mode: bytes still to skip (IMAP literal), or scanning for POP3's terminator. */
    this.skipLeft = 0;
    this.scanning = false;
    this.tail = Buffer.alloc(0);
    this.bulkBytes = 0;
    this.onData = (d) => this.data(d);
    this.onEnd = () => this.fail(new Error('connection closed by server'));
    this.onError = (e) => this.fail(e);
    sock.on('data', this.onData).on('end', this.onEnd).on('close', this.onEnd).on('error', this.onError);
  }

  connected() {
    if (!this.sock.connecting) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.sock.once('connect', resolve);
      this.sock.once('error', reject);
    });
  }

  data(d) {
    if (this.skipLeft > 0) {
      const n = Math.min(this.skipLeft, d.length);
      this.skipLeft -= n;
      this.bulkBytes += n;
      d = d.subarray(n);
      if (d.length === 0) {
        if (this.skipLeft === 0) this.wake();
        return;
      }
    } else if (this.scanning) {
      const joined = this.tail.length ? Buffer.concat([this.tail, d.subarray(0, 4)]) : null;
      let at = joined ? joined.indexOf(POP3_END) : -1;
      let end = -1;
      if (at >= 0) end = at + POP3_END.length - this.tail.length;
      else {
        at = d.indexOf(POP3_END);
        if (at >= 0) end = at + POP3_END.length;
      }
      if (end < 0) {
        this.bulkBytes += d.length;
        this.tail = Buffer.from(d.subarray(Math.max(0, d.length - 4)));
        return;
      }
      this.bulkBytes += end;
      this.scanning = false;
      d = d.subarray(end);
      this.wake();
      if (d.length === 0) return;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    this.wake();
  }

  wake() {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  fail(err) {
    this.failure ??= err;
    this.wake();
  }

  wait() {
    return new Promise((r) => (this.waiter = r));
  }

  /** The next line without CRLF (latin1). */
  async line() {
    for (;;) {
      if (this.skipLeft === 0 && !this.scanning) {
        const nl = this.buf.indexOf(10);
        if (nl >= 0) {
          const l = this.buf.toString('latin1', 0, nl > 0 && this.buf[nl - 1] === 13 ? nl - 1 : nl);
          this.buf = this.buf.subarray(nl + 1);
          return l;
        }
      }
      if (this.failure) throw this.failure;
      await this.wait();
    }
  }

  /** Lines until the tagged one; returns it. */
  async tagged(tag) {
    for (;;) {
      const l = await this.line();
      if (l.startsWith(`${tag} `)) return l;
    }
  }

  write(s) {
    this.sock.write(s);
  }

  /** FETCH 1 BODY.PEEK[]: returns the literal's size once the tagged OK arrived. */
  async fetchBody(tag) {
    this.write(`${tag} FETCH 1 BODY.PEEK[]\r\n`);
    let size = 0;
    for (;;) {
      const l = await this.line();
      const m = /\{(\d+)\}$/.exec(l);
      if (m) {
        size = Number(m[1]);
        this.bulkBytes = 0;
        const have = Math.min(size, this.buf.length);
        this.bulkBytes = have;
        this.buf = this.buf.subarray(have);
        this.skipLeft = size - have;
        while (this.skipLeft > 0) {
          if (this.failure) throw this.failure;
          await this.wait();
        }
        continue;
      }
      if (l.startsWith(`${tag} `)) {
        if (!l.startsWith(`${tag} OK`)) throw new Error(`FETCH: ${l}`);
        return size;
      }
    }
  }

  /** POP3 RETR 1: returns the bytes of the multi-line reply (terminator included). */
  async retr() {
    this.write('RETR 1\r\n');
    const first = await this.line();
    if (!first.startsWith('+OK')) throw new Error(`RETR: ${first}`);
    const pending = this.buf;
    this.buf = Buffer.alloc(0);
    this.bulkBytes = 0;
    this.tail = Buffer.alloc(0);
    this.scanning = true;
    if (pending.length) this.data(pending);
    while (this.scanning) {
      if (this.failure) throw this.failure;
      await this.wait();
    }
    return this.bulkBytes;
  }

  /** Stop reading (before a TLS upgrade takes the socket over, or to sit idle). */
  detach() {
    this.sock.off('data', this.onData).off('end', this.onEnd).off('close', this.onEnd).off('error', this.onError);
  }

  destroy() {
    this.sock.destroy();
  }
}
