// SMTP state tracker for a spliced submission session (issue 21): reads the client's commands
// and the backend's replies after AUTH so the splice can count messages and recipients and
// refuse a MAIL/RCPT, changing no other byte. Pure: no sockets, no timers, no I/O.
// It mirrors Dovecot 2.3 submission (lib-smtp) wherever the two could disagree on what bytes
// mean: a command line ends at LF, CR before it optional (smtp-command-parser.c); a body ends
// where istream-dot.c ends it (tracker-body.ts: at "\n.\n" or "\n.\r\n"); BDAT reads a chunk
// whenever Dovecot does (tracker-commands.ts); a line longer than any command Dovecot takes
// gets one "500 5.5.2 Line too long" and is skipped to its LF: it passes here, one failure
// reply expected. Client bytes after DATA, a final dot or BDAT LAST's chunk are held until
// the reply (the body starts only after 354; the hold shields Dovecot 2.3.19 from its
// pending_rcpt_cmds assertion on RCPT pipelined behind a message's end). When the streams
// stop making sense (`lost`) it says so once and passes every byte.
import { DotScanner } from './tracker-body.js';
import { parseCommand, TRACKER_MAX_HELD_BYTES, TRACKER_MAX_LINE_BYTES, type SmtpCommand } from './tracker-commands.js';
import { ReplyQueue, type Entry, type TrackerEvent, type Verdict } from './tracker-queue.js';
import { ReplyScanner } from './tracker-replies.js';

export { TRACKER_MAX_HELD_BYTES, TRACKER_MAX_LINE_BYTES, type SmtpCommand } from './tracker-commands.js';
export type { TrackerEvent } from './tracker-queue.js';

/** Bytes as the client sent them; a command piece is one whole line (CRLF or bare LF too). */
export interface Piece {
  bytes: Buffer;
  command?: SmtpCommand;
}

type State = 'command' | 'skip-line' | 'chunk' | 'await-data' | 'body' | 'await-final' | 'lost';

const LF = 0x0a;

export class SmtpTracker {
  private state: State = 'command';
  /** A command line's first bytes (at most TRACKER_MAX_LINE_BYTES). */
  private partial: Buffer | null = null;
  private held: Buffer[] = [];
  private heldBytes = 0;
  private chunkLeft = 0;
  /** The chunk is BDAT LAST's and its reply has not come before the chunk's end. */
  private holdAfterChunk = false;
  private readonly dot = new DotScanner();
  private readonly scanner = new ReplyScanner();
  private readonly queue = new ReplyQueue();
  /** Command pieces handed out and not yet forwarded or refused, in order. */
  private readonly issued: Piece[] = [];
  /** Entries the tracker adds itself (an overlong line, a final dot) go behind the command
   *  pieces issued before them, once those are forwarded or refused. */
  private readonly deferred: { after: number; entry: Entry }[] = [];
  private handledCount = 0;
  /** Replies are read: always before a loss; after a loss on the client side only until
   *  every refusal queued before it has had its place. */
  private repliesTracked = true;
  private pendingEvents: TrackerEvent[] = [];
  private lostWhy: string | null = null;

  /** `chunking: false`: the backend offers no CHUNKING, so BDAT is a plain command to it. */
  constructor(private readonly opts: { chunking?: boolean } = {}) {}

  get holding(): boolean {
    return this.state === 'await-data' || this.state === 'await-final';
  }

  get lost(): boolean {
    return this.lostWhy !== null;
  }

  /** Lost with nothing left inside (held bytes, refusals, events): from now on every byte
   *  may bypass the tracker both ways. Until then, after `lost`, keep calling both. */
  get passThrough(): boolean {
    return !this.repliesTracked && this.lost && !this.partial && !this.held.length && !this.pendingEvents.length;
  }

  /** Read it afresh each time: it is replaced when every reply is in (ReplyQueue.settle). */
  get transaction(): { recipients: readonly string[] } | null {
    return this.queue.view;
  }

  /** Events from fromClient or abandon() (a `lost`): in the next fromBackend unless taken. */
  takeEvents(): TrackerEvent[] {
    const e = this.pendingEvents;
    this.pendingEvents = [];
    return e;
  }

  /** Stops tracking now (say the splice held the client too long waiting for a reply): lost;
   *  refusals still queued are returned to be sent now; held bytes come from fromClient. */
  abandon(reason: string): Buffer[] {
    const out: Buffer[] = [];
    if (this.repliesTracked) this.loseReplies(reason, out, this.pendingEvents);
    else this.lose(reason, this.pendingEvents);
    return out;
  }

