// What every pre-auth machine (IMAP, POP3, SMTP submission) shares, whatever its syntax: the
// states and every transition between them, the one dispatcher of the command tables (the
// arity and TLS need each command declares), STARTTLS and TLS forgetting what came before it,
// the SASL exchange, a backend challenge relayed to the client, the login verdict answered by
// the one rule set in login-answer.ts, the error budget, the goodbye, and how many commands one
// call handles (the session's turn). Pure: bytes and verdicts in, effects out. Each protocol
// brings its input (a parser or a line reader), its replies and its command table.
import { answerLogin, type LoginReplies } from './login-answer.js';
import type { CloseReason, Effect, GoodbyeReason, LoginResult, MachineLoginContext, MachineOptions, ProtocolMachine } from './protocol.js';
import {
  offeredMechanisms,
  relayedResponse,
  SaslExchange,
  type Credentials,
  type SaslFailure,
  type SaslMechanism,
  type SaslStep,
} from './sasl.js';
import { perList } from './per-list.js';

/** Per backend mechanism list (each protocol's list is itself kept per probed list). */
const offeredFor = perList(offeredMechanisms);

/** sasl: our challenge awaits the client's answer; relay: during a login, the backend's does. */
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

/** A reply that carries the command's tag (IMAP); the line protocols' ignore it. */
type Tagged = (tag: string) => string;

/** What the shared transitions say, in the protocol's own words. */
export interface PreauthReplies {
  /** A verb not in the command table. */
  unknown: Tagged;
  /** Arguments that do not fit; `usage`: the command spec's text. */
  syntax(tag: string, usage: string): string;
  /** A login command before TLS where TLS is required. */
  privacy: Tagged;
  startTls: Tagged;
  tlsActive: Tagged;
  tlsUnavailable: Tagged;
  /** A SASL challenge, ours or the backend's (base64 text). */
  challenge(text: string): string;
  saslFailure(reason: SaslFailure, tag: string): string;
  /** The verdict replies for the login started under `tag`. */
  login(tag: string): LoginReplies;
  /** Appended to the reply that uses up the error budget, before the close. */
  tooManyErrors: string;
  goodbye: Record<GoodbyeReason, (retryAfterSec: number) => string>;
}

/** One command, declared as data the dispatcher enforces (as wildduck's imap-core does). */
export type CommandSpec<M, A extends readonly unknown[]> = {
  /** A step of the protocol's dialogue that must come first (SMTP: EHLO before AUTH): the
   *  refusal while it is missing, else null. Checked before anything else. */
  requires?: (m: M, tag: string) => string | null;
  /** A login command: refused with the privacy reply before TLS where TLS is required (and an
   *  IMAP literal in it gets that reply instead of "+"). Checked before the arguments. */
  needsTls?: boolean;
} & (
  | { args?: undefined; usage?: undefined; run(m: M, tag: string, args: A): Effect[] }
  | {
      /** How many arguments it takes: none, or [min, max]; any number when absent. */
      args?: 0 | readonly [min: number, max: number];
      /** The syntax reply's text (IMAP: after BAD; POP3 and SMTP: after "Syntax:"). */
      usage: string;
      /** Null when the arguments are malformed: the syntax reply follows. */
      run(m: M, tag: string, args: A): Effect[] | null;
    }
);

export type CommandTable<M, A extends readonly unknown[]> = Readonly<Record<string, CommandSpec<M, A>>>;

/** The spec of `verb`, an own entry only: a client's verb must never reach Object.prototype. */
function lookup<M, A extends readonly unknown[]>(table: CommandTable<M, A>, verb: string): CommandSpec<M, A> | undefined {
  return Object.hasOwn(table, verb) ? table[verb] : undefined;
}

export abstract class PreauthMachine implements ProtocolMachine {
  /** Private, so every transition stays in this file. */
  private state: PreauthState = 'ready';
  private tlsOn: boolean;
  protected readonly mechanisms: readonly SaslMechanism[];
  private sasl: { tag: string; exchange: SaslExchange } | null = null;
  private loginTag = '';
  private badCommands = 0;
  private failedLogins = 0;
  /** Input events handled per call (limitTurns); the last call stopped there (pending). */
  private turnBudget = Infinity;
  private stoppedAtBudget = false;

