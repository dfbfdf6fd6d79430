// Absolute deadlines for many connections on one timer per duration (issue 22): a Node timer
// per pre-auth connection (its Timeout, closure and context) cost about 0.25 KiB each. Every
// connection of one duration is due in the order it was added, so its queue is a list in that
// order, threaded through the connections themselves (no object per connection), with one
// timer set for the head. Owns the entries' deadline fields; nothing else.

/** A connection with a deadline: a subclass carries the queue's fields itself. */
export abstract class DeadlineEntry {
  /** The queue's fields, nobody else's. `deadlineAt`: ms on the global performance.now()'s clock
   *  (the one fake timers move). */
  deadlineQueue: DeadlineQueue | null = null;
  deadlinePrev: DeadlineEntry | null = null;
  deadlineNext: DeadlineEntry | null = null;
  deadlineAt = 0;
  /** Called once, when the deadline has passed (out of the queue by then). */
  abstract goodbye(reason: 'timeout'): void;
}

const TOLERANCE_MS = 1;

/** The process's queues, one per duration (a reload may change it), dropped when empty. */
const queues = new Map<number, DeadlineQueue>();

class DeadlineQueue {
  private head: DeadlineEntry | null = null;
  private tail: DeadlineEntry | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly durationMs: number) {}

  add(e: DeadlineEntry): void {
    e.deadlineQueue = this;
    e.deadlineAt = performance.now() + this.durationMs;
    e.deadlinePrev = this.tail;
    e.deadlineNext = null;
    if (this.tail) this.tail.deadlineNext = e;
    else this.head = e;
    this.tail = e;
    if (!this.timer) this.arm();
  }

  remove(e: DeadlineEntry): void {
    const { deadlinePrev: prev, deadlineNext: next } = e;
    if (prev) prev.deadlineNext = next;
    else this.head = next;
    if (next) next.deadlinePrev = prev;
    else this.tail = prev;
    e.deadlineQueue = e.deadlinePrev = e.deadlineNext = null;
    // A later head leaves the timer as it is: when it fires early it is set again.
    if (!this.head) this.stop();
  }

  /** The timer for the head's deadline. */
  private arm(): void {
    this.timer = setTimeout(() => this.expire(), Math.max(1, Math.ceil(this.head!.deadlineAt - performance.now())));
  }

  /** Every entry due, in order; then the timer for the next one. Node's timers count from the
   *  event loop's cached time, a little before performance.now(): an entry due within
   *  TOLERANCE_MS is due (else it would wait for one more timer, a millisecond late). */
  private expire(): void {
    this.timer = null;
    const now = performance.now() + TOLERANCE_MS;
    for (let e = this.head; e && e.deadlineAt <= now; e = this.head) {
      this.remove(e);
      e.goodbye('timeout');
    }
    if (this.head && !this.timer) this.arm();
  }

  private stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (queues.get(this.durationMs) === this) queues.delete(this.durationMs);
  }
}

/** `e.goodbye('timeout')` in `durationMs` (absolute: nothing extends it), unless cancelled. */
export function startDeadline(e: DeadlineEntry, durationMs: number): void {
  let q = queues.get(durationMs);
  if (!q) queues.set(durationMs, (q = new DeadlineQueue(durationMs)));
  q.add(e);
}

/** No deadline for `e` any more (a no-op when it has none). */
export function cancelDeadline(e: DeadlineEntry): void {
  e.deadlineQueue?.remove(e);
}
