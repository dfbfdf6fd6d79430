// Client keys seen blocked by an ip rule, and until when: the hint that lets the connect-time
// check ask the store only about clients this process saw blocked. Only a hint: the store has
// the last word. Bounded; on the injected clock, the store's, so both agree on when a block ends.
import type { Clock } from '../clock.js';
import { HalvingCache } from '../halving-cache.js';

/** Hints kept at most, so a flood from many addresses cannot grow the map without bound. Past
 *  it the older half goes at once (halving-cache.ts: O(1) when full, where evicting one from a
 *  Map's front walks its deleted slots): those clients are then refused at login instead of at
 *  connect until they are seen blocked again. */
export const MAX_BLOCK_HINTS = 100_000;

export class BlockHints {
  /** Client key → end of its (probable) block, ms since the epoch. */
  private readonly until: HalvingCache<string, number>;

  constructor(
    private readonly clock: Clock,
    max = MAX_BLOCK_HINTS,
  ) {
    this.until = new HalvingCache(max);
  }

  get size(): number {
    return this.until.size;
  }

  /** The client key is (probably) blocked for the next forMs. */
  note(key: string, forMs: number): void {
    this.until.delete(key);
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
