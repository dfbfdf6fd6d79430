// A submission session after AUTH: the splice's bytes go through the SMTP tracker
// (protocols/smtp/tracker.ts), which tells what each command is and which reply is whose, so
// the account's sending limits (limits/sending.ts) see every MAIL and RCPT before the backend
// does. A command that would cross a limit never reaches the backend: our 451 takes its place
// in the reply stream. Every other byte passes as it came. Once the tracker has lost the
// session (a state it cannot follow), bytes pass straight through and nothing is counted.
import type { Socket } from 'node:net';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { SendingLimits, SendingVerdict } from '../limits/sending.js';
import { SmtpTracker, type Piece, type TrackerEvent } from '../protocols/smtp/tracker.js';
import { offersKeyword } from './login-smtp.js';
import type { Relay } from './splice.js';

const EMPTY = Buffer.alloc(0);
/** Gathered bytes past this go out at once (a body is not held back to be joined). */
const FLUSH_BYTES = 16 * 1024;
/** How long the client's bytes may wait for the reply they are held for (after DATA, after a
 *  message's end): longer than a backend takes to relay a large message (RFC 5321
 *  §4.5.3.2.6 gives the client 10 minutes for it; a backend that read the stream as the tracker
 *  does answers well within this), short enough that a backend which read it otherwise (a
 *  message's end elsewhere: it waits for more while the client waits for us) is not left
 *  stalled for the idle timeout. */
export const HOLD_LIMIT_MS = 60_000;

/** What the tracked relay needs beyond the sockets. */
export interface SubmissionDeps {
  limits: SendingLimits;
  /** The canonical user the session logged in as. */
  user: string;
  log: Logger;
  metrics: Pick<Metrics, 'sendingRefused' | 'smtpTrackerEvents'>;
  /** Whether the backend offers CHUNKING (its EHLO as last probed); unknown: as Dovecot. */
  chunking?: boolean;
  /** HOLD_LIMIT_MS unless given (tests). */
  holdLimitMs?: number;
}

/** A check's answer: an RCPT's carries the recipient's print and newness. */
type Checked = SendingVerdict & { print?: string; isNew?: boolean };

/** One recipient let through in the message in progress: its print, and whether it is new. */
interface Recipient {
  print: string;
  isNew: boolean;
}

/** From the backend's EHLO lines as last probed: whether it offers CHUNKING (undefined when
 *  nothing was probed yet: the tracker then reads BDAT as Dovecot does). */
export function offersChunking(ehlo: readonly string[]): boolean | undefined {
  return ehlo.length === 0 ? undefined : offersKeyword(ehlo, 'CHUNKING');
}

/** The relay for handOver: the commands pipelined behind AUTH go first through the tracker. */
export const submissionRelay =
  (deps: SubmissionDeps) =>
  (pipelined: Buffer): Relay =>
  (client, backend, stats, touch) =>
    new SubmissionRelay(client, backend, stats, touch, deps).start(pipelined);

class SubmissionRelay {
  private readonly tracker: SmtpTracker;
  /** Set while the tracker holds the client's bytes for a reply (see HOLD_LIMIT_MS). */
  private holdTimer: NodeJS.Timeout | null = null;
  /** Pieces taken from the tracker, not yet handled (a check is in progress). */
  private pieces: Piece[] = [];
  /** Client chunks that came while pieces were still being handled. */
  private chunks: Buffer[] = [];
  /** A limit check is in progress: the client is not read meanwhile. */
  private checking = false;
  /** The backend did not take the last write: the client is not read until it drains. */
  private backendFull = false;
  /** Bytes for the backend gathered by work, written by flush. */
  private out: Buffer[] = [];
  private outBytes = 0;
  /** A MAIL of ours was refused: its transaction's RCPTs go unchecked (the backend refuses them). */
  private noTransaction = false;
  /** The recipients this session let through in the message in progress, by path. */
  private recipients = new Map<string, Recipient>();

