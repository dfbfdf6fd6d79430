// POP3 AUTHORIZATION-state machine (RFC 1939 §4, 2449, 2595, 5034): lines in, effects out.
// Pure: no sockets, no timers; the session runs the effects. Nothing of the TRANSACTION state
// is handled here: after a login the session splices and the backend answers everything.
import { POP3_MAX_LINE_BYTES, SASL_MAX_TOKEN_BYTES } from '../bounds.js';
import { LineReader } from '../line-reader.js';
import { answerLogin } from '../login-answer.js';
import type { CloseReason, Effect, GoodbyeReason, LoginResult, MachineOptions, ProtocolMachine } from '../protocol.js';
import { offeredMechanisms, relayedResponse, SaslExchange, type Credentials, type SaslMechanism, type SaslStep } from '../sasl.js';
import { backendMechanisms, capabilities, R } from './replies.js';

/** relay: during a login, waiting for the client's answer to a challenge from the backend. */
type State = 'ready' | 'sasl' | 'login' | 'relay' | 'tls' | 'closed';
/** `arg`: everything after the first space (null when there is none), unchanged. */
type Handler = (m: Pop3Machine, arg: string | null) => Effect[];

const COMMANDS = {
  CAPA: (m, arg) => (arg === null ? [send(R.capa(m.caps()))] : m.bad(R.syntax('CAPA'))),
  QUIT: (m, arg) => (arg === null ? m.close(R.quit, 'logout') : m.bad(R.syntax('QUIT'))),
  STLS: (m, arg) => m.startTls(arg),
  USER: (m, arg) => m.user(arg),
  PASS: (m, arg) => m.pass(arg),
  AUTH: (m, arg) => m.auth(arg),
} satisfies Record<string, Handler>;

const send = (data: string): Effect => ({ type: 'send', data });

/** RFC 1939 §3: a keyword of 3–4 characters, then a single space and the arguments. A longer
 *  bound here only keeps unknown words out of the table lookup. */
const COMMAND_RE = /^([A-Za-z]{1,16})(?: (.*))?$/s;

export class Pop3Machine implements ProtocolMachine {
  private readonly reader = new LineReader(POP3_MAX_LINE_BYTES);
  private state: State = 'ready';
  private secure: boolean;
  private badCommands = 0;
  private failedLogins = 0;
  private sasl: SaslExchange | null = null;
  /** The name from an accepted USER, waiting for PASS (RFC 1939 §7). */
  private pendingUser: Buffer | null = null;
  private readonly mechanisms: SaslMechanism[];

  constructor(private readonly opts: MachineOptions) {
    this.secure = opts.tlsMode === 'implicit';
    this.mechanisms = offeredMechanisms(backendMechanisms(opts.backendCapabilities));
  }

  get bufferedBytes(): number {
    return this.reader.bufferedBytes;
  }

  caps(): string[] {
    return capabilities({
      offerStls: !this.secure && this.opts.tlsMode === 'starttls',
      loginAllowed: this.loginAllowed(),
      mechanisms: this.mechanisms,
      backend: this.opts.backendCapabilities,
    });
  }

  start(): Effect[] {
    return [send(R.greeting)];
  }

  push(chunk: Buffer): Effect[] {
    if (this.state === 'closed' || this.state === 'tls') return [];
    this.reader.push(chunk);
    return this.pump();
  }

  tlsStarted(): Effect[] {
    // RFC 2595 §4: forget everything learned before TLS (a USER given in the clear included).
    this.reader.discard();
    this.forgetUser();
    this.secure = true;
    this.state = 'ready';
    return [];
  }

  loginResult(result: LoginResult): Effect[] {
    const a = answerLogin(result, { limited: R.limited, unavailable: R.unavailable, authFailed: R.authFailed, tooManyFailures: R.byeFailures }, this.failedLogins, this.opts.maxAuthAttempts);
    if (a.failed) this.failedLogins++;
    this.state = a.close ? 'closed' : 'ready';
    return a.close ? a.effects : [...a.effects, ...this.pump()];
  }

  loginChallenge(text: string): Effect[] {
    if (this.state !== 'login') return [];
    this.state = 'relay';
    this.reader.setLimit(SASL_MAX_TOKEN_BYTES);
    return [send(R.challenge(text)), ...this.pump()];
  }

  takeBuffered(): Buffer {
    return this.reader.takeBuffered();
  }

  goodbye(reason: GoodbyeReason, retryAfterSec = 60): string {
    return { timeout: R.byeTimeout, shutdown: R.byeShutdown, busy: R.byeBusy, limited: R.byeLimited(retryAfterSec) }[reason];
  }

