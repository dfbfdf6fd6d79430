// Blocks this instance knows of, answered without asking Redis until they end or for at most
// a minute: what Redis refused with a block, what a rule started here, and what any instance
// published (block-channel.ts). It can only ever refuse more than Redis, never less: it holds
// blocks only (never an allow, never a count at its limit or a one-second in-flight refusal,
// which end on their own), and a spec a known-good pair or a password hint could exempt in
// this attempt is never refused from here (the exemption lives in Redis). Pure apart from the
// injected clock; bounded.
import type { Clock } from '../clock.js';
import { HalvingCache } from '../halving-cache.js';
import type { CounterSpec, HitOptions, HitResult } from './store.js';

/** Longest an entry is trusted: a missed unblock message (subscriber down before it noticed)
 *  refuses on this instance for at most this long. */
export const BLOCK_CACHE_MAX_TTL_MS = 60_000;

/** Entries kept at most, so blocks of a flood of addresses cannot grow the map without bound;
 *  past it the older half goes at once (halving-cache.ts: O(1) when full), and those keys are
 *  asked of Redis again. */
export const MAX_CACHED_BLOCKS = 100_000;

interface Entry {
  /** When this instance stops trusting the entry, and when the block ends (its clock). */
  until: number;
  endsAt: number;
  count: number;
  /** The address's successes read with the block (connect-time checks need them). */
  successes?: { key: string; n: number };
}

export class BlockCache {
  private readonly entries: HalvingCache<string, Entry>;
  /** Bumped by every unblock: a Redis answer that left before it may describe a lifted block. */
  private epoch = 0;
  /** Whether entries can be trusted: only while the block channel is subscribed. */
  private live = false;

  constructor(
    private readonly clock: Clock,
    private readonly maxTtlMs = BLOCK_CACHE_MAX_TTL_MS,
    max = MAX_CACHED_BLOCKS,
  ) {
    this.entries = new HalvingCache(max);
  }

  get size(): number {
    return this.entries.size;
  }

  /** An answer from Redis that starts now may be noted with this later (note's `since`). */
  get generation(): number {
    return this.epoch;
  }

  /** Subscribed (again): start afresh, messages may have been missed. Unsubscribed: forget
   *  everything and note nothing until subscribed. */
  setLive(live: boolean): void {
    this.live = live;
    this.clear();
  }

  clear(): void {
    this.entries.clear();
    this.epoch++;
  }

  /** The key is blocked for `ms` more; `since`: the generation when the answer saying so was
   *  asked for (an unblock meanwhile makes it stale). */
  note(key: string, ms: number, since = this.epoch, extra: { count?: number; successes?: { key: string; n: number } } = {}): void {
    if (!this.live || since !== this.epoch || ms <= 0) return;
    const now = this.clock.now();
    this.entries.delete(key); // one copy, in the recent half
    this.entries.set(key, { until: now + Math.min(ms, this.maxTtlMs), endsAt: now + ms, count: extra.count ?? 0, successes: extra.successes });
  }

  /** The key's block was lifted (reset, success on a narrowing rule, admin). */
  forget(key: string): void {
    this.entries.delete(key);
    this.epoch++;
  }

  private get(key: string, now: number): Entry | undefined {
    const e = this.entries.get(key);
    if (e && e.until <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return e;
  }

  /** The refusal this attempt gets without Redis, if any: the first spec in order whose key is
   *  blocked here and that nothing in this attempt could exempt. A connect-time check that
   *  wants the address's successes gets a refusal only with them. */
  refusal(specs: readonly CounterSpec[], opts: HitOptions): HitResult | null {
    if (!this.live || this.entries.size === 0) return null;
    const now = this.clock.now();
    for (let i = 0; i < specs.length; i++) {
      const s = specs[i]!;
      const e = this.get(s.key, now);
      if (!e || (s.knownGoodExempt && opts.knownGoodKey !== undefined) || (s.hintExempt && opts.hint !== undefined)) continue;
      const refused = { ok: false as const, index: i, retryAfterMs: Math.max(1, e.endsAt - now), count: e.count, blocked: true };
      if (opts.count !== false || opts.successesKey === undefined) return refused;
      if (e.successes?.key === opts.successesKey) return { ...refused, successes: e.successes.n };
    }
    return null;
  }
}
