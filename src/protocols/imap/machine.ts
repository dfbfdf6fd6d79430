// IMAP pre-auth state machine: parser events in, effects out (RFC 9051 §6.1–6.2).
// Pure: no sockets, no timers; the session runs the effects it returns. States, TLS, the
// verdict and the error budget are PreauthMachine's, shared with POP3 and SMTP.
import type { LoginReplies } from '../login-answer.js';
import { PreauthMachine, send } from '../preauth-machine.js';
import type { Effect, GoodbyeReason, MachineOptions } from '../protocol.js';
import { relayedResponse, SaslExchange, type Credentials, type SaslFailure, type SaslStep } from '../sasl.js';
import { ImapParser, type ImapArg, type ImapEvent } from './parser.js';
import { backendMechanisms, capabilities, R } from './replies.js';

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

function astring(arg: ImapArg | undefined): Buffer | null {
  if (!arg) return null;
  if (arg.kind === 'string') return arg.value;
  if (arg.kind === 'atom') return Buffer.from(arg.value, 'latin1');
  return null;
}

export class ImapMachine extends PreauthMachine {
  private readonly parser: ImapParser;
  private sasl: { tag: string; exchange: SaslExchange } | null = null;
  private loginTag = '';
  protected readonly tooManyErrors = R.byeErrors;

  constructor(opts: MachineOptions) {
    const parser = new ImapParser();
    super(opts, parser, backendMechanisms(opts.backendCapabilities));
    this.parser = parser;
  }

  caps(): string {
    return capabilities({ secure: this.secure, tlsMode: this.opts.tlsMode, requireTls: this.opts.requireTls, backend: this.opts.backendCapabilities, mechanisms: this.mechanisms });
  }

  start(): Effect[] {
    return [send(R.greeting(this.caps()))];
  }

  goodbye(reason: GoodbyeReason, retryAfterSec = 60): string {
    return { timeout: R.byeTimeout, shutdown: R.byeShutdown, busy: R.byeBusy, limited: R.byeLimited(retryAfterSec), denied: R.byeDenied }[reason];
  }

  protected loginReplies(): LoginReplies {
    const tag = this.loginTag;
    return { limited: (s) => R.limited(tag, s), unavailable: R.unavailable(tag), authFailed: R.authFailed(tag), tooManyFailures: R.byeFailures };
  }

  protected relayChallenge(text: string): string {
    this.parser.expectLine();
    return R.challenge(text);
  }

  protected step(): Effect[] | null {
    const ev = this.parser.next();
    return ev ? this.onEvent(ev) : null;
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
    return this.countBad(R.bad(tag, text));
  }

  startTls(tag: string, args: ImapArg[]): Effect[] {
    if (args.length) return this.bad(tag, 'STARTTLS takes no arguments');
    const refusal = this.tlsRefusal();
    if (refusal) return this.bad(tag, refusal === 'active' ? 'TLS is already active' : 'STARTTLS is not available here');
    return this.beginTls(R.startTls(tag));
  }

  private plaintextRefused(tag: string): Effect[] | null {
    return this.loginAllowed() ? null : this.countBad(R.privacyRequired(tag));
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

  protected override beginLogin(tag: string, credentials: Credentials): Effect[] {
    this.loginTag = tag;
    return super.beginLogin(tag, credentials);
  }
}
