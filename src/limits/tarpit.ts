// Delays failed-login replies (rule `delay`): how long (tarpitDelayMs), and one timer for all
// waiting connections: waiters sit in a queue ordered by due time; the single timer is re-armed
// for the earliest. The waiting session's socket is paused meanwhile, so nothing buffers.
// Bounded: beyond MAX_TARPIT_WAITERS, replies go out at once rather than holding more connections.
import type { Clock } from '../clock.js';

/** Tarpit delay after the n-th failure: base doubling per failure, capped (Dovecot's auth
 *  penalty works the same way). The exponent stops at 30: the cap (60 s at most) is reached
 *  long before, and an unbounded 2 ** n becomes Infinity, which a base of 0 turns into NaN. */
export function tarpitDelayMs(delay: { base: number; max: number }, failures: number): number {
  if (failures < 1) return 0;
  return Math.min(delay.max, delay.base * 2 ** Math.min(failures - 1, 30));
}

/** At most this many connections wait in the tarpit at a time. */
export const MAX_TARPIT_WAITERS = 10_000;

interface Waiter {
  due: number;
  resolve: () => void;
}

export class Tarpit {
  private readonly queue: Waiter[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly maxWaiters = MAX_TARPIT_WAITERS,
  ) {}

  get waiting(): number {
    return this.queue.length;
  }

  wait(ms: number): Promise<void> {
    if (ms <= 0 || this.queue.length >= this.maxWaiters) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const due = this.clock.now() + ms;
      // Binary search keeps the queue ordered by due time.
      let lo = 0;
      let hi = this.queue.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.queue[mid]!.due <= due) lo = mid + 1;
        else hi = mid;
      }
      this.queue.splice(lo, 0, { due, resolve });
      if (lo === 0) this.arm();
    });
  }

  private arm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const first = this.queue[0];
    if (!first) return;
    this.timer = setTimeout(() => this.fire(), Math.max(0, first.due - this.clock.now()));
    this.timer.unref();
  }

  private fire(): void {
    const now = this.clock.now();
    let n = 0;
    while (n < this.queue.length && this.queue[n]!.due <= now) n++;
    for (const w of this.queue.splice(0, n)) w.resolve();
    this.arm();
  }

  /** Release everyone (shutdown). */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const w of this.queue.splice(0)) w.resolve();
  }
}
