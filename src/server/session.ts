// One client connection: runs its protocol machine's effects (the only place that does),
// owns the socket, the PROXY header, the TLS upgrade, the pre-auth deadline, the splice.
import type { Socket } from 'node:net';
import tls from 'node:tls';
import type { Clock } from '../clock.js';
import type { ListenerConfig } from '../config/schema.js';
import type { Policy } from '../limits/policy.js';
import type { Logger } from '../logging/logger.js';
import { canonicalIp } from '../config/address.js';
import type { Effect, GoodbyeReason, ProtocolMachine } from '../protocols/protocol.js';
import type { ClientAddress } from '../backend/types.js';
import type { ProtocolBinding } from '../registry.js';
import { splice, type Splice } from '../backend/splice.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Tarpit } from '../limits/tarpit.js';
import type { BackendPools } from '../backend/pool.js';
import { runAuth } from './auth-path.js';
import type { ConnectionTracker } from './connections.js';
import { ProxyHeaderReader, type ProxyHeaderStep } from './proxy-header.js';
import type { ServerTls } from './tls.js';
import { printable } from '../protocols/identity.js';

/** Replies queued to a client that does not read before we stop reading its commands. */
const MAX_PENDING_WRITE_BYTES = 64 * 1024;
/** Replies queued to a client that does not read before it is dropped: one read of cheap
 *  pipelined commands (CAPA, EHLO, CAPABILITY) asks for up to ~16 times its size in replies,
 *  so pausing alone would let each such client park about a megabyte here. */
const MAX_UNREAD_REPLY_BYTES = 2 * MAX_PENDING_WRITE_BYTES;
/** Grace for a closing socket to flush its goodbye before it is destroyed. */
const CLOSE_GRACE_MS = 2_000;

export interface SessionEnv {
  policy: Policy;
  metrics: Metrics;
  tarpit: Tarpit;
  pools: BackendPools;
  clock: Clock;
  tls: ServerTls | null;
  maxBadCommands: number;
  maxAuthAttempts: number;
  timeouts: { preauth: number; tlsHandshake: number; idle: number };
  /** The backend's advertised capabilities as last probed (empty when unknown). */
  capabilities(backendName: string): readonly string[];
  /** limits.trustedProxies: peers allowed to send a PROXY header. */
  isTrustedProxy(address: string | undefined): boolean;
  /** limits.deniedNetworks: clients turned away at connect. */
  isDenied(address: string): boolean;
  /** Concurrent connection limits, shared by every listener. */
  connections: ConnectionTracker;
  /** The client key connection limits count (ipv6Prefix grouping). */
  clientKey(ip: string): string;
}

type Phase = 'proxy-header' | 'tls-handshake' | 'preauth' | 'login' | 'spliced' | 'closed';

export class Session {
  private socket: Socket;
  private readonly machine: ProtocolMachine;
  private phase: Phase = 'preauth';
  private readonly deadline: NodeJS.Timeout;
  private spliced: Splice | null = null;
  /** Set while a backend's challenge waits for the client's answer (relayChallenge). */
  private relayed: ((response: string | null) => void) | null = null;
  /** Who the client is: the socket's peer, or the PROXY header's source once read. */
  private client: ClientAddress;
  private log: Logger;
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(
    raw: Socket,
    private readonly listener: ListenerConfig,
    private readonly protocol: ProtocolBinding,
    private readonly env: SessionEnv,
    log: Logger,
    sessionId: string,
  ) {
    this.socket = raw;
    this.client = {
      ip: canonicalIp(raw.remoteAddress) ?? raw.remoteAddress ?? '',
      port: raw.remotePort ?? 0,
      localIp: canonicalIp(raw.localAddress) ?? raw.localAddress ?? '',
      localPort: raw.localPort ?? 0,
      sessionId,
    };
    // Behind a load balancer the client is known only from the header: until then the logs
    // name the balancer as `proxy`, never as the client.
    const who = listener.proxyProtocol ? { proxy: this.client.ip } : { ip: this.client.ip, port: this.client.port };
    this.log = log.child({ session: sessionId, listener: listener.name, protocol: listener.protocol, ...who });
    this.done = new Promise((r) => (this.resolveDone = r));
    this.machine = protocol.protocol.createMachine({
      tlsMode: listener.tls,
      requireTls: listener.requireTls,
      maxBadCommands: env.maxBadCommands,
      maxAuthAttempts: env.maxAuthAttempts,
      hostname: listener.hostname,
      backendCapabilities: env.capabilities(listener.backend),
    });
    env.metrics.connections.inc({ listener: listener.name, state: 'preauth' });
    // Absolute: not reset by traffic, so a byte every few seconds does not keep a client here.
    this.deadline = setTimeout(() => this.goodbye('timeout'), env.timeouts.preauth);
    raw.setNoDelay(true);
    raw.on('error', () => this.destroy());
    raw.on('close', () => this.destroy());
  }

