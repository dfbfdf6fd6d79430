// Incremental IMAP pre-auth command parser (RFC 9051 §2.2, §4.3; LITERAL+/LITERAL- RFC 7888).
// Pure: push(bytes), then pull events with next(). No sockets, no timers.
// Bytes after the last complete command stay raw and untouched (takeBuffered()), so commands
// pipelined behind LOGIN can be handed to the backend exactly as sent.
import {
  IMAP_LITERAL_MINUS_MAX_BYTES,
  IMAP_MAX_COMMAND_BYTES,
  IMAP_MAX_COMMAND_TOKENS,
  IMAP_MAX_LINE_BYTES,
  IMAP_MAX_LIST_DEPTH,
  IMAP_MAX_LITERAL_BYTES,
  IMAP_MAX_LITERAL_DIGITS,
} from '../../bounds.js';
import { EMPTY_BUFFER, lineEnd } from '../line-reader.js';

export type ImapArg =
  | { kind: 'atom'; value: string }
  | { kind: 'string'; value: Buffer }
  | { kind: 'list'; items: ImapArg[] };

export type ImapEvent =
  | { type: 'command'; tag: string; verb: string; args: ImapArg[] }
  /** A synchronizing literal awaits "+"; the machine may refuseLiteral() instead. */
  | { type: 'continue'; tag: string; verb: string }
  /** Malformed input; fatal means the connection must be closed (the stream is out of sync).
   *  code TOOBIG: a {n+} over LITERAL-'s cap (RFC 7888 §4), to be said in the BAD and BYE. */
  | { type: 'bad'; tag: string; text: string; fatal: boolean; code?: 'TOOBIG' }
  /** A raw response line (SASL continuation), after expectLine(). */
  | { type: 'line'; text: string };

interface Pending {
  stack: ImapArg[][];
  bytes: number;
  /** Tokens so far, every "(" included (IMAP_MAX_COMMAND_TOKENS). */
  tokens: number;
  literal: number | null; // bytes of literal still to read
  afterLiteral: boolean;
}

