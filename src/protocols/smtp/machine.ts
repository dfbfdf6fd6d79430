// SMTP submission pre-auth state machine (RFC 6409, 5321, 3207 STARTTLS, 4954 AUTH): lines in,
// effects out. Pure: no sockets, no timers. MAIL, RCPT, DATA and BDAT are never accepted
// here; after AUTH the session splices and the backend MTA alone parses the transaction.
// The line, STARTTLS, SASL and login plumbing is LineMachine's, shared with POP3.
import { SASL_MAX_TOKEN_BYTES, SMTP_MAX_LINE_BYTES } from '../../bounds.js';
import { LineMachine, send, type LineReplies } from '../line-machine.js';
import { LineReader } from '../line-reader.js';
import type { Effect, MachineOptions } from '../protocol.js';
import { backendMechanisms, ehlo, passThroughKeywords, R } from './replies.js';

type Handler = (m: SmtpMachine, arg: string) => Effect[];

/** AUTH with an initial response may be far longer than an ordinary command (RFC 4954 §4). */
const MAX_AUTH_LINE_BYTES = SASL_MAX_TOKEN_BYTES + 32;

const COMMANDS = {
  EHLO: (m, arg) => m.ehlo(arg, true),
  HELO: (m, arg) => m.ehlo(arg, false),
  STARTTLS: (m, arg) => m.starttls(arg),
  AUTH: (m, arg) => m.auth(arg),
  NOOP: () => [send(R.ok)],
  RSET: () => [send(R.ok)],
  QUIT: (m) => m.close(R.quit(m.hostname), 'logout'),
  // A transaction needs a login first (RFC 6409 §4.3); these are never parsed further.
  MAIL: (m) => m.bad(R.authRequired),
  RCPT: (m) => m.bad(R.authRequired),
  DATA: (m) => m.bad(R.authRequired),
  BDAT: (m) => m.bad(R.authRequired),
} satisfies Record<string, Handler>;

function replies(host: string): LineReplies {
  return {
    limited: (s) => R.limited(host, s),
    unavailable: R.unavailable,
    authFailed: R.authFailed,
    tooManyFailures: R.tooManyFailures(host),
    startTls: R.startTls,
    tlsActive: R.tlsActive,
    tlsUnavailable: R.tlsUnavailable,
    challenge: R.challenge,
    saslFailure: R.saslFailure,
    // A line past every bound is not buffered: said once, then the connection closes.
    lineTooLong: R.lineTooLong + R.tooManyErrors(host),
    tooManyErrors: R.tooManyErrors(host),
    goodbye: { timeout: () => R.timeout(host), shutdown: () => R.shutdown(host), busy: () => R.busy(host), limited: (s) => R.refused(host, s), denied: () => R.denied(host) },
  };
}

export class SmtpMachine extends LineMachine {
  /** EHLO (not HELO) seen since the greeting or the last STARTTLS. */
  private extended = false;
  private greeted = false;

  constructor(opts: MachineOptions) {
    // RFC 5321 §4.5.3.1.4: 512 octets per command line; only AUTH (with its initial response)
    // and SASL responses may be longer (RFC 4954 §4). Longer lines are never buffered: close.
    const reader = new LineReader((head) =>
      this.state === 'sasl' || this.state === 'relay' ? SASL_MAX_TOKEN_BYTES : head.subarray(0, 5).toString('latin1').toUpperCase() === 'AUTH ' ? MAX_AUTH_LINE_BYTES : SMTP_MAX_LINE_BYTES - 2,
    );
    super(opts, reader, replies(opts.hostname), null, backendMechanisms(opts.backendCapabilities));
  }

  start(): Effect[] {
    return [send(R.greeting(this.hostname))];
  }

  protected command(line: string): Effect[] {
    const m = /^([A-Za-z]{1,16})(?: (.*))?$/.exec(line);
    const verb = m?.[1]!.toUpperCase() ?? '';
    // Only AUTH may exceed the RFC 5321 command line length.
    if (line.length > SMTP_MAX_LINE_BYTES - 2 && verb !== 'AUTH') return this.bad(R.lineTooLong);
    const handler = m ? (COMMANDS as Record<string, Handler>)[verb] : undefined;
    return handler ? handler(this, (m?.[2] ?? '').trim()) : this.bad(R.unknown);
  }

  /** RFC 3207 §4.2: after STARTTLS the client must EHLO again. */
  protected override forgetPlaintextState(): void {
    this.extended = false;
    this.greeted = false;
  }

  ehlo(arg: string, extended: boolean): Effect[] {
    if (!/^[\x21-\x7e]{1,255}$/.test(arg)) return this.bad(R.syntax(extended ? 'EHLO hostname' : 'HELO hostname'));
    this.greeted = true;
    this.extended = extended;
    if (!extended) return [send(R.helo(this.hostname))];
    const keywords = passThroughKeywords(this.opts.backendCapabilities);
    if (!this.secure && this.opts.tlsMode === 'starttls') keywords.push('STARTTLS');
    // RFC 3207 §4.1 / SECURITY-NOTES: no AUTH offered before TLS when TLS is required.
    if (this.loginAllowed()) keywords.push(`AUTH ${this.mechanisms.join(' ')}`);
    return [send(ehlo(this.hostname, keywords))];
  }

  starttls(arg: string): Effect[] {
    return this.startTls(arg ? R.syntax('STARTTLS') : null);
  }

  auth(arg: string): Effect[] {
    if (!this.greeted || !this.extended) return this.bad(R.needEhlo);
    if (!this.loginAllowed()) return this.bad(R.needTls);
    const [mech, initial, extra] = arg.split(' ');
    if (!mech || extra !== undefined) return this.bad(R.syntax('AUTH mechanism [initial-response]'));
    return this.startSasl(mech, initial ?? null);
  }
}