  get state(): Phase {
    return this.phase;
  }

  /** The client's address as limits and logs see it. */
  get clientIp(): string {
    return this.client.ip;
  }

  /** This session's logger (bound to the client address once it is known). */
  get logger(): Logger {
    return this.log;
  }

  async start(): Promise<void> {
    if (this.listener.proxyProtocol && !(await this.readProxyHeader())) return;
    const refusal = await this.admission();
    if (this.isClosed()) return;
    if (this.listener.tls === 'implicit') {
      if (!(await this.upgrade())) return;
    }
    if (refusal) {
      const kind = refusal.reason === 'limited' ? 'blocked' : refusal.reason === 'denied' ? 'denied' : refusal.why.endsWith('perIp') ? 'per-ip' : 'total';
      this.env.metrics.connectionsRefused.inc({ listener: this.listener.name, reason: kind });
      if (refusal.reason === 'limited') this.env.metrics.refusals.inc({ rule: refusal.why });
      this.log.info({ event: 'session.refused', reason: refusal.why, retryAfterSec: refusal.retryAfterSec }, 'connection refused by limits');
      return this.goodbye(refusal.reason, refusal.retryAfterSec);
    }
    this.attach();
    // A socket paused after the PROXY header does not resume by itself on a new listener.
    this.socket.resume();
    this.run(this.machine.start());
  }

  /** The first bytes must be a PROXY header from a trusted balancer; anything else closes
   *  the connection without a word. Bytes after the header are put back for the protocol
   *  (or for the TLS handshake on implicit listeners, which reads them from the socket). */
  private async readProxyHeader(): Promise<boolean> {
    const raw = this.socket;
    // A stranger is internet noise (info); a trusted balancer without a valid header is a
    // misconfiguration someone must see (warn).
    const refuse = (reason: string, level: 'info' | 'warn' = 'warn') => {
      this.log[level]({ event: 'proxy.refused', reason }, 'connection closed: no acceptable PROXY header');
      this.destroy();
      return false;
    };
    if (!this.env.isTrustedProxy(raw.remoteAddress)) return refuse('peer not in limits.trustedProxies', 'info');
    this.phase = 'proxy-header';
    const reader = new ProxyHeaderReader();
    const step = await new Promise<ProxyHeaderStep | null>((resolve) => {
      const onData = (chunk: Buffer) => {
        const r = reader.push(chunk);
        if (r.kind !== 'more') done(r);
      };
      const done = (r: ProxyHeaderStep | null) => {
        raw.off('data', onData).off('end', onEnd).off('close', onEnd);
        raw.pause();
        resolve(r);
      };
      const onEnd = () => done(null);
      raw.on('data', onData).once('end', onEnd).once('close', onEnd);
    });
    if (this.isClosed()) return false;
    if (!step) return refuse('connection ended before the header');
    if (step.kind === 'invalid') return refuse(step.reason);
    if (step.kind !== 'done') return refuse('incomplete header');
    if (step.header.kind === 'proxy') {
      const { source, destination } = step.header;
      this.client = { ...this.client, ip: source.ip, port: source.port, localIp: destination.ip, localPort: destination.port };
    }
    this.log = this.log.child({ ip: this.client.ip, port: this.client.port, proxyHeader: step.header.kind === 'local' ? 'local' : `v${step.header.version}` });
    if (step.rest.length) raw.unshift(step.rest);
    this.phase = 'preauth';
    return true;
  }

  private attach(): void {
    this.socket.on('data', (chunk: Buffer) => this.run(this.machine.push(chunk)));
    this.socket.on('end', () => this.destroy());
  }

