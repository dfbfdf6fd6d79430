// A minimal line-oriented mail client over raw sockets, for asserting exact wire behaviour
// (pipelining, injection, replies) where a real client library would hide it.
import net from 'node:net';
import tls from 'node:tls';

export class RawClient {
  private buf = '';
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(public socket: net.Socket) {
    this.listen(socket);
  }

  private listen(s: net.Socket): void {
    s.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      this.wakeAll();
    });
    s.on('close', () => {
      this.closed = true;
      this.wakeAll();
    });
    s.on('error', () => undefined);
  }

  private wakeAll(): void {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }

  static async connect(port: number, opts: { host?: string; localAddress?: string; tls?: boolean } = {}): Promise<RawClient> {
    const host = opts.host ?? '127.0.0.1';
    let socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host, port, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) }, () => resolve(s));
      s.once('error', reject);
    });
    if (opts.tls) {
      const plain = socket;
      socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect({ socket: plain, rejectUnauthorized: false }, () => resolve(s));
        s.once('error', reject);
      });
    }
    return new RawClient(socket);
  }

  /** A client over a socket the test set up itself (e.g. TLS over a stream it shapes). */
  static wrap(socket: net.Socket): RawClient {
    return new RawClient(socket);
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Resolves once cond() holds, waking on every received chunk or close; throws the
   *  message from fail() when the deadline passes or (unless waiting for it) on close. */
  private async until(cond: () => boolean, timeoutMs: number, fail: (why: 'closed' | 'timeout') => string): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (this.closed) throw new Error(fail('closed'));
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(fail('timeout'));
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.buf;
  }

  /** Wait (bounded) until the received text matches; returns everything received so far. */
  waitFor(pattern: RegExp | string, timeoutMs = 10_000): Promise<string> {
    const matches = () => (typeof pattern === 'string' ? this.buf.includes(pattern) : pattern.test(this.buf));
    return this.until(matches, timeoutMs, (why) =>
      why === 'closed' ? `connection closed while waiting for ${pattern}; got: ${JSON.stringify(this.buf)}` : `timed out waiting for ${pattern}; got: ${JSON.stringify(this.buf)}`,
    );
  }

  /** Wait until the peer closes the connection (bounded). */
  waitClosed(timeoutMs = 10_000): Promise<string> {
    return this.until(() => this.closed, timeoutMs, () => `connection not closed; got: ${JSON.stringify(this.buf)}`);
  }

  get received(): string {
    return this.buf;
  }

  /** Forget what was received so far. */
  clear(): void {
    this.buf = '';
  }

  /** Upgrade to TLS (after the server's STARTTLS OK), asking for `servername` (SNI) if given. */
  async startTls(opts: { servername?: string } = {}): Promise<void> {
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    this.buf = '';
    this.socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ socket: plain, rejectUnauthorized: false, ...(opts.servername ? { servername: opts.servername } : {}) }, () => resolve(s));
      s.once('error', reject);
    });
    this.listen(this.socket);
  }

  close(): void {
    this.socket.destroy();
  }
}
