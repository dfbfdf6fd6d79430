// One client connection: runs its protocol machine's effects (the only place that does),
// owns the socket, the TLS upgrade, the pre-auth deadline, and the hand-off to the splice.
import type { Socket } from 'node:net';
import tls from 'node:tls';
import type { Clock } from '../clock.js';
import type { BackendConfig, ListenerConfig } from '../config/schema.js';
import type { Policy } from '../limits/policy.js';
import type { Logger } from '../logging/logger.js';
import type { Effect, MailProtocol, ProtocolMachine } from '../protocols/protocol.js';
import { splice, type Splice } from '../backend/splice.js';
import type { Metrics } from '../metrics/metrics.js';
import { runAuth } from './auth-path.js';

/** Replies queued to a client that does not read before we stop reading its commands. */
const MAX_PENDING_WRITE_BYTES = 64 * 1024;
/** Grace for a closing socket to flush its goodbye before it is destroyed. */
const CLOSE_GRACE_MS = 2_000;

export interface SessionEnv {
  policy: Policy;
  metrics: Metrics;
  clock: Clock;
  tls: tls.SecureContext | null;
  maxBadCommands: number;
  maxAuthAttempts: number;
  timeouts: { preauth: number; tlsHandshake: number; idle: number };
  /** The backend's advertised capabilities as last probed (empty when unknown). */
  capabilities(backendName: string): readonly string[];
}

type Phase = 'tls-handshake' | 'preauth' | 'login' | 'spliced' | 'closed';

export class Session {
  private socket: Socket;
  private readonly machine: ProtocolMachine;
  private phase: Phase = 'preauth';
  private readonly deadline: NodeJS.Timeout;
  private spliced: Splice | null = null;
  readonly clientIp: string;
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(
    raw: Socket,
    private readonly listener: ListenerConfig,
    private readonly protocol: MailProtocol,
    private readonly backend: BackendConfig,
    private readonly env: SessionEnv,
    private readonly log: Logger,
  ) {
    this.socket = raw;
    this.clientIp = raw.remoteAddress ?? '';
    this.done = new Promise((r) => (this.resolveDone = r));
    this.machine = protocol.createMachine({
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

  async start(): Promise<void> {
    if (this.listener.tls === 'implicit') {
      if (!(await this.upgrade())) return;
    }
    this.attach();
    this.run(this.machine.start());
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
          this.socket.write(e.data);
          if (this.socket.writableLength > MAX_PENDING_WRITE_BYTES) {
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
      }
    }
  }

  private async upgrade(): Promise<boolean> {
    const raw = this.socket;
    raw.pause();
    raw.removeAllListeners('data');
    raw.removeAllListeners('end');
    this.phase = 'tls-handshake';
    const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: this.env.tls! });
    const ok = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), this.env.timeouts.tlsHandshake);
      secure.once('secure', () => {
        clearTimeout(timer);
        resolve(true);
      });
      secure.once('error', () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    if (!ok || this.isClosed()) {
      this.env.metrics.tlsFailures.inc({ listener: this.listener.name });
      this.log.info({ event: 'tls.failed' }, 'TLS handshake failed or timed out');
      secure.destroy();
      this.destroy();
      return false;
    }
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
      backend: this.backend,
      clientIp: this.clientIp,
      credentials: e.credentials,
      context: e.context,
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
    client.write(outcome.clientReply);
    if (outcome.leftover.length) client.write(outcome.leftover);
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

  /** End a pre-auth session with the protocol's goodbye (deadline, shutdown). */
  goodbye(reason: 'timeout' | 'shutdown'): void {
    if (this.phase === 'spliced') {
      if (reason === 'shutdown') this.spliced?.destroy();
      return;
    }
    if (this.phase === 'closed') return;
    if (this.phase !== 'tls-handshake') this.socket.write(this.machine.goodbye(reason));
    this.close();
  }

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
    this.env.metrics.connections.dec({ listener: this.listener.name, state: this.phase === 'spliced' ? 'spliced' : 'preauth' });
    this.phase = 'closed';
    clearTimeout(this.deadline);
    this.resolveDone();
  }
}
