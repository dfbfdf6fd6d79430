// What a pre-auth client has not read of our replies, in mailgate's own count. TCP never says
// what the peer application read, and Node can neither read nor shrink the kernel's socket
// buffers (several MiB that a client who never reads fills before Node holds a byte), so the
// count is the reply bytes written, less what the client could have read since at
// PREAUTH_REPLY_DRAIN_BYTES_PER_SEC, and never less than what Node itself still holds.
// Pure: no sockets, no timers; the time comes from `now`. client-flow.ts acts on it.
import { PREAUTH_REPLY_DRAIN_BYTES_PER_SEC, PREAUTH_UNREAD_REPLY_BYTES } from '../bounds.js';

/** Where reading resumes once paused: half the bound, so a client at the bound is not paused
 *  and resumed after every reply. */
const RESUME_AT_BYTES = PREAUTH_UNREAD_REPLY_BYTES / 2;

export class UnreadReplies {
  private owed = 0;
  private at: number;

  constructor(private readonly now: () => number) {
    this.at = now();
  }

  /** Reply bytes handed to the socket. */
  wrote(bytes: number): void {
    this.settle();
    this.owed += bytes;
  }

  /** Bytes the client may not have read yet; `queued`: what Node still holds for it (the
   *  socket's writableLength), unread for certain. */
  unread(queued: number): number {
    this.settle();
    return Math.max(this.owed, queued);
  }

  /** Over the bound: stop reading the client's commands (`paused`: already stopped, and stays
   *  so until the count is down to half the bound). */
  over(queued: number, paused: boolean): boolean {
    return this.unread(queued) > (paused ? RESUME_AT_BYTES : PREAUTH_UNREAD_REPLY_BYTES);
  }

  /** Milliseconds until the count, as written, falls to where reading resumes (what Node
   *  holds falls only as the kernel takes it: the socket's drain event says when). */
  msUntilResume(): number {
    this.settle();
    return Math.max(0, Math.ceil(((this.owed - RESUME_AT_BYTES) * 1000) / PREAUTH_REPLY_DRAIN_BYTES_PER_SEC));
  }

  /** The client has read everything so far: it completed a TLS handshake, which needs every
   *  byte we sent before it (the STARTTLS answer last). */
  readAll(): void {
    this.owed = 0;
    this.at = this.now();
  }

  private settle(): void {
    const t = this.now();
    this.owed = Math.max(0, this.owed - ((t - this.at) * PREAUTH_REPLY_DRAIN_BYTES_PER_SEC) / 1000);
    this.at = t;
  }
}
