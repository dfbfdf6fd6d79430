// One client connection: its lifecycle (one phase, changed in one place), the effect loop of
// its protocol machine (the only place that runs effects), and the login it orchestrates.
// Admission, the TLS handshake, the PROXY header, when the client is read (client-flow.ts) and
// the splice hand-off live in their own modules; the socket is owned here until the splice.
import type { Socket } from 'node:net';
import type { ListenerConfig } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import type { Effect, GoodbyeReason, ProtocolMachine } from '../protocols/protocol.js';
import type { ClientAddress } from '../backend/types.js';
import { handOver } from '../backend/splice.js';
import { offersChunking, submissionRelay } from '../backend/smtp-splice.js';
import type { ProtocolBinding } from '../registry.js';
import { admit, reportRefusal } from './admission.js';
import { authAttempt, type AuthOutcome } from './auth-path.js';
import { ClientFlow, type FlowHost } from './client-flow.js';
import { machineOptions } from './machine-options.js';
import { cancelDeadline, DeadlineEntry, startDeadline } from './deadlines.js';
import { SplicedSession } from './live-sessions.js';
import { acceptProxyHeader } from './proxy-header.js';
import { clientAddress, sessionLogger, type Proxied } from './session-client.js';
import type { SessionEnv } from './env.js';
import { handshake, reportInjection } from './client-tls.js';

/** Grace for a closing socket to flush its goodbye before it is destroyed. */
const CLOSE_GRACE_MS = 2_000;

/** proxy-header → (tls-handshake) → preauth ⇄ login → spliced; any → closed. The connections
 *  gauge counts every phase before spliced as `preauth`. */
type Phase = 'proxy-header' | 'tls-handshake' | 'preauth' | 'login' | 'spliced' | 'closed';

export class Session extends DeadlineEntry implements FlowHost {
  private phase: Phase = 'preauth';
  private socket: Socket;
  /** Who the client is: the socket's peer, or the PROXY header's source once read. */
  private client: ClientAddress;
  /** The session's child logger, made at its first line (most connections never log one). */
  private logger: Logger | null = null;
  private proxied: Proxied | null = null;
  private readonly machine: ProtocolMachine;
  private readonly flow: ClientFlow;
  /** The client key connection limits count, fixed from admission to release. */
  private key: string | null = null;
  private spliced: SplicedSession | null = null;
  /** Set while a backend's challenge waits for the client's answer (askClient). */
  private relayed: ((response: string | null) => void) | null = null;

  constructor(
    raw: Socket,
    private readonly listener: ListenerConfig,
    private readonly protocol: ProtocolBinding,
    private readonly env: SessionEnv,
    private readonly parentLog: Logger,
    sessionId: string,
    /** Told once, when the session has ended (a callback, not a promise: 0.25 KiB less each). */
    private readonly onEnded: (s: Session) => void,
  ) {
    super();
    this.socket = raw;
    this.client = clientAddress(raw, sessionId, listener);
    if (parentLog.isLevelEnabled('debug')) this.log.debug({ event: 'session.open' }, 'connection');
    this.machine = protocol.protocol.createMachine(machineOptions(listener, env));
    this.flow = new ClientFlow(this.machine, this);
    env.metrics.connections.inc({ listener: listener.name, state: 'preauth' });
    // Absolute: not reset by traffic, so a byte every few seconds does not keep a client here.
    startDeadline(this, env.timeouts.preauth);
    raw.setNoDelay(true);
    raw.on('error', this.ended).on('close', this.ended);
  }

  get state(): Phase {
    return this.phase;
  }

  /** The client's address as limits and logs see it. */
  get clientIp(): string {
    return this.client.ip;
  }

  /** Connection limits (TrackedConnection): counted per client key once the client is known
   *  (admission comes after the PROXY header). */
  get clientKey(): string {
    return (this.key ??= this.env.clientKey(this.client.ip));
  }

  get evictable(): boolean {
    return this.phase === 'preauth' || this.phase === 'tls-handshake' || this.phase === 'proxy-header';
  }

