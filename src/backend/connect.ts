// Connections to real mail servers: TCP connect, PROXY header out, TLS, line reading with
// byte bounds, STARTTLS upgrade that refuses injected bytes (Exim CVE-2021-38371), a deadline.
import { readFileSync } from 'node:fs';
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import type { ServerTarget } from '../config/schema.js';
import { MailgateError } from '../errors.js';
import { BACKEND_MAX_PRELOGIN_BYTES } from '../bounds.js';
import type { ClientAddress } from './types.js';
import { proxyHeader } from './client-info.js';
import { SharedReads } from './shared-reads.js';

function tlsOptions(cfg: ServerTarget): tls.ConnectionOptions {
  const servername = cfg.servername ?? (net.isIP(cfg.host) ? undefined : cfg.host);
  return {
    rejectUnauthorized: cfg.tlsVerify,
    ...(servername ? { servername } : {}),
    ...(cfg.ca ? { ca: readFileSync(cfg.ca) } : {}),
    // Without a servername, verify the certificate against the address itself.
    checkServerIdentity: (host, cert) => tls.checkServerIdentity(cfg.servername ?? cfg.host ?? host, cert),
  };
}

/** The server could not be reached at all (nothing was sent to it): another server may be tried. */
export function isUnreachable(err: unknown): boolean {
  return err instanceof MailgateError && err.code === 'MG_BACKEND_CONNECT';
}

/** How long a backend gets to close after our goodbye. */
const CLOSE_GRACE_MS = 1_000;
/** The failure of a connection we closed ourselves: one shared object, no stack capture. */
const CLOSED = new MailgateError('MG_BACKEND_PROTOCOL', 'closed');

/** A backend conversation before the splice: line-oriented, bounded, with one deadline. */
export class BackendConn {
  private buf: Buffer = Buffer.alloc(0);
  private received = 0;
  private failure: Error | null = null;
  private wake: (() => void) | null = null;
  private readonly timer: NodeJS.Timeout;

  private constructor(
    public socket: Socket,
    private readonly cfg: ServerTarget,
  ) {
    this.attach(socket);
    this.timer = setTimeout(
      () => this.fail(new MailgateError('MG_BACKEND_TIMEOUT', `backend did not finish the login within ${cfg.loginTimeout} ms`)),
      cfg.loginTimeout,
    );
  }

  /** Connect; with cfg.proxyProtocol the PROXY header for `client` (null: a LOCAL header, for
   *  probes) is the first thing sent, before any TLS (the backend reads it off the raw TCP). */
  static async open(cfg: ServerTarget, client: ClientAddress | null = null): Promise<BackendConn> {
    // Built before connecting: an address that cannot be encoded fails without a connection.
    const header = cfg.proxyProtocol ? proxyHeader(cfg.proxyProtocol, client) : null;
    // A plaintext backend reads into the process's shared buffer (shared-reads.ts); TLS keeps
    // Node's own reads, under the TLS layer.
    const reads = cfg.tls === 'none' ? new SharedReads() : null;
    let s: Socket = net.connect({ host: cfg.host, port: cfg.port, ...(reads ? { onread: reads.options } : {}) });
    reads?.attach(s);
    let tcpUp = false;
    const socket = await new Promise<Socket>((resolve, reject) => {
      const timer = setTimeout(() => {
        s.destroy();
        // Before the TCP connection: the server is unreachable (a pool tries the next one).
        reject(new MailgateError(tcpUp ? 'MG_BACKEND_TIMEOUT' : 'MG_BACKEND_CONNECT', `connect to ${cfg.host}:${cfg.port} timed out after ${cfg.connectTimeout} ms`));
      }, cfg.connectTimeout);
      const failed = (code: 'MG_BACKEND_TLS' | 'MG_BACKEND_CONNECT') => (err: Error) => {
        clearTimeout(timer);
        s.destroy();
        reject(new MailgateError(code, `${cfg.host}:${cfg.port}: ${err.message}`));
      };
      const ready = () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      };
      s.once('error', failed('MG_BACKEND_CONNECT'));
      s.once('connect', () => {
        tcpUp = true;
        if (header) s.write(header);
        if (cfg.tls !== 'implicit') return ready();
        s.removeAllListeners('error');
        s = tls.connect({ socket: s, ...tlsOptions(cfg) });
        s.once('secureConnect', ready);
        s.once('error', failed('MG_BACKEND_TLS'));
      });
    });
    socket.setNoDelay(true);
    return new BackendConn(socket, cfg);
  }

  private attach(s: Socket): void {
    s.on('data', (d: Buffer) => {
      this.received += d.length;
      if (this.received > BACKEND_MAX_PRELOGIN_BYTES) {
        this.fail(new MailgateError('MG_BACKEND_PROTOCOL', 'backend sent too much before the login reply'));
        return;
      }
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.notify();
    });
    // Built only when it is the first failure: a connection we closed ourselves (every failed
    // login's) must not pay for an error and its stack trace on the way out.
    s.on('error', (err) => {
      if (!this.failure) this.fail(new MailgateError('MG_BACKEND_CONNECT', err.message));
    });
    s.on('close', () => {
      if (!this.failure) this.fail(new MailgateError('MG_BACKEND_PROTOCOL', 'backend closed the connection during login'));
    });
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.socket.destroy();
    this.notify();
  }

  /** The next line, without CRLF. Rejects on deadline, close or error. */
  async readLine(): Promise<string> {
    for (;;) {
      const nl = this.buf.indexOf(0x0a);
      if (nl >= 0) {
        const end = nl > 0 && this.buf[nl - 1] === 0x0d ? nl - 1 : nl;
        const line = this.buf.subarray(0, end).toString('latin1');
        this.buf = this.buf.subarray(nl + 1);
        return line;
      }
      if (this.failure) throw this.failure;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  write(data: string | Buffer): void {
    if (!this.failure) this.socket.write(data);
  }

  /** Upgrade after the server's STARTTLS OK. Any byte already buffered was sent before the
   *  handshake and could be an injected response: abort. */
  async startTls(): Promise<void> {
    if (this.buf.length > 0) throw new MailgateError('MG_BACKEND_PROTOCOL', 'backend sent data after its STARTTLS reply');
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ socket: plain, ...tlsOptions(this.cfg) });
      s.once('secureConnect', () => {
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (err) => reject(new MailgateError('MG_BACKEND_TLS', err.message)));
      plain.once('close', () => reject(new MailgateError('MG_BACKEND_TLS', 'backend closed during TLS handshake')));
    }).catch((err: Error) => {
      this.fail(err);
      throw err;
    });
    this.socket = secure;
    this.attach(secure);
  }

  /** End the login phase: stop reading, hand over the socket and any bytes after the reply. */
  release(): { socket: Socket; leftover: Buffer } {
    clearTimeout(this.timer);
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('close');
    this.socket.removeAllListeners('error');
    this.socket.pause();
    const leftover = this.buf;
    this.buf = Buffer.alloc(0);
    return { socket: this.socket, leftover };
  }

  /** Abandon the connection (after a failed login or an error). */
  close(goodbye?: string): void {
    clearTimeout(this.timer);
    this.failure ??= CLOSED;
    if (this.socket.destroyed) return;
    if (goodbye && this.socket.writable) {
      // Say goodbye and let the server close; a server that does not is cut by the socket
      // timeout, without a timer per connection here.
      this.socket.setTimeout(CLOSE_GRACE_MS, () => this.socket.destroy());
      this.socket.end(goodbye);
    } else {
      this.socket.destroy();
    }
  }
}
