// What every pre-auth machine (IMAP, POP3, SMTP submission) shares, whatever its syntax: the
// states, TLS forgetting what came before it, the login verdict answered by the one rule set in
// login-answer.ts, a backend challenge relayed to the client, the error budget, the goodbye.
// Pure: bytes and verdicts in, effects out. Each protocol brings its input (a parser or a line
// reader), its replies and its commands.
import { answerLogin, type LoginReplies } from './login-answer.js';
import type { CloseReason, Effect, GoodbyeReason, LoginResult, MachineOptions, ProtocolMachine } from './protocol.js';
import { offeredMechanisms, type Credentials, type SaslMechanism } from './sasl.js';

/** relay: during a login, waiting for the client's answer to a challenge from the backend. */
export type PreauthState = 'ready' | 'sasl' | 'login' | 'relay' | 'tls' | 'closed';

export const send = (data: string): Effect => ({ type: 'send', data });

/** The client's bytes before login: framed by the protocol's parser or line reader. */
export interface PreauthInput {
  push(chunk: Buffer): void;
  /** Drop everything buffered (STARTTLS, TLS started). */
  discard(): void;
  /** Hand over the bytes after the last complete command, raw (the login succeeded). */
  takeBuffered(): Buffer;
  readonly bufferedBytes: number;
}

export abstract class PreauthMachine implements ProtocolMachine {
  protected state: PreauthState = 'ready';
  protected secure: boolean;
  protected readonly mechanisms: SaslMechanism[];
  private badCommands = 0;
  private failedLogins = 0;

  constructor(
    protected readonly opts: MachineOptions,
    protected readonly input: PreauthInput,
    /** The SASL mechanisms the backend advertises, read from its CAPABILITY, CAPA or EHLO. */
    backendMechanisms: readonly string[],
  ) {
    this.secure = opts.tlsMode === 'implicit';
    this.mechanisms = offeredMechanisms(backendMechanisms);
  }

  abstract start(): Effect[];

  abstract goodbye(reason: GoodbyeReason, retryAfterSec?: number): string;

  /** Handle the next complete input event (a command, a SASL or relayed line); null when the
   *  input holds none. */
  protected abstract step(): Effect[] | null;

  /** The verdict replies for the login under way (IMAP's carry its tag). */
  protected abstract loginReplies(): LoginReplies;

  /** The continuation carrying a backend challenge; the input must then yield one raw line. */
  protected abstract relayChallenge(text: string): string;

  /** What the error budget's last reply is followed by, before the close. */
  protected abstract readonly tooManyErrors: string;

  /** Forget what must not outlive TLS or the connection besides buffered bytes. */
  protected forgetPlaintextState(): void {}

  get hostname(): string {
    return this.opts.hostname;
  }

  get bufferedBytes(): number {
    return this.input.bufferedBytes;
  }

  push(chunk: Buffer): Effect[] {
    if (this.state === 'closed' || this.state === 'tls') return [];
    this.input.push(chunk);
    return this.pump();
  }

  tlsStarted(): Effect[] {
    // RFC 9051 §6.2.1, RFC 2595 §4, RFC 3207 §4.2: everything learned before TLS is forgotten.
    this.input.discard();
    this.forgetPlaintextState();
    this.secure = true;
    this.state = 'ready';
    return [];
  }

  loginResult(result: LoginResult): Effect[] {
    const a = answerLogin(result, this.loginReplies(), this.failedLogins, this.opts.maxAuthAttempts);
    if (a.failed) this.failedLogins++;
    this.state = a.close ? 'closed' : 'ready';
    return a.close ? a.effects : [...a.effects, ...this.pump()];
  }

  loginChallenge(text: string): Effect[] {
    if (this.state !== 'login') return [];
    this.state = 'relay';
    return [send(this.relayChallenge(text)), ...this.pump()];
  }

  takeBuffered(): Buffer {
    return this.input.takeBuffered();
  }

  /** Handle what the input has complete while the state takes input. */
  protected pump(): Effect[] {
    const out: Effect[] = [];
    while (this.state === 'ready' || this.state === 'sasl' || this.state === 'relay') {
      const effects = this.step();
      if (!effects) break;
      out.push(...effects);
    }
    return out;
  }

  close(text: string, reason: CloseReason): Effect[] {
    this.state = 'closed';
    this.forgetPlaintextState();
    return [send(text), { type: 'close', reason }];
  }

  /** A refused command's reply, counted against the error budget (maxBadCommands). */
  protected countBad(reply: string): Effect[] {
    if (++this.badCommands >= this.opts.maxBadCommands) return this.close(reply + this.tooManyErrors, 'too-many-errors');
    return [send(reply)];
  }

  protected loginAllowed(): boolean {
    return this.secure || !this.opts.requireTls;
  }

  /** Why STARTTLS cannot start here, or null. */
  protected tlsRefusal(): 'active' | 'unavailable' | null {
    if (this.secure) return 'active';
    return this.opts.tlsMode === 'starttls' ? null : 'unavailable';
  }

  /** Plaintext pipelined behind STARTTLS must never run after the handshake (CVE-2011-0411,
   *  CVE-2021-33515): it is dropped unread and only counted. */
  protected beginTls(reply: string): Effect[] {
    const discarded = this.input.bufferedBytes;
    this.input.discard();
    this.state = 'tls';
    return [send(reply), { type: 'startTls', discarded }];
  }

  protected beginLogin(tag: string, credentials: Credentials): Effect[] {
    this.state = 'login';
    return [{ type: 'login', credentials, context: { tag } }];
  }
}