  async start(): Promise<void> {
    if (this.listener.proxyProtocol && !(await this.proxyHeader())) return;
    const admission = await admit(this, this.protocol.protocol.name, this.client.ip, this.env, () => this.log);
    if (this.isClosed()) return;
    const cut = admission.kind === 'crowdsec' && this.listener.tls === 'implicit'; // no handshake for a CrowdSec ban: a TCP close (README)
    if (this.listener.tls === 'implicit' && !cut && !(await this.upgrade())) return;
    if (admission.kind !== 'welcome') {
      const { reason, retryAfterSec } = reportRefusal(admission, this.listener.name, this.env, this.log);
      return cut ? this.destroy() : this.goodbye(reason, retryAfterSec);
    }
    this.attach();
    this.run(this.machine.start());
    // Resumes the socket, paused after a PROXY header (it does not resume by itself).
    this.flow.update();
  }

  /** End a pre-auth session with the protocol's goodbye (deadline, shutdown, limits). */
  goodbye(reason: GoodbyeReason, retryAfterSec?: number): void {
    if (this.phase === 'spliced' && reason === 'shutdown') this.spliced?.destroy();
    if (this.phase === 'spliced' || this.phase === 'closed') return;
    // Nothing was said yet: a balancer mid-header is just cut, a client mid-handshake closed.
    if (this.phase === 'proxy-header') return this.destroy();
    if (this.phase !== 'tls-handshake') this.socket.write(this.machine.goodbye(reason, retryAfterSec));
    this.close();
  }

  evict(): void {
    this.log.info({ event: 'session.evicted' }, 'dropped to make room under limits.connections.total');
    this.goodbye('busy');
  }

  /** The one place the phase changes, with what each change entails. */
  private enter(next: Phase): void {
    const was = this.phase;
    if (was === 'closed' || was === next) return;
    this.phase = next;
    const { connections } = this.env.metrics;
    if (next === 'spliced' || next === 'closed') {
      this.flow.stop();
      cancelDeadline(this);
    }
    if (next === 'spliced') {
      connections.dec({ listener: this.listener.name, state: 'preauth' });
      connections.inc({ listener: this.listener.name, state: 'spliced' });
      this.env.connections.spliced?.(this); // never evicted for limits.connections.total now
    } else if (next === 'closed') {
      connections.dec({ listener: this.listener.name, state: was === 'spliced' ? 'spliced' : 'preauth' });
      this.env.connections.release(this); // a no-op unless admission gave this session a slot
      this.relayed?.(null);
      if (this.parentLog.isLevelEnabled('debug')) this.log.debug({ event: 'session.close' }, 'closed');
      this.onEnded(this);
    }
  }

  /** Behind a load balancer: the client is who the PROXY header says. */
  private async proxyHeader(): Promise<boolean> {
    this.enter('proxy-header');
    const header = await acceptProxyHeader(this.socket, this.env.isTrustedProxy(this.socket.remoteAddress), () => this.log);
    if (!header || this.isClosed()) {
      this.destroy();
      return false;
    }
    const balancer = this.client.ip;
    if (header.kind === 'proxy') {
      const { source, destination } = header;
      this.client = { ...this.client, ip: source.ip, port: source.port, localIp: destination.ip, localPort: destination.port };
    }
    const proxyHeader = header.kind === 'local' ? 'local' : `v${header.version}`;
    if (this.logger) this.logger = this.logger.child({ ip: this.client.ip, port: this.client.port, proxyHeader });
    else this.proxied = { proxy: balancer, proxyHeader };
    this.enter('preauth');
    return true;
  }

  private attach(afterHandshake = false): void {
    this.flow.attach(this.socket, afterHandshake);
    this.socket.on('end', this.ended);
  }

  /** Replies left unread past the deadline (FlowHost): the goodbye while it reaches the client, else cut. */
  unreadTooLong(unread: number, goodbye = true): void {
    this.log.info({ event: 'session.close', reason: 'replies not read', unread, queued: this.socket.writableLength }, 'client does not read its replies; dropped');
    return goodbye ? this.goodbye('timeout') : this.destroy();
  }

  /** FlowHost: the client's input is taken before login, or while a login waits for the
   *  client's answer to a backend's challenge. */
  reading(): boolean {
    return this.phase === 'preauth' || this.relayed !== null;
  }

