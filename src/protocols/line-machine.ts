// What the two line-based pre-auth machines (POP3, SMTP submission) add to PreauthMachine: one
// command per line, SASL exchanges whose responses may be longer than a command line, STLS /
// STARTTLS answered from a shared check. Pure. Each protocol supplies its replies and its
// command table; IMAP, whose commands carry tags and literals, has its own parser.
import { SASL_MAX_TOKEN_BYTES } from '../bounds.js';
import type { LineReader } from './line-reader.js';
import type { LoginReplies } from './login-answer.js';
import { PreauthMachine, send } from './preauth-machine.js';
import type { Effect, GoodbyeReason, MachineOptions } from './protocol.js';
import { relayedResponse, SaslExchange, type SaslFailure, type SaslStep } from './sasl.js';

export { send };

/** The replies the shared transitions give, in the protocol's own words. */
export interface LineReplies extends LoginReplies {
  startTls: string;
  tlsActive: string;
  tlsUnavailable: string;
  challenge(text: string): string;
  saslFailure: Record<SaslFailure, string>;
  /** A line past its bound: said, then the connection closes. */
  lineTooLong: string;
  /** Appended to the reply that uses up the error budget, before the close. */
  tooManyErrors: string;
  goodbye: Record<GoodbyeReason, (retryAfterSec: number) => string>;
}

export abstract class LineMachine extends PreauthMachine {
  protected sasl: SaslExchange | null = null;
  protected readonly tooManyErrors: string;

  constructor(
    opts: MachineOptions,
    protected readonly reader: LineReader,
    private readonly replies: LineReplies,
    /** The reader's bound outside SASL exchanges; null when the reader derives its own. */
    private readonly commandLimit: number | null,
    backendMechanisms: readonly string[],
  ) {
    super(opts, reader, backendMechanisms);
    this.tooManyErrors = replies.tooManyErrors;
  }

  /** One command line (never a SASL response). */
  protected abstract command(line: string): Effect[];

  goodbye(reason: GoodbyeReason, retryAfterSec = 60): string {
    return this.replies.goodbye[reason](retryAfterSec);
  }

  bad(reply: string): Effect[] {
    return this.countBad(reply);
  }

  protected loginReplies(): LoginReplies {
    return this.replies;
  }

  protected relayChallenge(text: string): string {
    this.setSaslLimit(true);
    return this.replies.challenge(text);
  }

  /** STARTTLS / STLS; `syntaxError`: the reply when the command had arguments. */
  protected startTls(syntaxError: string | null): Effect[] {
    if (syntaxError) return this.bad(syntaxError);
    const refusal = this.tlsRefusal();
    if (refusal) return this.bad(refusal === 'active' ? this.replies.tlsActive : this.replies.tlsUnavailable);
    return this.beginTls(this.replies.startTls);
  }

  /** AUTH mechanism [initial-response], once the protocol's own preconditions hold. */
  protected startSasl(mech: string, initial: string | null): Effect[] {
    const { exchange, step } = SaslExchange.start(mech, initial, this.mechanisms);
    this.sasl = exchange;
    return this.saslStep(step);
  }

  protected step(): Effect[] | null {
    const ev = this.reader.next();
    if (!ev) return null;
    if (ev.type === 'too-long') {
      this.endSasl();
      return this.close(this.replies.lineTooLong, 'protocol-error');
    }
    if (this.state === 'relay') {
      this.endSasl();
      this.state = 'login';
      return [{ type: 'loginResponse', response: relayedResponse(ev.text) }];
    }
    return this.state === 'sasl' ? this.saslStep(this.sasl!.respond(ev.text)) : this.command(ev.text);
  }

  private saslStep(step: SaslStep): Effect[] {
    if (step.kind === 'challenge') {
      this.state = 'sasl';
      this.setSaslLimit(true);
      return [send(this.replies.challenge(step.text))];
    }
    this.endSasl();
    this.state = 'ready';
    if (step.kind === 'done') return this.beginLogin('', step.credentials);
    return this.bad(this.replies.saslFailure[step.reason]);
  }

  private endSasl(): void {
    this.sasl = null;
    this.setSaslLimit(false);
  }

  /** A SASL response line may be far longer than a command (RFC 5034 §4, RFC 4954 §4). */
  private setSaslLimit(sasl: boolean): void {
    if (this.commandLimit !== null) this.reader.setLimit(sasl ? SASL_MAX_TOKEN_BYTES : this.commandLimit);
  }
}
