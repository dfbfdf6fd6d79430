// IMAP pre-auth state machine: parser events in, effects out (RFC 9051 §6.1–6.2).
// Pure: no sockets, no timers; the session runs the effects it returns.
import { answerLogin } from '../login-answer.js';
import type { CloseReason, Effect, GoodbyeReason, LoginResult, MachineOptions, ProtocolMachine } from '../protocol.js';
import { offeredMechanisms, relayedResponse, SaslExchange, type Credentials, type SaslFailure, type SaslMechanism, type SaslStep } from '../sasl.js';
import { ImapParser, type ImapArg, type ImapEvent } from './parser.js';
import { backendMechanisms, capabilities, R } from './replies.js';

/** relay: during a login, waiting for the client's answer to a challenge from the backend. */
type State = 'ready' | 'sasl' | 'login' | 'relay' | 'tls' | 'closed';
type Handler = (m: ImapMachine, tag: string, args: ImapArg[]) => Effect[];

const COMMANDS = {
  CAPABILITY: (m, tag, args) => (args.length ? m.bad(tag, 'CAPABILITY takes no arguments') : [send(R.capability(tag, m.caps()))]),
  NOOP: (m, tag, args) => (args.length ? m.bad(tag, 'NOOP takes no arguments') : [send(R.ok(tag, 'NOOP'))]),
  LOGOUT: (m, tag) => m.close(R.logout(tag), 'logout'),
  // RFC 2971: answered locally; the client's fields are never believed or forwarded.
  ID: (m, tag, args) =>
    args.length === 1 && (args[0]!.kind === 'list' || (args[0]!.kind === 'atom' && args[0]!.value.toUpperCase() === 'NIL'))
      ? [send(R.id(tag))]
      : m.bad(tag, 'Invalid ID arguments'),
  STARTTLS: (m, tag, args) => m.startTls(tag, args),
  LOGIN: (m, tag, args) => m.login(tag, args),
  AUTHENTICATE: (m, tag, args) => m.authenticate(tag, args),
} satisfies Record<string, Handler>;

const send = (data: string): Effect => ({ type: 'send', data });

function astring(arg: ImapArg | undefined): Buffer | null {
  if (!arg) return null;
  if (arg.kind === 'string') return arg.value;
  if (arg.kind === 'atom') return Buffer.from(arg.value, 'latin1');
  return null;
}

export class ImapMachine implements ProtocolMachine {
  private readonly parser = new ImapParser();
  private state: State = 'ready';
  private secure: boolean;
  private badCommands = 0;
  private failedLogins = 0;
  private sasl: { tag: string; exchange: SaslExchange } | null = null;
  private loginTag = '';
  private readonly mechanisms: SaslMechanism[];

  constructor(private readonly opts: MachineOptions) {
    this.secure = opts.tlsMode === 'implicit';
    this.mechanisms = offeredMechanisms(backendMechanisms(opts.backendCapabilities));
  }

  get bufferedBytes(): number {
    return this.parser.bufferedBytes;
  }

  caps(): string {
    return capabilities({ secure: this.secure, tlsMode: this.opts.tlsMode, requireTls: this.opts.requireTls, backend: this.opts.backendCapabilities, mechanisms: this.mechanisms });
  }

  start(): Effect[] {
    return [send(R.greeting(this.caps()))];
  }

  push(chunk: Buffer): Effect[] {
    if (this.state === 'closed' || this.state === 'tls') return [];
    this.parser.push(chunk);
    return this.pump();
  }

  tlsStarted(): Effect[] {
    // RFC 9051 §6.2.1: everything learned before TLS is forgotten; nothing buffered survives.
    this.parser.discard();
    this.secure = true;
    this.state = 'ready';
    return [];
  }

  loginResult(result: LoginResult): Effect[] {
    const a = answerLogin(result, { limited: (s) => R.limited(this.loginTag, s), unavailable: R.unavailable(this.loginTag), authFailed: R.authFailed(this.loginTag), tooManyFailures: R.byeFailures }, this.failedLogins, this.opts.maxAuthAttempts);
    if (a.failed) this.failedLogins++;
    this.state = a.close ? 'closed' : 'ready';
    return a.close ? a.effects : [...a.effects, ...this.pump()];
  }

  loginChallenge(text: string): Effect[] {
    if (this.state !== 'login') return [];
    this.state = 'relay';
    this.parser.expectLine();
    return [send(R.challenge(text)), ...this.pump()];
  }

  takeBuffered(): Buffer {
    return this.parser.takeBuffered();
  }

  goodbye(reason: GoodbyeReason, retryAfterSec = 60): string {
    return { timeout: R.byeTimeout, shutdown: R.byeShutdown, busy: R.byeBusy, limited: R.byeLimited(retryAfterSec) }[reason];
  }

  private pump(): Effect[] {
    const out: Effect[] = [];
    while (this.state === 'ready' || this.state === 'sasl' || this.state === 'relay') {
      const ev = this.parser.next();
      if (!ev) break;
      out.push(...this.onEvent(ev));
    }
    return out;
  }

