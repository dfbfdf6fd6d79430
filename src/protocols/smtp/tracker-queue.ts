// The tracker's reply side: one entry per reply the backend owes, in command order (RFC 2920
// pipelining), our own refusal replies in their places, and the transaction as the client
// built it and as the backend answered it. Pure; tracker.ts feeds it and applies its verdicts.
import type { SmtpCommand } from './tracker-commands.js';

export type TrackerEvent =
  | { type: 'accepted'; recipients: string[] }
  | { type: 'lost'; reason: string }
  | { type: 'unknown'; name: string };

/** The transaction as the client has built it so far (RCPTs still unanswered included). */
interface View {
  recipients: string[];
  /** How many of `recipients` the backend has answered (all 2xx: refused ones are removed). */
  answered: number;
}

/** What a reply answers; `refusal` is our own reply, sent in its place. */
export type Entry =
  | { kind: 'mail'; opened: View | null }
  | { kind: 'rcpt'; path: string; view: View | null }
  | { kind: 'data' | 'dot' | 'reset' | 'overlong' }
  | { kind: 'bdat'; last: boolean }
  | { kind: 'other'; name: string; known: boolean }
  | { kind: 'refusal'; reply: Buffer };

/** What a reply means for the client side: DATA's 354 starts the body, its failure or a
 *  final reply (to the dot, to BDAT LAST) returns to commands; `lost`: it makes no sense. */
export type Verdict = null | 'body' | 'command' | { lost: string };

/** An overlong line is counted as an unknown command under this name. */
export const OVERLONG = '(line too long)';

export class ReplyQueue {
  private readonly entries: Entry[] = [];
  private head = 0;
  /** Refusal entries still queued. */
  refusals = 0;
  /** The transaction as the client built it: `transaction` of the tracker. */
  view: View | null = null;
  /** The transaction as the backend answered it: the RCPTs it accepted (2xx), in order. */
  private backendTxn: { accepted: string[] } | null = null;

  get empty(): boolean {
    return this.head === this.entries.length;
  }

  /** A forwarded command: the reply it is owed, and what it does to the client's view. */
  forwarded(c: SmtpCommand): void {
    switch (c.verb) {
      case 'MAIL': {
        // A MAIL inside a transaction is refused (503) and leaves it as it is.
        const opened = this.view ? null : { recipients: [], answered: 0 };
        this.view ??= opened;
        return this.push({ kind: 'mail', opened });
      }
      case 'RCPT':
        this.view?.recipients.push(c.path);
        return this.push({ kind: 'rcpt', path: c.path, view: this.view });
      case 'DATA':
        return this.push({ kind: 'data' });
      case 'BDAT':
        if (c.last) this.view = null;
        return this.push({ kind: 'bdat', last: c.last });
      case 'RSET':
        this.view = null;
        return this.push({ kind: 'reset' });
      case 'QUIT':
        return this.push({ kind: 'other', name: 'QUIT', known: true });
      case 'OTHER':
        // RFC 5321 §4.1.4: a later EHLO or HELO resets the transaction as RSET does.
        if (c.name !== 'EHLO' && c.name !== 'HELO') return this.push({ kind: 'other', name: c.name, known: c.known });
        this.view = null;
        return this.push({ kind: 'reset' });
    }
  }

  push(entry: Entry): void {
    if (entry.kind === 'refusal') this.refusals++;
    this.entries.push(entry);
  }

  /** One whole reply with `code`: to the entry at the head (`tracked`: its meaning is
   *  followed, else only counted). Our refusals queued right behind it go into `ours`. */
  reply(code: number, tracked: boolean, events: TrackerEvent[], ours: Buffer[]): Verdict {
    const e = this.entries[this.head];
    // RFC 5321 §3.8: a server may send 421 at any moment before it closes.
    if (!e) return code === 421 ? null : { lost: `backend reply ${code} to no command` };
    this.head++;
    let verdict: Verdict = null;
    if (code >= 300 && code < 400 && e.kind !== 'data') verdict = { lost: `backend continuation ${code} to ${e.kind === 'other' ? e.name : e.kind}` };
    else if (tracked) verdict = this.answer(e, code, events);
    else if (code >= 300 && code < 400) verdict = { lost: '' };
    for (let r = this.entries[this.head]; r?.kind === 'refusal'; r = this.entries[++this.head]) {
      ours.push(r.reply);
      this.refusals--;
    }
    if (this.empty || this.head > 1024) {
      this.entries.splice(0, this.head);
      this.head = 0;
    }
    if (this.empty) this.settle();
    return verdict;
  }

  /** Every reply is in: the client's view is the backend's transaction. They differ only
   *  after MAIL pipelined behind a MAIL that failed (the second one opened it). */
  private settle(): void {
    const accepted = this.backendTxn?.accepted;
    if (accepted?.length === this.view?.recipients.length) return;
    this.view = accepted ? { recipients: [...accepted], answered: accepted.length } : null;
  }

  /** Every refusal still queued, in order, and no more entries: no reply can be placed. */
  drain(out: Buffer[]): void {
    for (let i = this.head; i < this.entries.length; i++) {
      const e = this.entries[i]!;
      if (e.kind === 'refusal') out.push(e.reply);
    }
    this.entries.length = this.head = this.refusals = 0;
  }

  private answer(e: Entry, code: number, events: TrackerEvent[]): Verdict {
    const ok = code >= 200 && code < 300;
    switch (e.kind) {
      case 'mail':
        if (ok) this.backendTxn = { accepted: [] };
        else if (e.opened && this.view === e.opened) this.view = null;
        return null;
      case 'rcpt':
        if (ok) (this.backendTxn ??= { accepted: [] }).accepted.push(e.path);
        if (ok && e.view) e.view.answered++;
        else e.view?.recipients.splice(e.view.answered, 1);
        return null;
      case 'data':
        if (ok) return { lost: `backend reply ${code} to DATA` };
        return code < 400 ? 'body' : 'command';
      case 'dot':
        // Nothing was forwarded since the dot (the client is held): this was the transaction.
        this.view = null;
        this.final(ok, events);
        return 'command';
      case 'bdat':
        // 500/502: the backend did not take BDAT as a chunk (no CHUNKING) and so read the
        // chunk's bytes as commands.
        if (code === 500 || code === 502) return { lost: `backend reply ${code} to BDAT` };
        if (!e.last) return null;
        this.final(ok, events);
        return 'command';
      case 'reset':
        if (ok) this.backendTxn = null;
        return null;
      case 'other':
        if (e.name === 'STARTTLS' && ok) return { lost: 'backend accepted STARTTLS' };
        if (!e.known) events.push({ type: 'unknown', name: e.name });
        return null;
      case 'overlong':
        events.push({ type: 'unknown', name: OVERLONG });
        return ok ? { lost: 'backend accepted an overlong command line' } : null;
      case 'refusal':
        return null;
    }
  }

  /** The backend's final reply to a message (to the dot, to BDAT LAST) ends it. */
  private final(ok: boolean, events: TrackerEvent[]): void {
    if (ok) events.push({ type: 'accepted', recipients: this.backendTxn?.accepted ?? [] });
    this.backendTxn = null;
  }
}