  private pump(): Effect[] {
    const out: Effect[] = [];
    while (this.state === 'ready' || this.state === 'sasl' || this.state === 'relay') {
      const ev = this.reader.next();
      if (!ev) break;
      if (ev.type === 'too-long') {
        this.endSasl();
        return [...out, ...this.close(R.lineTooLong, 'protocol-error')];
      }
      if (this.state === 'relay') {
        this.endSasl();
        this.state = 'login';
        out.push({ type: 'loginResponse', response: relayedResponse(ev.text) });
        continue;
      }
      out.push(...(this.state === 'sasl' ? this.saslStep(this.sasl!.respond(ev.text)) : this.command(ev.text)));
    }
    return out;
  }

  private command(line: string): Effect[] {
    const m = COMMAND_RE.exec(line);
    const verb = m ? m[1]!.toUpperCase() : '';
    if (!m || !Object.hasOwn(COMMANDS, verb)) return this.bad(R.unknown);
    return (COMMANDS as Record<string, Handler>)[verb]!(this, m[2] ?? null);
  }

  bad(reply: string): Effect[] {
    if (++this.badCommands >= this.opts.maxBadCommands) return this.close(reply + R.byeErrors, 'too-many-errors');
    return [send(reply)];
  }

  close(text: string, reason: CloseReason): Effect[] {
    this.state = 'closed';
    this.forgetUser();
    return [send(text), { type: 'close', reason }];
  }

  private loginAllowed(): boolean {
    return this.secure || !this.opts.requireTls;
  }

  startTls(arg: string | null): Effect[] {
    if (arg !== null) return this.bad(R.syntax('STLS'));
    if (this.secure) return this.bad(R.tlsActive);
    if (this.opts.tlsMode !== 'starttls') return this.bad(R.tlsUnavailable);
    // Plaintext pipelined behind STLS must never run after the handshake (CVE-2011-0411,
    // CVE-2021-33515): it is dropped unread and only counted.
    const discarded = this.reader.bufferedBytes;
    this.reader.discard();
    this.state = 'tls';
    return [send(R.stls), { type: 'startTls', discarded }];
  }

  user(arg: string | null): Effect[] {
    if (!this.loginAllowed()) return this.bad(R.plaintextRefused);
    if (!arg) return this.bad(R.syntax('USER name'));
    // RFC 1939 §7: a new USER replaces the previous one. The whole rest of the line is the
    // name, as raw bytes; identity checks (controls, UTF-8) happen on the auth path.
    this.forgetUser();
    this.pendingUser = Buffer.from(arg, 'latin1');
    return [send(R.userOk)];
  }

  pass(arg: string | null): Effect[] {
    if (!this.loginAllowed()) return this.bad(R.plaintextRefused);
    const user = this.pendingUser;
    if (!user) return this.bad(R.passWithoutUser);
    this.pendingUser = null;
    // RFC 1939 §7: the password is the rest of the line and may contain spaces.
    if (!arg) {
      user.fill(0);
      return this.bad(R.syntax('PASS password'));
    }
    return this.beginLogin({ mechanism: 'USER', user, password: Buffer.from(arg, 'latin1') });
  }

  auth(arg: string | null): Effect[] {
    if (!this.loginAllowed()) return this.bad(R.plaintextRefused);
    // Bare AUTH lists the mechanisms (the pre-RFC 5034 convention many clients still probe).
    if (arg === null) return [send(R.mechanisms(this.mechanisms))];
    const [mech, initial, extra] = arg.split(' ');
    if (!mech || extra !== undefined || initial === '') return this.bad(R.syntax('AUTH mechanism [initial-response]'));
    // SASL state never mixes with a pending USER (RFC 5034 §4: AUTH is a fresh start).
    this.forgetUser();
    const { exchange, step } = SaslExchange.start(mech, initial ?? null, this.mechanisms);
    this.sasl = exchange;
    return this.saslStep(step);
  }

  private saslStep(step: SaslStep): Effect[] {
    if (step.kind === 'challenge') {
      this.state = 'sasl';
      // A SASL response line may be far longer than a command (RFC 5034 §4).
      this.reader.setLimit(SASL_MAX_TOKEN_BYTES);
      return [send(R.challenge(step.text))];
    }
    this.endSasl();
    this.state = 'ready';
    if (step.kind === 'done') return this.beginLogin(step.credentials);
    return this.bad(R.saslFailure[step.reason]);
  }

  private endSasl(): void {
    this.sasl = null;
    this.reader.setLimit(POP3_MAX_LINE_BYTES);
  }

  private forgetUser(): void {
    this.pendingUser?.fill(0);
    this.pendingUser = null;
  }

  private beginLogin(credentials: Credentials): Effect[] {
    this.state = 'login';
    return [{ type: 'login', credentials, context: { tag: '', hostname: this.opts.hostname } }];
  }
}