  private run(effects: Effect[]): void {
    for (const e of effects) {
      if (this.phase === 'closed') return;
      switch (e.type) {
        case 'send':
          if (this.socket.writableLength > MAX_UNREAD_REPLY_BYTES) {
            this.log.info({ event: 'session.close', reason: 'replies not read', queued: this.socket.writableLength }, 'client does not read its replies; dropped');
            this.destroy();
            return;
          }
          this.socket.write(e.data);
          // Once per stall: a drain listener per reply would pile up thousands.
          if (this.socket.writableLength > MAX_PENDING_WRITE_BYTES && !this.socket.isPaused()) {
            this.socket.pause();
            this.socket.once('drain', () => this.phase === 'preauth' && this.socket.resume());
          }
          break;
        case 'close':
          this.close();
          return;
        case 'startTls':
          if (e.discarded > 0) {
            this.env.metrics.starttlsInjections.inc({ listener: this.listener.name });
            this.log.warn({ event: 'starttls.injection', bytes: e.discarded }, 'plaintext pipelined after STARTTLS discarded');
          }
          void this.startTls();
          return;
        case 'login':
          void this.login(e);
          return;
        case 'loginResponse':
          this.relayed?.(e.response);
          return;
      }
    }
  }

  private async upgrade(): Promise<boolean> {
    const raw = this.socket;
    raw.pause();
    raw.removeAllListeners('data');
    raw.removeAllListeners('end');
    this.phase = 'tls-handshake';
    const { context, SNICallback } = this.env.tls!;
    const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: context, ...(SNICallback ? { SNICallback } : {}) });
    const ok = await new Promise<boolean>((resolve) => {
      const settle = (result: boolean) => () => {
        clearTimeout(timer);
        resolve(result);
      };
      const timer = setTimeout(settle(false), this.env.timeouts.tlsHandshake);
      secure.once('secure', settle(true));
      secure.once('error', settle(false));
      // A client that hangs up mid-handshake (a port scan, a refused certificate) frees its
      // socket and its connection slot now, not at the handshake deadline.
      secure.once('end', settle(false));
      secure.once('close', settle(false));
    });
    if (!ok || this.isClosed()) {
      this.env.metrics.tlsFailures.inc({ listener: this.listener.name });
      this.log.info({ event: 'tls.failed' }, 'TLS handshake failed or timed out');
      secure.destroy();
      this.destroy();
      return false;
    }
    const version = secure.getProtocol() ?? 'unknown';
    this.env.metrics.tlsHandshakes.inc({ listener: this.listener.name, version });
    // Later lines (the login, the session's end) say which TLS and which name the client asked
    // for: which domain a user came in by, who still needs an old version. The name is the
    // client's own text, escaped like a user name.
    const sni = typeof secure.servername === 'string' && secure.servername ? printable(Buffer.from(secure.servername, 'latin1'), 255) : undefined;
    this.log = this.log.child({ tls: version, ...(sni ? { sni } : {}) });
    this.phase = 'preauth';
    this.socket = secure;
    secure.on('error', () => this.destroy());
    secure.on('close', () => this.destroy());
    return true;
  }

  private async startTls(): Promise<void> {
    this.socket.pause();
    // Let the OK reach the client before the handshake starts.
    await new Promise<void>((r) => this.socket.write('', () => r()));
    if (this.isClosed()) return;
    if (!(await this.upgrade())) return;
    this.attach();
    this.run(this.machine.tlsStarted());
  }

  private async login(e: Extract<Effect, { type: 'login' }>): Promise<void> {
    this.phase = 'login';
    this.socket.pause();
    const outcome = await runAuth(this.env, this.log, {
      listener: this.listener,
      protocol: this.protocol,
      clientIp: this.clientIp,
      credentials: e.credentials,
      context: { ...e.context, client: this.client, hostname: this.listener.hostname },
      relay: (challenge) => this.relayChallenge(challenge),
    });
    if (this.isClosed()) {
      if (outcome.kind === 'ok') outcome.socket.destroy();
      return;
    }
    if (outcome.kind !== 'ok') {
      this.phase = 'preauth';
      this.run(this.machine.loginResult(outcome));
      if (this.phase === 'preauth') this.socket.resume();
      return;
    }
    clearTimeout(this.deadline);
    this.phase = 'spliced';
    this.env.metrics.connections.dec({ listener: this.listener.name, state: 'preauth' });
    this.env.metrics.connections.inc({ listener: this.listener.name, state: 'spliced' });
    const client = this.socket;
    client.removeAllListeners('data');
    client.removeAllListeners('end');
    // One write for the reply and whatever the backend sent behind it.
    client.write(outcome.leftover.length ? Buffer.concat([outcome.clientReply, outcome.leftover]) : outcome.clientReply);
    // Commands pipelined behind the login reach the backend once, after its OK.
    const pipelined = this.machine.takeBuffered();
    if (pipelined.length) outcome.socket.write(pipelined);
    this.spliced = splice(client, outcome.socket, this.env.timeouts.idle);
    const stats = await this.spliced.done;
    this.env.metrics.splicedBytes.inc({ listener: this.listener.name, direction: 'in' }, stats.bytesIn);
    this.env.metrics.splicedBytes.inc({ listener: this.listener.name, direction: 'out' }, stats.bytesOut);
    this.log.info({ event: 'splice.end', ...stats }, 'session ended');
    this.finish();
  }

  /** During a login, a backend's challenge goes to the client and its one answer line comes
   *  back (a loginResponse effect), or null once the session has ended. */
  private relayChallenge(challenge: string): Promise<string | null> {
    if (this.isClosed()) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.relayed = (response) => {
        this.relayed = null;
        this.socket.pause();
        resolve(response);
      };
      this.socket.resume();
      this.run(this.machine.loginChallenge(challenge));
    });
  }

  /** End a pre-auth session with the protocol's goodbye (deadline, shutdown, limits). */
  goodbye(reason: GoodbyeReason, retryAfterSec?: number): void {
    if (this.phase === 'spliced') {
      if (reason === 'shutdown') this.spliced?.destroy();
      return;
    }
    if (this.phase === 'closed') return;
    // Nothing was said yet: a balancer mid-header or a client mid-handshake is just cut.
    if (this.phase === 'proxy-header') return this.destroy();
    if (this.phase !== 'tls-handshake') this.socket.write(this.machine.goodbye(reason, retryAfterSec));
    this.close();
  }

  private key: string | null = null;

  /** Connection limits (TrackedConnection): counted per client key once the client is known
   *  (admission comes after the PROXY header), the same key from admission to release. */
  get clientKey(): string {
    return (this.key ??= this.env.clientKey(this.client.ip));
  }

  get evictable(): boolean {
    return this.phase === 'preauth' || this.phase === 'tls-handshake' || this.phase === 'proxy-header';
  }

  evict(): void {
    this.log.info({ event: 'session.evicted' }, 'dropped to make room under limits.connections.total');
    this.goodbye('busy');
  }

  /** A denied network, connection limits, then a client IP an ip rule already refuses: turned
   *  away before the proxy reads anything. Null: welcome. */
  private async admission(): Promise<{ reason: 'busy' | 'limited' | 'denied'; retryAfterSec?: number; why: string } | null> {
    if (this.env.isDenied(this.client.ip)) return { reason: 'denied', why: 'limits.deniedNetworks' };
    const a = this.env.connections.admit(this);
    if (a !== 'ok') return { reason: 'busy', why: a === 'per-ip' ? 'limits.connections.perIp' : 'limits.connections.total' };
    this.tracked = true;
    const refused = await this.env.policy.connectCheck(this.protocol.protocol.name, this.client.ip).catch(() => null);
    return refused ? { reason: 'limited', retryAfterSec: refused.retryAfterSec, why: refused.rule } : null;
  }

  private tracked = false;

  private close(): void {
    if (this.phase === 'closed') return;
    this.socket.end();
    const s = this.socket;
    setTimeout(() => s.destroy(), CLOSE_GRACE_MS).unref();
    this.finish();
  }

  private destroy(): void {
    if (this.phase === 'spliced') return; // the splice owns the sockets now
    this.socket.destroy();
    this.finish();
  }

  private isClosed(): boolean {
    return this.phase === 'closed';
  }

  private finished = false;

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.tracked) this.env.connections.release(this);
    this.env.metrics.connections.dec({ listener: this.listener.name, state: this.phase === 'spliced' ? 'spliced' : 'preauth' });
    this.phase = 'closed';
    clearTimeout(this.deadline);
    this.relayed?.(null);
    this.resolveDone();
  }
}