  fromClient(chunk: Buffer): Piece[] {
    const pieces: Piece[] = [];
    if (this.holding) {
      if (chunk.length) this.hold(chunk);
      if (this.heldBytes <= TRACKER_MAX_HELD_BYTES) return pieces;
      this.lose(`client sent over ${TRACKER_MAX_HELD_BYTES} bytes without waiting for a reply`, this.pendingEvents);
      chunk = chunk.subarray(0, 0);
    }
    const input = this.held.length ? [...this.held, chunk] : [chunk];
    this.held = [];
    this.heldBytes = 0;
    const rest: Buffer[] = [];
    for (const buf of input) {
      let pos = 0;
      while (pos < buf.length && this.state !== 'lost' && !this.holding) pos = this.step(buf, pos, pieces);
      if (pos >= buf.length) continue;
      if (this.holding) this.hold(buf.subarray(pos));
      else rest.push(buf.subarray(pos));
    }
    if (this.state === 'lost') {
      if (this.partial) rest.unshift(this.partial);
      this.partial = null;
      const bytes = rest.length === 1 ? rest[0]! : Buffer.concat(rest);
      if (bytes.length) pieces.push({ bytes });
    }
    return pieces;
  }

  forward(piece: Piece): void {
    const c = this.take(piece);
    if (this.repliesTracked) this.queue.forwarded(c);
    this.placeDeferred();
  }

  refuse(piece: Piece, reply: Buffer): Buffer | null {
    const verb = piece.command?.verb;
    if (verb !== 'MAIL' && verb !== 'RCPT') throw new Error(`SmtpTracker: only MAIL and RCPT are refused, not ${verb}`);
    this.take(piece);
    const now = !this.repliesTracked || this.queue.empty;
    if (!now) this.queue.push({ kind: 'refusal', reply });
    this.placeDeferred();
    return now ? reply : null;
  }

  fromBackend(chunk: Buffer): { toClient: Buffer[]; events: TrackerEvent[]; release: boolean } {
    const events = this.takeEvents();
    const wasHolding = this.holding;
    const wasLost = this.lost;
    const toClient: Buffer[] = [];
    let sent = 0;
    let pos = 0;
    while (this.repliesTracked && pos < chunk.length) {
      const step = this.scanner.next(chunk, pos);
      if (!step) break;
      const ours: Buffer[] = [];
      const bad = step.type === 'bad';
      pos = bad ? Math.max(sent, step.at) : step.end;
      const verdict: Verdict = bad ? { lost: step.reason } : this.queue.reply(step.code, !this.lost, events, ours);
      if (typeof verdict === 'object' && verdict) this.loseReplies(verdict.lost, ours, events);
      else if (verdict) this.resume(verdict);
      if (ours.length) {
        toClient.push(chunk.subarray(sent, pos), ...ours);
        sent = pos;
      }
      this.stopAfterLoss();
      if (bad) break;
    }
    if (sent < chunk.length) toClient.push(sent ? chunk.subarray(sent) : chunk);
    const release = (wasHolding && !this.holding) || (!wasLost && this.lost && (this.partial !== null || this.held.length > 0));
    return { toClient, events, release };
  }

  /** DATA's reply or a final reply: the client's held bytes are read on. */
  private resume(to: 'body' | 'command'): void {
    if (!this.holding) {
      this.holdAfterChunk = false; // BDAT LAST answered before its chunk ended (not Dovecot)
      return;
    }
    this.state = to;
    this.dot.reset();
  }

