// The limit store interface: atomic multi-counter check-and-count with TTLs.
// Memory and Redis implement the same semantics; one contract suite tests both.

export type CounterKind = 'attempts' | 'failures';

export interface CounterSpec {
  /** Counter key from limits/keys.ts; the store derives its reservation and block keys. */
  key: string;
  kind: CounterKind;
  limit: number;
  windowMs: number;
  /** Refuse the key this long once the limit is reached; null: until the window ends. */
  blockMs: number | null;
}

/** Which store counted an allowed attempt, so its settle goes to the same place
 *  (the resilient wrapper falls back while Redis is down). */
export type StoreRoute = 'primary' | 'local' | 'none';

export type HitResult =
  | { ok: true; route?: StoreRoute }
  | { ok: false; index: number; retryAfterMs: number; count: number; blocked: boolean };

export interface CounterState {
  count: number;
  /** Failure reservations in flight. */
  inflight: number;
  ttlMs: number;
  blockedMs: number;
}

export interface BlockEntry {
  /** Counter key (as built by limits/keys.ts). */
  key: string;
  count: number;
  /** When the block started (ms since the epoch, the store's clock). */
  sinceMs: number;
  /** How long it still lasts. */
  remainingMs: number;
}

export interface LimitStore {
  /**
   * Atomically, over all specs: if any is blocked, at its limit, or (failures) at its limit
   * counting in-flight reservations, refuse naming the first such spec and change nothing;
   * otherwise count one attempt on every attempts spec and reserve one failure on every
   * failures spec. Reaching an attempts limit starts the block.
   */
  hit(specs: readonly CounterSpec[]): Promise<HitResult>;
  /** Settle the failure reservations taken by hit: failed turns each into a counted failure
   *  (starting the block when it reaches the limit); otherwise it is released. */
  settle(specs: readonly CounterSpec[], failed: boolean, route?: StoreRoute): Promise<void>;
  peek(key: string): Promise<CounterState>;
  /** Keys currently blocked (admin). */
  blocks(): Promise<BlockEntry[]>;
  /** Remove the counter, its reservations and its block. */
  reset(key: string): Promise<void>;
  close(): Promise<void>;
  /** Resolves once the store can answer, or after `withinMs` (then it answers by its
   *  fallback rules until it can). Stores that are always ready omit it. */
  ready?(withinMs: number): Promise<boolean>;
}

/** How long a failure reservation may outlive its settle (a proxy that died mid-login):
 *  longer than any backend login can take, so live reservations never expire early. */
export const RESERVATION_TTL_MS = 120_000;