// RFC 9051 §9: tag = 1*<ASTRING-CHAR except "+">: no CTL, SP, 8-bit, ( ) { % * " \ or +.
const TAG_RE = /^[^\x00-\x20\x7f-\xff(){%*"\\+]+$/;
const LITERAL_RE = /^\{(\d+)(\+)?\}$/;
const NONSYNC_TAIL_RE = /\{\d+\+\}$/;
const SP = 0x20;

export interface ImapParserOptions {
  /** This client was shown LITERAL- (or IMAP4rev2) and not LITERAL+: a {n+} over
   *  IMAP_LITERAL_MINUS_MAX_BYTES is refused with TOOBIG and ends the connection. */
  literalMinus?: boolean;
}

export class ImapParser {
  constructor(private readonly options: ImapParserOptions = {}) {}

  private buf: Buffer = EMPTY_BUFFER;
  private pending: Pending | null = null;
  /** Set by expectLine(): the next line is raw, at most this long. */
  private lineLimit: number | null = null;
  private dead = false;

  push(chunk: Buffer): void {
    if (this.dead) return;
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
  }

  /** The next line is a SASL response, not a command: raw text of at most `limit` octets,
   *  CRLF excluded, as LineReader counts (a longer one is fatal, as a command line is). */
  expectLine(limit: number): void {
    this.lineLimit = limit;
  }

  /** Raw bytes not yet parsed (only meaningful between commands). */
  takeBuffered(): Buffer {
    const b = this.buf;
    this.buf = EMPTY_BUFFER;
    return b;
  }

  /** Forget everything buffered (STARTTLS: plaintext after the command must never run). */
  discard(): void {
    this.buf = EMPTY_BUFFER;
    this.pending = null;
    this.lineLimit = null;
  }

  get bufferedBytes(): number {
    return this.buf.length;
  }

  next(): ImapEvent | null {
    while (!this.dead) {
      const p = this.pending;
      if (p && p.literal !== null) {
        if (this.buf.length < p.literal) return null;
        const value = Buffer.from(this.buf.subarray(0, p.literal));
        this.buf = this.buf.subarray(p.literal);
        p.stack[p.stack.length - 1]!.push({ kind: 'string', value });
        p.literal = null;
        p.afterLiteral = true;
        continue;
      }
      const nl = this.buf.indexOf(0x0a);
      if (this.tooLong(nl)) return this.fatal(this.currentTag(), 'Line too long');
      if (nl < 0) return null;
      const line = this.buf.subarray(0, lineEnd(this.buf, nl));
      // Nothing left: the chunk read from the socket is not kept alive by an empty view of it.
      this.buf = nl + 1 < this.buf.length ? this.buf.subarray(nl + 1) : EMPTY_BUFFER;
      if (this.lineLimit !== null) {
        this.lineLimit = null;
        return { type: 'line', text: line.toString('latin1') };
      }
      const ev = this.segment(line, nl + 1);
      if (ev) return ev;
    }
    return null;
  }

  /** Whether the line at the start of the buffer (its LF at `nl`, or none yet) is past its
   *  bound: a command line counts the octets before the LF, CR included; a raw line after
   *  expectLine() counts its text only. */
  private tooLong(nl: number): boolean {
    if (this.lineLimit !== null) return lineEnd(this.buf, nl) > this.lineLimit;
    return (nl < 0 ? this.buf.length : nl) > IMAP_MAX_LINE_BYTES;
  }

  /** The tag of the command being parsed, when it is a valid tag (so replies never echo
   *  arbitrary client bytes), else "*". */
  private currentTag(): string {
    return this.pending ? tagOf(this.pending) : '*';
  }

  /** Answer a pending synchronizing literal with a tagged reply instead of "+" (RFC 9051
   *  §7.5): the client does not send the literal, so the command is dropped. */
  refuseLiteral(): void {
    this.pending = null;
  }

  private fatal(tag: string, text: string, code?: 'TOOBIG'): ImapEvent {
    this.dead = true;
    this.buf = EMPTY_BUFFER;
    this.pending = null;
    return code ? { type: 'bad', tag, text, fatal: true, code } : { type: 'bad', tag, text, fatal: true };
  }

  private bad(text: string, line: Buffer): ImapEvent {
    // A malformed line that ends in {n+}: the client is already sending the literal, whose
    // bytes must never be parsed as commands (RFC 7888 §4), so the stream cannot be resynchronised.
    if (NONSYNC_TAIL_RE.test(line.toString('latin1'))) return this.fatal(this.currentTag(), text);
    const tag = this.currentTag();
    this.pending = null;
    return { type: 'bad', tag, text, fatal: false };
  }

  /** Tokenise one CRLF-terminated segment of the current command. */
  private segment(line: Buffer, consumed: number): ImapEvent | null {
    if (!this.pending) {
      if (line.length === 0) return null; // empty lines between commands are ignored
      this.pending = { stack: [[]], bytes: 0, tokens: 0, literal: null, afterLiteral: false };
    }
    const p = this.pending;
    p.bytes += consumed;
    if (p.bytes > IMAP_MAX_COMMAND_BYTES) return this.fatal(this.currentTag(), 'Command too long');
    let i = 0;
    if (p.afterLiteral) {
      p.afterLiteral = false;
      if (line.length > 0 && line[0] !== SP && line[0] !== 0x29) return this.bad('Expected SP or CRLF after literal', line);
    }
    while (i < line.length) {
      const c = line[i]!;
      const top = p.stack[p.stack.length - 1]!;
      // Every token but a ")" counts before it is built: a "(" when opened, not when closed.
      if (c !== SP && c !== 0x29 && ++p.tokens > IMAP_MAX_COMMAND_TOKENS) return this.bad('Too many arguments', line);
      if (c === SP) {
        i++;
      } else if (c === 0x28 /* ( */) {
        if (p.stack.length > IMAP_MAX_LIST_DEPTH) return this.bad('Lists nested too deeply', line);
        const items: ImapArg[] = [];
        top.push({ kind: 'list', items });
        p.stack.push(items);
        i++;
      } else if (c === 0x29 /* ) */) {
        if (p.stack.length === 1) return this.bad('Unexpected )', line);
        p.stack.pop();
        i++;
      } else if (c === 0x22 /* " */) {
        const q = readQuoted(line, i);
        if (!q) return this.bad('Invalid quoted string', line);
        top.push({ kind: 'string', value: q.value });
        i = q.end;
      } else if (c === 0x7b /* { */) {
        const m = LITERAL_RE.exec(line.subarray(i).toString('latin1'));
        if (!m) return this.bad('Invalid literal', line);
        const sync = m[2] === undefined;
        const n = m[1]!.length > IMAP_MAX_LITERAL_DIGITS ? Infinity : Number(m[1]);
        if (!sync && this.options.literalMinus && n > IMAP_LITERAL_MINUS_MAX_BYTES) {
          // RFC 7888 §4: a BAD with TOOBIG; the client is already sending the bytes and they
          // must never be parsed as commands, so the connection ends (as Dovecot's does).
          return this.fatal(this.currentTag(), `Non-synchronizing literal over ${IMAP_LITERAL_MINUS_MAX_BYTES} octets`, 'TOOBIG');
        }
        if (n > IMAP_MAX_LITERAL_BYTES || p.bytes + n > IMAP_MAX_COMMAND_BYTES) {
          // Without "+" a well-behaved client never sends the data; a non-synchronizing one
          // already is, so the stream cannot be resynchronised: close.
          return sync ? this.bad('Literal too big', line) : this.fatal(this.currentTag(), 'Literal too big');
        }
        p.literal = n;
        p.bytes += p.literal;
        // Non-synchronizing: next() reads the literal in its loop (no recursion: however many
        // literals a command has, one after another).
        if (!sync) return null;
        const verb = p.stack[0]![1];
        return { type: 'continue', tag: tagOf(p), verb: verb?.kind === 'atom' ? verb.value.toUpperCase() : '' };
      } else {
        const start = i;
        while (i < line.length && line[i] !== SP && line[i] !== 0x28 && line[i] !== 0x29) {
          const b = line[i]!;
          if (b < 0x20 || b === 0x7f || b === 0x22 || b === 0x7b) return this.bad('Invalid character in atom', line);
          i++;
        }
        top.push({ kind: 'atom', value: line.subarray(start, i).toString('latin1') });
      }
    }
    // End of the command.
    this.pending = null;
    if (p.stack.length !== 1) return { type: 'bad', tag: tagOf(p), text: 'Unclosed list', fatal: false };
    const [tag, verb, ...args] = p.stack[0]!;
    if (!tag || tag.kind !== 'atom' || !TAG_RE.test(tag.value)) {
      return { type: 'bad', tag: '*', text: 'Invalid tag', fatal: false };
    }
    if (!verb || verb.kind !== 'atom') return { type: 'bad', tag: tag.value, text: 'Missing command', fatal: false };
    return { type: 'command', tag: tag.value, verb: verb.value.toUpperCase(), args };
  }
}

function tagOf(p: Pending): string {
  const t = p.stack[0]?.[0];
  return t && t.kind === 'atom' && TAG_RE.test(t.value) ? t.value : '*';
}

/** A quoted string starting at line[start] === '"'. Only \\ and \" escapes (RFC 9051 §4.3). */
function readQuoted(line: Buffer, start: number): { value: Buffer; end: number } | null {
  const out: number[] = [];
  for (let i = start + 1; i < line.length; i++) {
    const b = line[i]!;
    if (b === 0x22) return { value: Buffer.from(out), end: i + 1 };
    if (b === 0x5c) {
      const n = line[++i];
      if (n !== 0x22 && n !== 0x5c) return null;
      out.push(n);
    } else if (b === 0x00 || b === 0x0d || b === 0x0a) {
      return null;
    } else {
      out.push(b);
    }
  }
  return null;
}