  /** One step of client bytes in the current state; returns where the next begins. */
  private step(buf: Buffer, pos: number, pieces: Piece[]): number {
    switch (this.state) {
      case 'command':
        return this.commandLine(buf, pos, pieces);
      case 'skip-line': {
        const lf = buf.indexOf(LF, pos);
        const end = lf < 0 ? buf.length : lf + 1;
        if (lf >= 0) this.state = 'command';
        pieces.push({ bytes: buf.subarray(pos, end) });
        return end;
      }
      case 'chunk': {
        const end = pos + Math.min(this.chunkLeft, buf.length - pos);
        this.chunkLeft -= end - pos;
        if (this.chunkLeft === 0) this.state = this.holdAfterChunk ? 'await-final' : 'command';
        pieces.push({ bytes: buf.subarray(pos, end) });
        return end;
      }
      case 'body': {
        const dot = this.dot.scan(buf, pos);
        const end = dot < 0 ? buf.length : dot;
        pieces.push({ bytes: buf.subarray(pos, end) });
        if (dot >= 0) {
          this.state = 'await-final';
          this.enqueueAfterIssued({ kind: 'dot' });
        }
        return end;
      }
      default:
        return buf.length;
    }
  }
  private commandLine(buf: Buffer, pos: number, pieces: Piece[]): number {
    const lf = buf.indexOf(LF, pos);
    const end = lf < 0 ? buf.length : lf + 1;
    const have = (this.partial?.length ?? 0) + end - pos;
    if (lf < 0 ? have >= TRACKER_MAX_LINE_BYTES : have > TRACKER_MAX_LINE_BYTES) {
      // Longer than any command Dovecot takes: it answers once and skips to the LF.
      if (this.partial) pieces.push({ bytes: this.partial });
      this.partial = null;
      pieces.push({ bytes: buf.subarray(pos, end) });
      this.enqueueAfterIssued({ kind: 'overlong' });
      if (lf < 0) this.state = 'skip-line';
      return end;
    }
    if (lf < 0) {
      // Copied: a few bytes must not keep a whole socket chunk alive.
      const tail = Buffer.from(buf.subarray(pos));
      this.partial = this.partial ? Buffer.concat([this.partial, tail]) : tail;
      return end;
    }
    const line = this.partial ? Buffer.concat([this.partial, buf.subarray(pos, end)]) : buf.subarray(pos, end);
    this.partial = null;
    // A BDAT without a size Dovecot reads (or to a backend without CHUNKING) gets one failure
    // reply there and no chunk is read: the same here, so such a line cannot switch counting
    // off for the rest of the session.
    let command = parseCommand(line);
    if (!command || (this.opts.chunking === false && command.verb === 'BDAT')) command = { verb: 'OTHER', name: 'BDAT', known: true };
    const piece = { bytes: line, command };
    pieces.push(piece);
    this.issued.push(piece);
    if (command.verb === 'DATA') this.state = 'await-data';
    if (command.verb === 'BDAT') {
      // Held after BDAT LAST's chunk too: Dovecot 2.3.19 aborts on RCPT pipelined behind it.
      [this.chunkLeft, this.holdAfterChunk] = [command.size, command.last];
      this.state = command.size > 0 ? 'chunk' : command.last ? 'await-final' : 'command';
    }
    return end;
  }

  private hold(bytes: Buffer): void {
    this.held.push(bytes);
    this.heldBytes += bytes.length;
  }

  /** The next issued piece, which must be this one: the splice handles them in order. */
  private take(piece: Piece): SmtpCommand {
    if (this.issued[0] !== piece || !piece.command) throw new Error('SmtpTracker: command pieces must be forwarded or refused once each, in order');
    this.issued.shift();
    this.handledCount++;
    return piece.command;
  }

  private enqueueAfterIssued(entry: Entry): void {
    if (!this.issued.length) this.queue.push(entry);
    else this.deferred.push({ after: this.handledCount + this.issued.length, entry });
  }

  private placeDeferred(): void {
    while (this.deferred.length && this.deferred[0]!.after <= this.handledCount) {
      const { entry } = this.deferred.shift()!;
      if (this.repliesTracked) this.queue.push(entry);
    }
    this.stopAfterLoss();
  }

  /** Lost sync: from now on every client byte passes as it comes. Replies are still counted
   *  while refusals queued before the loss wait for their place (stopAfterLoss). */
  private lose(reason: string, events: TrackerEvent[]): void {
    if (this.lostWhy === null) {
      this.lostWhy = reason;
      events.push({ type: 'lost', reason });
    }
    this.state = 'lost';
    this.stopAfterLoss();
  }

  /** Lost sync on the reply side: no reply can be placed any more, so the refusals still
   *  queued go to the client here, in their order, and replies are no longer read. */
  private loseReplies(reason: string, out: Buffer[], events: TrackerEvent[]): void {
    this.queue.drain(out);
    this.deferred.length = 0;
    this.repliesTracked = false;
    this.lose(reason || 'backend continuation after the tracker lost sync', events);
  }

  private stopAfterLoss(): void {
    if (!this.lost || !this.repliesTracked || this.queue.refusals > 0 || this.issued.length > 0) return;
    this.repliesTracked = false;
    this.queue.drain([]);
    this.deferred.length = 0;
  }
}
