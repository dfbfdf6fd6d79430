// SMTP submission pre-auth state machine (RFC 6409, 5321, 3207 STARTTLS, 4954 AUTH): lines in,
// effects out. Pure: no sockets, no timers. MAIL, RCPT, DATA and BDAT are never accepted
// here; after AUTH the session splices and the backend MTA alone parses the transaction.
import { SASL_MAX_TOKEN_BYTES, SMTP_MAX_LINE_BYTES } from '../bounds.js';
import { LineReader } from '../line-reader.js';
import { answerLogin } from '../login-answer.js';
import type { CloseReason, Effect, GoodbyeReason, LoginResult, MachineOptions, ProtocolMachine } from '../protocol.js';
import { offeredMechanisms, relayedResponse, SaslExchange, type Credentials, type SaslMechanism, type SaslStep } from '../sasl.js';
import { backendMechanisms, ehlo, passThroughKeywords, R } from './replies.js';

/** relay: during a login, waiting for the client's answer to a challenge from the backend. */
type State = 'ready' | 'sasl' | 'login' | 'relay' | 'tls' | 'closed';
type Handler = (m: SmtpMachine, arg: string) => Effect[];

/** AUTH with an initial response may be far longer than an ordinary command (RFC 4954 §4). */
const MAX_AUTH_LINE_BYTES = SASL_MAX_TOKEN_BYTES + 32;

