// POP3 AUTHORIZATION-state machine (RFC 1939 §4, 2449, 2595, 5034): lines in, effects out.
// Pure: no sockets, no timers; the session runs the effects. Nothing of the TRANSACTION state
// is handled here: after a login the session splices and the backend answers everything.
// The line, STLS, SASL and login plumbing is LineMachine's, shared with SMTP.
import { POP3_MAX_LINE_BYTES } from '../../bounds.js';
import { LineMachine, send, type LineReplies } from '../line-machine.js';
import { LineReader } from '../line-reader.js';
import type { Effect, MachineOptions } from '../protocol.js';
import { backendMechanisms, capabilities, R } from './replies.js';

/** `arg`: everything after the first space (null when there is none), unchanged. */
type Handler = (m: Pop3Machine, arg: string | null) => Effect[];

const COMMANDS = {
  CAPA: (m, arg) => (arg === null ? [send(R.capa(m.caps()))] : m.bad(R.syntax('CAPA'))),
  QUIT: (m, arg) => (arg === null ? m.close(R.quit, 'logout') : m.bad(R.syntax('QUIT'))),
  STLS: (m, arg) => m.stls(arg),
  USER: (m, arg) => m.user(arg),
  PASS: (m, arg) => m.pass(arg),
  AUTH: (m, arg) => m.auth(arg),
} satisfies Record<string, Handler>;

/** RFC 1939 §3: a keyword of 3–4 characters, then a single space and the arguments. A longer
 *  bound here only keeps unknown words out of the table lookup. */
const COMMAND_RE = /^([A-Za-z]{1,16})(?: (.*))?$/s;

const REPLIES: LineReplies = {
  limited: R.limited,
  unavailable: R.unavailable,
  authFailed: R.authFailed,
  tooManyFailures: R.byeFailures,
  startTls: R.stls,
  tlsActive: R.tlsActive,
  tlsUnavailable: R.tlsUnavailable,
  challenge: R.challenge,
  saslFailure: R.saslFailure,
  lineTooLong: R.lineTooLong,
  tooManyErrors: R.byeErrors,
  goodbye: { timeout: () => R.byeTimeout, shutdown: () => R.byeShutdown, busy: () => R.byeBusy, limited: R.byeLimited, denied: () => R.byeDenied },
};

export class Pop3Machine extends LineMachine {
  /** The name from an accepted USER, waiting for PASS (RFC 1939 §7). */
  private pendingUser: Buffer | null = null;

  constructor(opts: MachineOptions) {
    super(opts, new LineReader(POP3_MAX_LINE_BYTES), REPLIES, POP3_MAX_LINE_BYTES, backendMechanisms(opts.backendCapabilities));
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

  protected command(line: string): Effect[] {
    const m = COMMAND_RE.exec(line);
    const verb = m ? m[1]!.toUpperCase() : '';
    if (!m || !Object.hasOwn(COMMANDS, verb)) return this.bad(R.unknown);
    return (COMMANDS as Record<string, Handler>)[verb]!(this, m[2] ?? null);
  }

  /** A USER given in the clear is forgotten at STLS (RFC 2595 §4) and at the close. */
  protected override forgetPlaintextState(): void {
    this.pendingUser?.fill(0);
    this.pendingUser = null;
  }

  stls(arg: string | null): Effect[] {
    return this.startTls(arg !== null ? R.syntax('STLS') : null);
  }

  user(arg: string | null): Effect[] {
    if (!this.loginAllowed()) return this.bad(R.plaintextRefused);
    if (!arg) return this.bad(R.syntax('USER name'));
    // RFC 1939 §7: a new USER replaces the previous one. The whole rest of the line is the
    // name, as raw bytes; identity checks (controls, UTF-8) happen on the auth path.
    this.forgetPlaintextState();
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
    return this.beginLogin('', { mechanism: 'USER', user, password: Buffer.from(arg, 'latin1') });
  }

  auth(arg: string | null): Effect[] {
    if (!this.loginAllowed()) return this.bad(R.plaintextRefused);
    // Bare AUTH lists the mechanisms (the pre-RFC 5034 convention many clients still probe).
    if (arg === null) return [send(R.mechanisms(this.mechanisms))];
    const [mech, initial, extra] = arg.split(' ');
    if (!mech || extra !== undefined || initial === '') return this.bad(R.syntax('AUTH mechanism [initial-response]'));
    // SASL state never mixes with a pending USER (RFC 5034 §4: AUTH is a fresh start).
    this.forgetPlaintextState();
    return this.startSasl(mech, initial ?? null);
  }
}