  constructor(
    private readonly client: Socket,
    private readonly backend: Socket,
    private readonly stats: { bytesIn: number; bytesOut: number },
    private readonly touch: () => void,
    private readonly deps: SubmissionDeps,
  ) {
    this.tracker = new SmtpTracker(deps.chunking === undefined ? {} : { chunking: deps.chunking });
  }

  start(pipelined: Buffer): void {
    const { client, backend } = this;
    client.on('data', (chunk: Buffer) => {
      this.stats.bytesIn += chunk.length;
      this.touch();
      this.guarded(() => this.fromClient(chunk));
    });
    backend.on('data', (chunk: Buffer) => {
      this.stats.bytesOut += chunk.length;
      this.touch();
      this.guarded(() => this.fromBackend(chunk));
    });
    backend.on('drain', () => {
      this.backendFull = false;
      this.flow();
    });
    client.on('drain', () => backend.resume());
    client.once('close', () => this.stopHoldTimer());
    if (pipelined.length) this.guarded(() => this.fromClient(pipelined));
  }

  /** A bug of ours (the tracker throws on misuse) ends this session, logged with its stack,
   *  never the process with every other session in it. */
  private guarded(step: () => void): void {
    try {
      step();
    } catch (err) {
      this.deps.log.error({ event: 'auth.bug', err: (err as Error).stack ?? String(err) }, 'submission tracking failed: session ended');
      this.client.destroy();
      this.backend.destroy();
    }
  }

  private fromClient(chunk: Buffer): void {
    if (this.tracker.passThrough && !this.checking && this.pieces.length === 0 && this.chunks.length === 0 && this.out.length === 0) return this.write(chunk);
    this.chunks.push(chunk);
    this.work();
  }

  private fromBackend(chunk: Buffer): void {
    if (this.tracker.passThrough) return this.toClient(chunk);
    const { toClient, events, release } = this.tracker.fromBackend(chunk);
    // One write for the chunk and any refusals placed in it (writev), not one per reply.
    if (toClient.length > 1) this.client.cork();
    for (const b of toClient) this.toClient(b);
    if (toClient.length > 1) this.client.uncork();
    for (const e of events) this.event(e);
    if (release) {
      this.chunks.push(EMPTY);
      this.work();
    } else this.flow();
  }

  /** Handles pieces in order until one needs the store; resumes after its answer. What goes
   *  to the backend meanwhile is written once the pieces run out (a pipelined group as the
   *  client sent it, one write, not one per command), or before the client is waited on. */
  private work(): void {
    this.handle();
    if (!this.checking || this.pieces.length === 0) this.flush();
    this.flow();
  }

  /** Writes what work gathered for the backend: small pieces joined (one write of the
   *  group's bytes is cheaper than a writev of its commands). */
  private flush(): void {
    const out = this.out;
    if (out.length === 0) return;
    this.out = [];
    this.outBytes = 0;
    this.write(out.length === 1 ? out[0]! : Buffer.concat(out));
  }

  private write(b: Buffer): void {
    if (!this.backend.write(b)) this.backendFull = true;
  }

  private handle(): void {
    while (!this.checking) {
      const piece = this.pieces.shift();
      if (piece === undefined) {
        const chunk = this.chunks.shift();
        if (chunk === undefined) break;
        if (this.tracker.passThrough) this.toBackend(chunk);
        else {
          this.pieces = this.tracker.fromClient(chunk);
          for (const e of this.tracker.takeEvents()) this.event(e);
        }
        continue;
      }
      const cmd = piece.command;
      if (cmd === undefined) this.toBackend(piece.bytes);
      else if (cmd.verb === 'MAIL') this.check(piece, this.deps.limits.checkMail(this.deps.user));
      else if (cmd.verb === 'RCPT' && !this.noTransaction) this.check(piece, this.checkRcpt(cmd.path));
      else this.forward(piece);
    }
  }

