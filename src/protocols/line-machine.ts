// What the two line-based pre-auth machines (POP3, SMTP submission) add to PreauthMachine: one
// command per line, split by one rule, and a line bound that follows the state (an answer to a
// SASL challenge may be far longer than a command). Pure. Each protocol supplies its replies,
// its command table and how its arguments split; IMAP, whose commands carry tags and literals,
// has its own parser.
import { SASL_MAX_TOKEN_BYTES } from '../bounds.js';
import { LineReader } from './line-reader.js';
import { PreauthMachine, type PreauthReplies } from './preauth-machine.js';
import type { Effect, MachineOptions } from './protocol.js';

export interface LineReplies extends PreauthReplies {
  /** A line past its bound: said, then the connection closes. */
  lineTooLong: string;
}

/** RFC 1939 §3, RFC 5321 §4.1.1: a keyword, then a single space and the arguments. Keywords
 *  are 3–4 letters; the longer bound here only keeps unknown words out of the table lookup.
 *  The arguments may hold a bare CR (`s`): POP3 keeps it, SMTP refuses the line. */
export const COMMAND_RE = /^([A-Za-z]{1,16})(?: (.*))?$/s;

export abstract class LineMachine extends PreauthMachine {
  private readonly reader: LineReader;
  private readonly lineTooLong: string;

  constructor(
    opts: MachineOptions,
    replies: LineReplies,
    /** The longest command line, CRLF excluded, from the line's first bytes. */
    commandLimit: (head: Buffer) => number,
    backendMechanisms: readonly string[],
  ) {
    // A SASL response may be far longer than a command (RFC 5034 §4, RFC 4954 §4).
    const reader = new LineReader((head) => (this.awaitingAnswer ? SASL_MAX_TOKEN_BYTES : commandLimit(head)));
    super(opts, reader, replies, backendMechanisms);
    this.reader = reader;
    this.lineTooLong = replies.lineTooLong;
  }

  /** One command line (never an answer to a challenge). */
  protected abstract command(line: string): Effect[];

  /** Nothing to tell the reader: its bound follows the state (see the constructor). */
  protected expectSaslLine(): void {}

  protected step(): Effect[] | null {
    const ev = this.reader.next();
    if (!ev) return null;
    if (ev.type === 'too-long') return this.close(this.lineTooLong, 'protocol-error');
    return this.awaitingAnswer ? this.answer(ev.text) : this.command(ev.text);
  }
}