const COMMANDS = {
  EHLO: (m, arg) => m.ehlo(arg, true),
  HELO: (m, arg) => m.ehlo(arg, false),
  STARTTLS: (m, arg) => m.startTls(arg),
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

const send = (data: string): Effect => ({ type: 'send', data });

export class SmtpMachine implements ProtocolMachine {
  // RFC 5321 §4.5.3.1.4: 512 octets per command line; only AUTH (with its initial response)
  // and SASL responses may be longer (RFC 4954 §4). Longer lines are never buffered: close.
  private readonly reader = new LineReader((head) =>
    this.state === 'sasl' || this.state === 'relay' ? SASL_MAX_TOKEN_BYTES : head.subarray(0, 5).toString('latin1').toUpperCase() === 'AUTH ' ? MAX_AUTH_LINE_BYTES : SMTP_MAX_LINE_BYTES - 2,
  );
  private state: State = 'ready';
  private secure: boolean;
  /** EHLO (not HELO) seen since the greeting or the last STARTTLS. */
  private extended = false;
  private greeted = false;
  private badCommands = 0;
  private failedLogins = 0;
  private sasl: SaslExchange | null = null;
  private readonly mechanisms: SaslMechanism[];

  constructor(private readonly opts: MachineOptions) {
    this.secure = opts.tlsMode === 'implicit';
    this.mechanisms = offeredMechanisms(backendMechanisms(opts.backendCapabilities));
  }

  get hostname(): string {
    return this.opts.hostname;
  }

  get bufferedBytes(): number {
    return this.reader.bufferedBytes;
  }

  start(): Effect[] {
    return [send(R.greeting(this.hostname))];
  }

  push(chunk: Buffer): Effect[] {
    if (this.state === 'closed' || this.state === 'tls') return [];
    this.reader.push(chunk);
    return this.pump();
  }

  tlsStarted(): Effect[] {
    // RFC 3207 §4.2: forget everything learned before TLS; the client must EHLO again.
    this.reader.discard();
    this.secure = true;
    this.extended = false;
    this.greeted = false;
    this.state = 'ready';
    return [];
  }

  loginResult(result: LoginResult): Effect[] {
    const a = answerLogin(result, { limited: (s) => R.limited(this.hostname, s), unavailable: R.unavailable, authFailed: R.authFailed, tooManyFailures: R.tooManyFailures(this.hostname) }, this.failedLogins, this.opts.maxAuthAttempts);
    if (a.failed) this.failedLogins++;
    this.state = a.close ? 'closed' : 'ready';
    return a.close ? a.effects : [...a.effects, ...this.pump()];
  }

  loginChallenge(text: string): Effect[] {
    if (this.state !== 'login') return [];
    this.state = 'relay';
    return [send(R.challenge(text)), ...this.pump()];
  }

  takeBuffered(): Buffer {
    return this.reader.takeBuffered();
  }

  goodbye(reason: GoodbyeReason, retryAfterSec = 60): string {
    const h = this.hostname;
    return { timeout: R.timeout(h), shutdown: R.shutdown(h), busy: R.busy(h), limited: R.refused(h, retryAfterSec) }[reason];
  }

  private pump(): Effect[] {
    const out: Effect[] = [];
    while (this.state === 'ready' || this.state === 'sasl' || this.state === 'relay') {
      const ev = this.reader.next();
      if (!ev) break;
      if (ev.type === 'too-long') return [...out, ...this.close(R.lineTooLong + R.tooManyErrors(this.hostname), 'protocol-error')];
      if (this.state === 'relay') {
        this.state = 'login';
        out.push({ type: 'loginResponse', response: relayedResponse(ev.text) });
        continue;
      }
      out.push(...(this.state === 'sasl' ? this.saslStep(this.sasl!.respond(ev.text)) : this.command(ev.text)));
    }
    return out;
  }

  private command(line: string): Effect[] {
    const m = /^([A-Za-z]{1,16})(?: (.*))?$/.exec(line);
    const verb = m?.[1]!.toUpperCase() ?? '';
    // Only AUTH may exceed the RFC 5321 command line length.
    if (line.length > SMTP_MAX_LINE_BYTES - 2 && verb !== 'AUTH') return this.bad(R.lineTooLong);
    const handler = m ? (COMMANDS as Record<string, Handler>)[verb] : undefined;
    return handler ? handler(this, (m?.[2] ?? '').trim()) : this.bad(R.unknown);
  }

  bad(reply: string): Effect[] {
    if (++this.badCommands >= this.opts.maxBadCommands) return this.close(reply + R.tooManyErrors(this.hostname), 'too-many-errors');
    return [send(reply)];
  }

  close(text: string, reason: CloseReason): Effect[] {
    this.state = 'closed';
    return [send(text), { type: 'close', reason }];
  }

  private loginAllowed(): boolean {
    return this.secure || !this.opts.requireTls;
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

  startTls(arg: string): Effect[] {
    if (arg) return this.bad(R.syntax('STARTTLS'));
    if (this.secure) return this.bad(R.tlsActive);
    if (this.opts.tlsMode !== 'starttls') return this.bad(R.tlsUnavailable);
    // Plaintext pipelined behind STARTTLS must never run after the handshake (CVE-2011-0411).
    const discarded = this.reader.bufferedBytes;
    this.reader.discard();
    this.state = 'tls';
    return [send(R.startTls), { type: 'startTls', discarded }];
  }

  auth(arg: string): Effect[] {
    if (!this.greeted || !this.extended) return this.bad(R.needEhlo);
    if (!this.loginAllowed()) return this.bad(R.needTls);
    const [mech, initial, extra] = arg.split(' ');
    if (!mech || extra !== undefined) return this.bad(R.syntax('AUTH mechanism [initial-response]'));
    const { exchange, step } = SaslExchange.start(mech, initial ?? null, this.mechanisms);
    this.sasl = exchange;
    return this.saslStep(step);
  }

  private saslStep(step: SaslStep): Effect[] {
    if (step.kind === 'challenge') {
      this.state = 'sasl';
      return [send(R.challenge(step.text))];
    }
    this.sasl = null;
    this.state = 'ready';
    if (step.kind === 'done') return this.beginLogin(step.credentials);
    return this.bad(R.saslFailure[step.reason]);
  }

  private beginLogin(credentials: Credentials): Effect[] {
    this.state = 'login';
    return [{ type: 'login', credentials, context: { tag: '', hostname: this.hostname } }];
  }
}
