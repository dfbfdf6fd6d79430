// POP3 AUTHORIZATION-state machine (RFC 1939 §4, 2449, 2595, 5034): lines in, effects out.
// Pure: no sockets, no timers; the session runs the effects. Nothing of the TRANSACTION state
// is handled here: after a login the session splices and the backend answers everything.
// The line, dispatch, STLS, SASL and login plumbing is LineMachine's, shared with SMTP.
import { POP3_MAX_LINE_BYTES } from '../../bounds.js';
import { COMMAND_RE, LineMachine } from '../line-machine.js';
import { send, type CommandTable } from '../preauth-machine.js';
import type { Effect, MachineOptions } from '../protocol.js';
import { backendMechanisms, capabilities, R, REPLIES } from './replies.js';
import { perList } from '../per-list.js';

const mechanismsOf = perList(backendMechanisms);

export class Pop3Machine extends LineMachine {
  /** Arguments are the words after the keyword, split at each space (RFC 1939 §3). USER and
   *  PASS take them all back as one: the rest of the line, spaces included. */
  private static readonly COMMANDS = {
    CAPA: { args: 0, usage: 'CAPA', run: (m) => [send(R.capa(m.caps()))] },
    QUIT: { args: 0, usage: 'QUIT', run: (m) => m.close(R.quit, 'logout') },
    STLS: { args: 0, usage: 'STLS', run: (m, tag) => m.startTls(tag) },
    USER: { needsTls: true, usage: 'USER name', run: (m, _, words) => m.user(words.join(' ')) },
    // No arity: PASS without a password first needs a USER to refuse (and forget).
    PASS: { needsTls: true, usage: 'PASS password', run: (m, _, words) => m.pass(words.join(' ')) },
    AUTH: { needsTls: true, args: [0, 2], usage: 'AUTH mechanism [initial-response]', run: (m, _, [mechanism, initial]) => m.auth(mechanism, initial) },
  } satisfies CommandTable<Pop3Machine, string[]>;

  /** The name from an accepted USER, waiting for PASS (RFC 1939 §7). */
  private pendingUser: Buffer | null = null;

  constructor(opts: MachineOptions) {
    super(opts, REPLIES, () => POP3_MAX_LINE_BYTES, mechanismsOf(opts.backendCapabilities));
  }

  start(): Effect[] {
    return [send(R.greeting)];
  }

  protected command(line: string): Effect[] {
    const m = COMMAND_RE.exec(line);
    const rest = m?.[2];
    return this.dispatch(Pop3Machine.COMMANDS, m ? m[1]!.toUpperCase() : '', '', rest === undefined ? [] : rest.split(' '));
  }

  /** A USER given in the clear is forgotten at STLS (RFC 2595 §4) and at the close. */
  protected override forgetPlaintextState(): void {
    this.pendingUser?.fill(0);
    this.pendingUser = null;
  }

  private caps(): string[] {
    return capabilities({
      offerStls: !this.secure && this.opts.tlsMode === 'starttls',
      loginAllowed: this.loginAllowed(),
      mechanisms: this.mechanisms,
      backend: this.opts.backendCapabilities,
    });
  }

  private user(name: string): Effect[] | null {
    if (!name) return null;
    // RFC 1939 §7: a new USER replaces the previous one. The whole rest of the line is the
    // name, as raw bytes; identity checks (controls, UTF-8) happen on the auth path.
    this.forgetPlaintextState();
    this.pendingUser = Buffer.from(name, 'latin1');
    return [send(R.userOk)];
  }

  private pass(password: string): Effect[] | null {
    const user = this.pendingUser;
    if (!user) return this.countBad(R.passWithoutUser);
    this.pendingUser = null;
    // RFC 1939 §7: the password is the rest of the line and may contain spaces.
    if (!password) {
      user.fill(0);
      return null;
    }
    return this.beginLogin('', { mechanism: 'USER', user, password: Buffer.from(password, 'latin1') });
  }

  private auth(mechanism: string | undefined, initial: string | undefined): Effect[] | null {
    // Bare AUTH lists the mechanisms (the pre-RFC 5034 convention many clients still probe).
    if (mechanism === undefined) return [send(R.mechanisms(this.mechanisms))];
    if (!mechanism || initial === '') return null;
    // SASL state never mixes with a pending USER (RFC 5034 §4: AUTH is a fresh start).
    this.forgetPlaintextState();
    return this.startSasl('', mechanism, initial ?? null);
  }
}