  private onEvent(ev: ImapEvent): Effect[] {
    switch (ev.type) {
      case 'continue': {
        // Before TLS a login is refused anyway: say so instead of "+", so the client never
        // sends its password in the clear.
        const refused = (ev.verb === 'LOGIN' || ev.verb === 'AUTHENTICATE') && this.plaintextRefused(ev.tag);
        if (!refused) return [send(R.continueLiteral)];
        this.parser.refuseLiteral();
        return refused;
      }
      case 'bad':
        return ev.fatal ? this.close(R.bad(ev.tag, ev.text) + R.byeErrors, 'protocol-error') : this.bad(ev.tag, ev.text);
      case 'line':
        if (this.state === 'relay') {
          this.state = 'login';
          return [{ type: 'loginResponse', response: relayedResponse(ev.text) }];
        }
        return this.saslStep(this.sasl!.tag, this.sasl!.exchange.respond(ev.text));
      case 'command': {
        const handler = (COMMANDS as Record<string, Handler>)[ev.verb];
        return handler ? handler(this, ev.tag, ev.args) : this.bad(ev.tag, 'Unknown or not allowed command before login');
      }
    }
  }

  bad(tag: string, text: string): Effect[] {
    if (++this.badCommands >= this.opts.maxBadCommands) return this.close(R.bad(tag, text) + R.byeErrors, 'too-many-errors');
    return [send(R.bad(tag, text))];
  }

  close(text: string, reason: CloseReason): Effect[] {
    this.state = 'closed';
    return [send(text), { type: 'close', reason }];
  }

  startTls(tag: string, args: ImapArg[]): Effect[] {
    if (args.length) return this.bad(tag, 'STARTTLS takes no arguments');
    if (this.secure) return this.bad(tag, 'TLS is already active');
    if (this.opts.tlsMode !== 'starttls') return this.bad(tag, 'STARTTLS is not available here');
    // Plaintext pipelined behind STARTTLS must never run after the handshake (CVE-2021-33515).
    const discarded = this.parser.bufferedBytes;
    this.parser.discard();
    this.state = 'tls';
    return [send(R.startTls(tag)), { type: 'startTls', discarded }];
  }

  private plaintextRefused(tag: string): Effect[] | null {
    if (this.secure || !this.opts.requireTls) return null;
    return this.countBad(R.privacyRequired(tag));
  }

  private countBad(reply: string): Effect[] {
    if (++this.badCommands >= this.opts.maxBadCommands) return this.close(reply + R.byeErrors, 'too-many-errors');
    return [send(reply)];
  }

  login(tag: string, args: ImapArg[]): Effect[] {
    const refused = this.plaintextRefused(tag);
    if (refused) return refused;
    const user = astring(args[0]);
    const password = astring(args[1]);
    if (args.length !== 2 || !user || !password) return this.bad(tag, 'LOGIN expects user name and password');
    return this.beginLogin(tag, { mechanism: 'IMAP-LOGIN', user, password });
  }

  authenticate(tag: string, args: ImapArg[]): Effect[] {
    const refused = this.plaintextRefused(tag);
    if (refused) return refused;
    const [mech, initial] = args;
    if (!mech || mech.kind !== 'atom' || args.length > 2 || (initial && initial.kind !== 'atom')) {
      return this.bad(tag, 'AUTHENTICATE expects a mechanism and an optional initial response');
    }
    const { exchange, step } = SaslExchange.start(mech.value, initial?.kind === 'atom' ? initial.value : null, this.mechanisms);
    this.sasl = exchange ? { tag, exchange } : null;
    return this.saslStep(tag, step);
  }

  private saslStep(tag: string, step: SaslStep): Effect[] {
    if (step.kind === 'challenge') {
      this.state = 'sasl';
      this.parser.expectLine();
      return [send(R.challenge(step.text))];
    }
    this.sasl = null;
    this.state = 'ready';
    if (step.kind === 'done') return this.beginLogin(tag, step.credentials);
    return this.saslFailure(tag, step.reason);
  }

  private saslFailure(tag: string, reason: SaslFailure): Effect[] {
    switch (reason) {
      case 'unknown-mechanism':
        return this.countBad(R.no(tag, 'CANNOT', 'Unsupported authentication mechanism.'));
      case 'authzid-unsupported':
        return this.countBad(R.no(tag, 'AUTHORIZATIONFAILED', 'Authorization identity not supported.'));
      case 'bad-plain':
      case 'bad-oauth':
        return this.countBad(R.authFailed(tag));
      case 'cancelled':
        // RFC 9051 §6.2.2: a cancelled exchange gets a tagged BAD.
        return this.bad(tag, 'Authentication cancelled.');
      case 'bad-base64':
      case 'too-long':
        return this.bad(tag, 'Invalid SASL response.');
    }
  }

  private beginLogin(tag: string, credentials: Credentials): Effect[] {
    this.state = 'login';
    this.loginTag = tag;
    return [{ type: 'login', credentials, context: { tag, hostname: this.opts.hostname } }];
  }
}
