// What a contract test gets from each store's runner, and the counter spec it starts from.
import type { CounterSpec, LimitStore } from '../../src/stores/store.js';

export interface StoreHarness {
  store: LimitStore;
  /** Move the store's notion of time forward (fake clock, or Redis-side expiry). */
  advance(ms: number): Promise<void>;
}

/** A spec on a key of its own, so tests sharing a store never share a counter. */
export const spec = (over: Partial<CounterSpec> = {}): CounterSpec => ({
  key: `k-${Math.random().toString(36).slice(2)}`,
  kind: 'attempts',
  limit: 3,
  windowMs: 60_000,
  blockMs: null,
  ...over,
});