  constructor(
    protected readonly opts: MachineOptions,
    private readonly input: PreauthInput,
    private readonly replies: PreauthReplies,
    /** The SASL mechanisms the backend advertises, read from its CAPABILITY, CAPA or EHLO. */
    backendMechanisms: readonly string[],
  ) {
    this.tlsOn = opts.tlsMode === 'implicit';
    this.mechanisms = offeredFor(backendMechanisms);
  }

  abstract start(): Effect[];

  /** Handle the next complete input event (a command, an answer to a challenge); null when
   *  the input holds none. */
  protected abstract step(): Effect[] | null;

  /** The next line answers a challenge (state sasl or relay) and may be as long as a SASL
   *  response: IMAP's parser must be told; a line reader's bound follows awaitingAnswer. */
  protected abstract expectSaslLine(): void;

  /** Forget what must not outlive TLS or the connection besides buffered bytes. */
  protected forgetPlaintextState(): void {}

  get bufferedBytes(): number {
    return this.input.bufferedBytes;
  }

  push(chunk: Buffer): Effect[] {
    if (this.state === 'closed' || this.state === 'tls') return [];
    this.input.push(chunk);
    return this.pump();
  }

  limitTurns(events: number): void {
    this.turnBudget = events;
  }

  get pending(): boolean {
    return this.stoppedAtBudget && (this.state === 'ready' || this.awaitingAnswer);
  }

  resume(): Effect[] {
    return this.pump();
  }

  tlsStarted(): Effect[] {
    // RFC 9051 §6.2.1, RFC 2595 §4, RFC 3207 §4.2: everything learned before TLS is forgotten.
    this.input.discard();
    this.forgetPlaintextState();
    this.tlsOn = true;
    this.state = 'ready';
    return [];
  }

  loginResult(result: LoginResult): Effect[] {
    const a = answerLogin(result, this.replies.login(this.loginTag), this.failedLogins, this.opts.maxAuthAttempts);
    if (a.failed) this.failedLogins++;
    this.state = a.close ? 'closed' : 'ready';
    return a.close ? a.effects : [...a.effects, ...this.pump()];
  }

  loginChallenge(text: string): Effect[] {
    if (this.state !== 'login') return [];
    this.state = 'relay';
    this.expectSaslLine();
    return [send(this.replies.challenge(text)), ...this.pump()];
  }

  takeBuffered(): Buffer {
    return this.input.takeBuffered();
  }

  goodbye(reason: GoodbyeReason, retryAfterSec = 60): string {
    return this.replies.goodbye[reason](retryAfterSec);
  }

  /** TLS is on: implicit, or started with STARTTLS. */
  protected get secure(): boolean {
    return this.tlsOn;
  }

  protected get hostname(): string {
    return this.opts.hostname;
  }

  /** The next line answers a challenge, ours or the backend's: no command, and as long as a
   *  SASL response may be. */
  protected get awaitingAnswer(): boolean {
    return this.state === 'sasl' || this.state === 'relay';
  }

  /** Handle what the input has complete while the state takes input, turnBudget events at most. */
  private pump(): Effect[] {
    const out: Effect[] = [];
    this.stoppedAtBudget = false;
    for (let handled = 0; this.state === 'ready' || this.awaitingAnswer; handled++) {
      this.stoppedAtBudget = handled >= this.turnBudget;
      if (this.stoppedAtBudget) break;
      const effects = this.step();
      if (!effects) break;
      out.push(...effects);
    }
    return out;
  }