  private checkRcpt(path: string): Promise<Checked> {
    const inFlight = this.tracker.transaction?.recipients ?? [];
    let newRecipients = 0;
    for (const p of inFlight) if (this.recipients.get(p)?.isNew) newRecipients++;
    return this.deps.limits.checkRcpt(this.deps.user, path, { recipients: inFlight.length, newRecipients });
  }

  private check(piece: Piece, verdict: Promise<Checked>): void {
    this.checking = true;
    this.flow();
    verdict
      .catch((): Checked => ({ ok: true })) // the limits fail open themselves; a bug must not stop mail either
      .then((v) => {
        this.checking = false;
        if (this.client.destroyed || this.backend.destroyed) return;
        this.guarded(() => {
          if (v.ok) this.forward(piece, v.print !== undefined ? { print: v.print, isNew: v.isNew === true } : undefined);
          else this.refuse(piece, v);
          this.work();
        });
      });
  }

  private forward(piece: Piece, rcpt?: Recipient): void {
    const cmd = piece.command!;
    if (cmd.verb === 'MAIL') {
      this.noTransaction = false;
      this.recipients = new Map();
    } else if (cmd.verb === 'RSET') this.noTransaction = false;
    else if (cmd.verb === 'RCPT' && rcpt) this.recipients.set(cmd.path, rcpt);
    this.tracker.forward(piece);
    this.toBackend(piece.bytes);
  }

  private refuse(piece: Piece, v: Extract<SendingVerdict, { ok: false }>): void {
    const cmd = piece.command!;
    if (cmd.verb === 'MAIL') this.noTransaction = true;
    this.deps.metrics.sendingRefused.inc({ limit: v.limit });
    this.deps.log.info({ event: 'sending.refused', command: cmd.verb, limit: v.limit, retryAfter: Math.ceil(v.retryAfterMs / 1000) }, 'sending limit reached');
    const now = this.tracker.refuse(piece, v.reply);
    if (now) this.toClient(now);
  }

  private event(e: TrackerEvent): void {
    if (e.type === 'accepted') {
      const prints: string[] = [];
      for (const path of e.recipients) {
        const r = this.recipients.get(path);
        if (r) prints.push(r.print);
      }
      this.deps.limits.accepted(this.deps.user, prints);
      return;
    }
    this.deps.metrics.smtpTrackerEvents.inc({ event: e.type });
    if (e.type === 'lost') this.deps.log.warn({ event: 'smtp.tracker-lost', reason: e.reason }, 'stopped following the submission session: not counting its messages');
  }

  private toBackend(b: Buffer): void {
    if (b.length === 0) return;
    this.out.push(b);
    this.outBytes += b.length;
    if (this.outBytes >= FLUSH_BYTES) this.flush();
  }

  private toClient(b: Buffer): void {
    if (b.length && !this.client.write(b)) this.backend.pause();
  }

  /** The client is read unless a check is in progress, the tracker holds bytes until a reply,
   *  or the backend is full. */
  private flow(): void {
    const holding = this.tracker.holding;
    if (holding && !this.holdTimer) this.holdTimer = setTimeout(() => this.guarded(() => this.abandon()), this.deps.holdLimitMs ?? HOLD_LIMIT_MS).unref();
    else if (!holding) this.stopHoldTimer();
    if (this.checking || this.backendFull || holding) this.client.pause();
    else this.client.resume();
  }

  private stopHoldTimer(): void {
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = null;
  }

  /** No reply came for what the tracker holds for: the backend read the stream otherwise (a
   *  message's end elsewhere). Stop following the session rather than stall it. */
  private abandon(): void {
    this.holdTimer = null;
    if (this.client.destroyed || this.backend.destroyed || !this.tracker.holding) return;
    for (const r of this.tracker.abandon("no reply in time to what the client's bytes wait for")) this.toClient(r);
    for (const e of this.tracker.takeEvents()) this.event(e);
    this.chunks.push(EMPTY);
    this.work();
  }
}
