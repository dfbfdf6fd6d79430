// SMTP submission pre-auth state machine (RFC 6409, 5321, 3207 STARTTLS, 4954 AUTH): lines in,
// effects out. Pure: no sockets, no timers. MAIL, RCPT, DATA and BDAT are never accepted
// here; after AUTH the session splices and the backend MTA alone parses the transaction.
// The line, dispatch, STARTTLS, SASL and login plumbing is LineMachine's, shared with POP3.
import { SASL_MAX_TOKEN_BYTES, SMTP_MAX_LINE_BYTES } from '../../bounds.js';
import { COMMAND_RE, LineMachine } from '../line-machine.js';
import { send, type CommandTable } from '../preauth-machine.js';
import type { Effect, MachineLoginContext, MachineOptions } from '../protocol.js';
import { backendMechanisms, ehlo, passThroughKeywords, R, replies } from './replies.js';
import { perList } from '../per-list.js';

const mechanismsOf = perList(backendMechanisms);

/** AUTH with an initial response may be far longer than an ordinary command (RFC 4954 §4). */
const MAX_AUTH_LINE_BYTES = SASL_MAX_TOKEN_BYTES + 32;

/** RFC 5321 §4.5.3.1.4: 512 octets per command line, CRLF included; only AUTH (with its
 *  initial response) may be longer (RFC 4954 §4). Longer lines are never buffered: close. */
const commandLimit = (head: Buffer) =>
  head.subarray(0, 5).toString('latin1').toUpperCase() === 'AUTH ' ? MAX_AUTH_LINE_BYTES : SMTP_MAX_LINE_BYTES - 2;

export class SmtpMachine extends LineMachine {
  /** Arguments are the words after the keyword, trimmed, split at each space. */
  private static readonly COMMANDS = {
    EHLO: { args: [1, 1], usage: 'EHLO hostname', run: (m, _, [host]) => m.ehlo(host!, true) },
    HELO: { args: [1, 1], usage: 'HELO hostname', run: (m, _, [host]) => m.ehlo(host!, false) },
    STARTTLS: { args: 0, usage: 'STARTTLS', run: (m, tag) => m.startTls(tag) },
    AUTH: {
      requires: (m) => (m.extended ? null : R.needEhlo),
      needsTls: true,
      args: [1, 2],
      usage: 'AUTH mechanism [initial-response]',
      run: (m, tag, [mechanism, initial]) => m.startSasl(tag, mechanism!, initial ?? null),
    },
    NOOP: { run: () => [send(R.ok)] },
    RSET: { run: () => [send(R.ok)] },
    QUIT: { run: (m) => m.close(R.quit(m.hostname), 'logout') },
    // A transaction needs a login first (RFC 6409 §4.3); these are never parsed further.
    MAIL: { run: (m) => m.countBad(R.authRequired) },
    RCPT: { run: (m) => m.countBad(R.authRequired) },
    DATA: { run: (m) => m.countBad(R.authRequired) },
    BDAT: { run: (m) => m.countBad(R.authRequired) },
  } satisfies CommandTable<SmtpMachine, string[]>;

  /** EHLO (not HELO) seen since the greeting or the last STARTTLS. */
  private extended = false;
  /** The name the client gave in its last EHLO/HELO since then, for the backend (XCLIENT
   *  HELO=, the EHLO mailgate sends it). */
  private helo: string | undefined;

  constructor(opts: MachineOptions) {
    super(opts, replies(opts.hostname), commandLimit, mechanismsOf(opts.backendCapabilities));
  }

  start(): Effect[] {
    return [send(R.greeting(this.hostname))];
  }

  protected command(line: string): Effect[] {
    const m = COMMAND_RE.exec(line);
    // RFC 5321 §2.3.8: CR only ever as half of a CRLF; a line holding a bare CR is no command.
    const verb = m && !line.includes('\r') ? m[1]!.toUpperCase() : '';
    // Only AUTH may exceed the RFC 5321 command line length.
    if (line.length > SMTP_MAX_LINE_BYTES - 2 && verb !== 'AUTH') return this.countBad(R.lineTooLong);
    const rest = (m?.[2] ?? '').trim();
    return this.dispatch(SmtpMachine.COMMANDS, verb, '', rest ? rest.split(' ') : []);
  }

  /** RFC 3207 §4.2: after STARTTLS the client must EHLO again. */
  protected override forgetPlaintextState(): void {
    this.extended = false;
    this.helo = undefined;
  }

  protected override loginContext(tag: string): MachineLoginContext {
    return this.helo === undefined ? { tag } : { tag, helo: this.helo };
  }

  private ehlo(host: string, extended: boolean): Effect[] | null {
    if (!/^[\x21-\x7e]{1,255}$/.test(host)) return null;
    this.extended = extended;
    this.helo = host;
    if (!extended) return [send(R.helo(this.hostname))];
    const keywords = passThroughKeywords(this.opts.backendCapabilities);
    if (!this.secure && this.opts.tlsMode === 'starttls') keywords.push('STARTTLS');
    // RFC 3207 §4.1 / SECURITY-NOTES: no AUTH offered before TLS when TLS is required.
    if (this.loginAllowed()) keywords.push(`AUTH ${this.mechanisms.join(' ')}`);
    return [send(ehlo(this.hostname, keywords))];
  }
}