  /** The effect loop (FlowHost's run). */
  run(effects: Effect[]): void {
    for (const e of effects) {
      if (this.isClosed()) return;
      switch (e.type) {
        case 'send':
          if (!this.flow.send(e.data)) return this.unreadTooLong(this.socket.writableLength, false);
          break;
        case 'close':
          return this.close();
        case 'startTls':
          reportInjection(this.env, this.listener.name, this.log, e.discarded);
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

  /** The TLS handshake on this connection; false (and the session closed) when it fails. */
  private async upgrade(): Promise<boolean> {
    this.enter('tls-handshake');
    const done = await handshake(this.socket, this.env, this.listener.name, this.log);
    if (!done || this.isClosed()) {
      done?.secure.destroy();
      this.destroy();
      return false;
    }
    this.logger = done.log;
    this.enter('preauth');
    this.socket = done.secure;
    done.secure.on('error', () => this.destroy());
    done.secure.on('close', () => this.destroy());
    return true;
  }

  private async startTls(): Promise<void> {
    this.enter('tls-handshake'); // no more plaintext read from here
    this.socket.pause();
    // Let the OK reach the client before the handshake starts.
    await new Promise<void>((r) => this.socket.write('', () => r()));
    if (this.isClosed() || !(await this.upgrade())) return;
    this.attach(true);
    this.run(this.machine.tlsStarted());
    this.flow.update();
  }

  /** Runs the auth path, relaying a backend's challenge to the client when it asks, then
   *  answers the machine or hands the connection to the splice. */
  private async login(e: Extract<Effect, { type: 'login' }>): Promise<void> {
    this.enter('login');
    this.flow.update();
    const context = { ...e.context, client: this.client, hostname: this.listener.hostname };
    const attempt = authAttempt(this.env, this.log, { backend: this.listener.backend, protocol: this.protocol, clientIp: this.client.ip, credentials: e.credentials, context });
    let step = await attempt.next();
    while (!step.done) step = await attempt.next(await this.askClient(step.value.relay));
    const outcome: AuthOutcome = step.value;
    if (this.isClosed()) {
      if (outcome.kind === 'ok') outcome.socket.destroy();
      return;
    }
    if (outcome.kind !== 'ok') {
      this.enter('preauth');
      this.run(this.machine.loginResult(outcome));
      this.flow.update();
      return;
    }
    this.enter('spliced');
    const sending = this.listener.protocol === 'smtp' ? this.env.sending : undefined;
    const relay = sending ? submissionRelay({ limits: sending, user: outcome.user, log: this.log, metrics: this.env.metrics, chunking: offersChunking(this.env.capabilities(this.listener.backend)) }) : undefined;
    const splice = handOver(this.socket, outcome, this.machine.takeBuffered(), this.env.timeouts.idle, relay);
    this.spliced = new SplicedSession(splice, this.socket, this.client, this.listener, outcome.user);
    // Not awaited: this frame (the attempt, its outcome, the backend's last chunk) ends here.
    void this.spliced.run(this.env.sessions, this.env.metrics, this.log).then(() => this.enter('closed'));
  }

  /** During a login, a backend's challenge goes to the client and its one answer line comes
   *  back (a loginResponse effect), or null once the session has ended. */
  private askClient(challenge: string): Promise<string | null> {
    if (this.isClosed()) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.relayed = (response) => {
        this.relayed = null;
        this.flow.update();
        resolve(response);
      };
      this.run(this.machine.loginChallenge(challenge));
      this.flow.update();
    });
  }

  private close(): void {
    if (this.isClosed()) return;
    const s = this.socket;
    s.end();
    setTimeout(() => s.destroy(), CLOSE_GRACE_MS).unref();
    this.enter('closed');
  }

  private destroy(): void {
    if (this.phase === 'spliced') return; // the splice owns the sockets now
    this.socket.destroy();
    this.enter('closed');
  }

  private get log(): Logger {
    return (this.logger ??= sessionLogger(this.parentLog, this.listener, this.client, this.proxied));
  }

  /** One listener for the client socket's error, close and end, made once per session. */
  private readonly ended = (): void => this.destroy();

  private isClosed(): boolean {
    return this.phase === 'closed';
  }
}
