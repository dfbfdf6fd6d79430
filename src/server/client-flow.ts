// One pre-auth client's share of the process (issue 15). Its commands are handled
// PREAUTH_COMMANDS_PER_TURN at a time and the rest on a later turn of the event loop, after
// every other connection had its own; its commands are not read while its replies run more
// than PREAUTH_UNREAD_REPLY_BYTES ahead of what it could have read (client-writer.ts); a client
// held there PREAUTH_UNREAD_DEADLINE_MS in all is handed back to the session to be ended.
// Owns when the client's socket is read and how replies are written to it, nothing else.
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { PREAUTH_COMMANDS_PER_TURN, PREAUTH_MAX_QUEUED_REPLY_BYTES, PREAUTH_UNREAD_DEADLINE_MS } from '../bounds.js';
import type { Effect, ProtocolMachine } from '../protocols/protocol.js';
import { UnreadReplies } from './client-writer.js';

/** One clock function for every flow (a closure per connection cost 0.1 KiB). */
const monotonic = (): number => performance.now();

export interface FlowHost {
  /** The session takes the client's input now: before login, or while a login waits for the
   *  client's answer to a backend's challenge. */
  reading(): boolean;
  /** The session's effect loop. */
  run(effects: Effect[]): void;
  /** The client kept its replies unread over the bound past the deadline: to be ended. */
  unreadTooLong(unread: number): void;
}

export class ClientFlow {
  private socket: Socket | null = null;
  /** Monotonic time: a coarse deadline, like the splice's idle check, not a window tests move. */
  private readonly replies = new UnreadReplies(monotonic);
  private turn: NodeJS.Immediate | null = null;
  private wake: NodeJS.Timeout | null = null;
  private awaitingDrain = false;
  /** When the current pause for unread replies began, and how long the earlier ones lasted. */
  private pausedAt: number | null = null;
  private pausedMs = 0;
  private stopped = false;

  constructor(
    private readonly machine: ProtocolMachine,
    private readonly host: FlowHost,
  ) {
    machine.limitTurns(PREAUTH_COMMANDS_PER_TURN);
  }

  /** Feeds the machine from `socket`: the accepted one, or the TLS socket after a handshake,
   *  which proves the client read everything sent before it. Reading starts at update(). */
  attach(socket: Socket, afterHandshake = false): void {
    this.socket = socket;
    if (afterHandshake) this.replies.readAll();
    socket.on('data', (chunk: Buffer) => this.batch(() => this.machine.push(chunk)));
  }

  /** Hands one reply to the socket; false when Node itself holds too much for this client:
   *  the kernel's buffers are full too, so it is dropped (a goodbye could not reach it). */
  send(data: string | Buffer): boolean {
    const s = this.socket!;
    if (s.writableLength > PREAUTH_MAX_QUEUED_REPLY_BYTES) return false;
    s.write(data);
    this.replies.wrote(typeof data === 'string' ? Buffer.byteLength(data) : data.length);
    return true;
  }

  /** Reads the client or not, as things stand: after every batch of effects, and whenever the
   *  session starts or ends a login or a handshake. */
  update(): void {
    const s = this.socket;
    if (this.stopped || !s) return;
    if (!this.host.reading()) {
      this.endPause();
      s.pause();
      return;
    }
    if (this.replies.over(s.writableLength, this.pausedAt !== null)) return this.holdUnread(s);
    this.endPause();
    if (!this.machine.pending) {
      s.resume();
      return;
    }
    // Complete commands are waiting: no more input meanwhile, the next batch on a later turn.
    s.pause();
    this.turn ??= setImmediate(() => {
      this.turn = null;
      if (!this.stopped && this.host.reading()) this.batch(() => this.machine.resume());
    });
  }

  /** One batch of the machine's effects, its replies handed to the kernel in one write. */
  private batch(handle: () => Effect[]): void {
    const s = this.socket!;
    s.cork();
    this.host.run(handle());
    s.uncork();
    this.update();
  }

  /** No more reading, timers or replies counted: the session ended or was spliced. */
  stop(): void {
    this.stopped = true;
    if (this.turn) clearImmediate(this.turn);
    if (this.wake) clearTimeout(this.wake);
    this.turn = this.wake = null;
  }

  /** Not read until the count is down to half the bound, or the deadline. */
  private holdUnread(s: Socket): void {
    const now = performance.now();
    this.pausedAt ??= now;
    const left = PREAUTH_UNREAD_DEADLINE_MS - (this.pausedMs + now - this.pausedAt);
    if (left <= 0) {
      const unread = Math.round(this.replies.unread(s.writableLength));
      this.stop();
      return this.host.unreadTooLong(unread);
    }
    s.pause();
    if (this.turn) clearImmediate(this.turn);
    this.turn = null;
    // What was written falls with time; what Node holds only as the kernel takes it (drain).
    const resumeIn = this.replies.msUntilResume();
    if (this.wake) clearTimeout(this.wake);
    this.wake = setTimeout(() => this.update(), resumeIn > 0 ? Math.min(resumeIn, left) : left);
    if (s.writableLength > 0 && !this.awaitingDrain) {
      this.awaitingDrain = true;
      s.once('drain', () => {
        this.awaitingDrain = false;
        this.update();
      });
    }
  }

  private endPause(): void {
    if (this.pausedAt === null) return;
    this.pausedMs += performance.now() - this.pausedAt;
    this.pausedAt = null;
    if (this.wake) clearTimeout(this.wake);
    this.wake = null;
  }
}