  /** Runs `verb` from `table` once the checks its spec declares hold, in this order: the step
   *  it requires, TLS, the argument count; any refusal counts against the error budget. */
  protected dispatch<A extends readonly unknown[]>(table: CommandTable<this, A>, verb: string, tag: string, args: A): Effect[] {
    const spec = lookup(table, verb);
    if (!spec) return this.countBad(this.replies.unknown(tag));
    const refusal = spec.requires?.(this, tag) ?? (this.breachesTls(spec) ? this.replies.privacy(tag) : null);
    if (refusal) return this.countBad(refusal);
    if (spec.usage === undefined) return spec.run(this, tag, args);
    const fits = spec.args === undefined || (spec.args === 0 ? args.length === 0 : args.length >= spec.args[0] && args.length <= spec.args[1]);
    return (fits ? spec.run(this, tag, args) : null) ?? this.countBad(this.replies.syntax(tag, spec.usage));
  }

  /** The privacy refusal, counted, when `verb` is a login command and TLS is required but not
   *  yet started; else null. */
  protected refuseBeforeTls<A extends readonly unknown[]>(table: CommandTable<this, A>, verb: string, tag: string): Effect[] | null {
    const spec = lookup(table, verb);
    return spec && this.breachesTls(spec) ? this.countBad(this.replies.privacy(tag)) : null;
  }

  private breachesTls(spec: { needsTls?: boolean }): boolean {
    return spec.needsTls === true && !this.loginAllowed();
  }

  protected close(text: string, reason: CloseReason): Effect[] {
    this.state = 'closed';
    this.sasl = null;
    this.forgetPlaintextState();
    return [send(text), { type: 'close', reason }];
  }

  /** A refused command's reply, counted against the error budget (maxBadCommands). */
  protected countBad(reply: string): Effect[] {
    if (++this.badCommands >= this.opts.maxBadCommands) return this.close(reply + this.replies.tooManyErrors, 'too-many-errors');
    return [send(reply)];
  }

  protected loginAllowed(): boolean {
    return this.secure || !this.opts.requireTls;
  }

  /** STARTTLS / STLS, its arguments already checked. Plaintext pipelined behind it must never
   *  run after the handshake (CVE-2011-0411, CVE-2021-33515): it is dropped unread and only
   *  counted. */
  protected startTls(tag: string): Effect[] {
    if (this.secure) return this.countBad(this.replies.tlsActive(tag));
    if (this.opts.tlsMode !== 'starttls') return this.countBad(this.replies.tlsUnavailable(tag));
    const discarded = this.input.bufferedBytes;
    this.input.discard();
    this.state = 'tls';
    return [send(this.replies.startTls(tag)), { type: 'startTls', discarded }];
  }

  /** AUTHENTICATE / AUTH with one of the offered mechanisms; `initial`: the initial response
   *  (RFC 4959 SASL-IR, RFC 5034 §4, RFC 4954 §4), "=" when empty. */
  protected startSasl(tag: string, mechanism: string, initial: string | null): Effect[] {
    const { exchange, step } = SaslExchange.start(mechanism, initial, this.mechanisms);
    this.sasl = exchange ? { tag, exchange } : null;
    return this.saslStep(tag, step);
  }

  /** A line answering a challenge: ours in a SASL exchange, or the backend's during a login,
   *  whose answer goes to the backend checked ("*" or strict base64, RFC 7628 §3.2.3). */
  protected answer(text: string): Effect[] {
    if (this.state === 'relay') {
      this.state = 'login';
      return [{ type: 'loginResponse', response: relayedResponse(text) }];
    }
    const { tag, exchange } = this.sasl!;
    return this.saslStep(tag, exchange.respond(text));
  }

  private saslStep(tag: string, step: SaslStep): Effect[] {
    if (step.kind === 'challenge') {
      this.state = 'sasl';
      this.expectSaslLine();
      return [send(this.replies.challenge(step.text))];
    }
    this.sasl = null;
    this.state = 'ready';
    if (step.kind === 'done') return this.beginLogin(tag, step.credentials);
    return this.countBad(this.replies.saslFailure(step.reason, tag));
  }

  /** What the backend replay is told about this login besides the credentials; a protocol
   *  adds what its client said before (SMTP: the EHLO name). */
  protected loginContext(tag: string): MachineLoginContext {
    return { tag };
  }

  protected beginLogin(tag: string, credentials: Credentials): Effect[] {
    this.loginTag = tag;
    this.state = 'login';
    return [{ type: 'login', credentials, context: this.loginContext(tag) }];
  }
}
