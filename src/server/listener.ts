// A listening socket for one configured listener: accepts connections and starts sessions.
import { randomInt } from 'node:crypto';
import net from 'node:net';
import { parseHostPort } from '../config/address.js';
import type { ListenerConfig } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import type { ProtocolBinding } from '../registry.js';
import type { SessionEnv } from './env.js';
import { Session } from './session.js';

/** Session ids are this process's random prefix plus a counter ([a-z0-9], as IMAP ID's
 *  x-session-id and XCLIENT SESSION need), so ids from restarts and other instances differ
 *  in the backend's log too. */
const PROCESS_PREFIX = randomInt(36 ** 6).toString(36).padStart(6, '0');
let nextSessionId = 1;

/** A new session id (a listener's connection, a policy-server login). */
export function newSessionId(): string {
  return PROCESS_PREFIX + (nextSessionId++).toString(36);
}

export class Listener {
  private readonly server: net.Server;
  readonly sessions = new Set<Session>();
  /** drained() callers, told once no session is left. */
  private readonly drainWaiters: (() => void)[] = [];
  /** Each session's end (one function for the listener, not a closure per session). */
  private readonly ended = (s: Session): void => {
    this.sessions.delete(s);
    if (this.sessions.size === 0) for (const resolve of this.drainWaiters.splice(0)) resolve();
  };

  constructor(
    readonly cfg: ListenerConfig,
    private readonly protocol: ProtocolBinding,
    private readonly env: () => SessionEnv,
    private readonly log: Logger,
    /** reusePort: one of several processes listening on the port (worker mode, SO_REUSEPORT:
     *  the kernel spreads connections over them, no process hands any over). */
    private readonly opts: { reusePort?: boolean } = {},
  ) {
    // allowHalfOpen: a client's FIN must not cut the backend's reply short once spliced.
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
  }

  private accept(socket: net.Socket): void {
    const id = newSessionId();
    // The session makes its one child logger (the client is known only after a PROXY header).
    const session = new Session(socket, this.cfg, this.protocol, this.env(), this.log, id, this.ended);
    this.sessions.add(session);
    void session.start();
  }

  get listening(): boolean {
    return this.server.listening;
  }

  async listen(): Promise<net.AddressInfo> {
    const { host, port } = parseHostPort(this.cfg.listen)!;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port, backlog: 511, reusePort: this.opts.reusePort ?? false }, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const addr = this.server.address() as net.AddressInfo;
    this.log.info({ event: 'listener.start', listener: this.cfg.name, protocol: this.cfg.protocol, address: addr.address, port: addr.port, tls: this.cfg.tls }, 'listening');
    return addr;
  }

  /** Stop accepting at once; sessions already open are not touched (net.Server's close
   *  callback waits for every connection, which reload and shutdown must not). */
  async close(): Promise<void> {
    if (this.server.listening) this.server.close();
  }

  /** Pre-auth sessions get the protocol's goodbye; spliced ones are left to finish. */
  goodbyePreauth(): void {
    for (const s of this.sessions) if (s.state !== 'spliced') s.goodbye('shutdown');
  }

  /** End every session now, spliced ones included. */
  shutdownSessions(): void {
    for (const s of this.sessions) s.goodbye('shutdown');
  }

  /** Resolves when every session of this listener has ended. */
  async drained(): Promise<void> {
    if (this.sessions.size > 0) await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
  }
}
