// Client keys seen blocked by an ip rule, and until when: the hint that lets the connect-time
// check ask the store only about clients this process saw blocked. Only a hint: the store has
// the last word. Bounded; on the injected clock, the store's, so both agree on when a block ends.
import type { Clock } from '../clock.js';

/** Hints kept at most, so a flood from many addresses cannot grow the map without bound. Past
 *  it the oldest hint makes room: that client is then refused at login instead of at connect. */
export const MAX_BLOCK_HINTS = 100_000;

export class BlockHints {
  /** Client key → end of its (probable) block, ms since the epoch; in insertion order. */
  private readonly until = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    private readonly max = MAX_BLOCK_HINTS,
  ) {}

  get size(): number {
    return this.until.size;
  }

  /** The client key is (probably) blocked for the next forMs. */
  note(key: string, forMs: number): void {
    if (this.until.size >= this.max && !this.until.has(key)) this.until.delete(this.until.keys().next().value!);
    this.until.set(key, this.clock.now() + forMs);
  }

  /** Whether a hint for the key is still running; an expired one is dropped. */
  has(key: string): boolean {
    const until = this.until.get(key);
    if (until === undefined) return false;
    if (until < this.clock.now()) {
      this.until.delete(key);
      return false;
    }
    return true;
  }

  /** Drop the hint: the store said the key is not blocked, or an operator lifted its block. */
  forget(key: string): void {
    this.until.delete(key);
  }
}
