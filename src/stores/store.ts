// The limit store interface: atomic multi-counter check-and-count with TTLs.
// Memory and Redis implement the same semantics; one contract suite tests both.

export type CounterKind = 'attempts' | 'failures';

export interface CounterSpec {
  /** Counter key from limits/keys.ts; the store derives its reservation, block, dedupe and
   *  offence keys from it. */
  key: string;
  kind: CounterKind;
  limit: number;
  windowMs: number;
  /** Refuse the key this long once the limit is reached; null: until the window ends. */
  blockMs: number | null;
  /** Failures only: count distinct members (HyperLogLog in Redis, a bounded set in memory)
   *  given at settle, instead of events. Attempts in flight are reserved as for any failures
   *  spec (each may add a member), so parallel guesses cannot overshoot the limit either. */
  distinct?: boolean;
  /** Failures only: no reservation for attempts in flight. For a distinct rule on an address
   *  (users per address), where the many users behind one NAT logging in at once are not
   *  failures in the making; its limit may then be overshot by the attempts in flight. */
  unreserved?: boolean;
  /** Not refused when the attempt's known-good pair exists. */
  knownGoodExempt?: boolean;
  /** Not refused when the attempt's password matches its account's hint (HitOptions.hint). */
  hintExempt?: boolean;
  /** A success clears the count and the block (a wide prefix narrows back). */
  resetOnSuccess?: boolean;
  /** Failures only: a fingerprint already counted in this window does not count again. */
  dedupe?: boolean;
  /** Escalating blocks: each block within blockMemoryMs of the last is blockGrowth times
   *  longer, up to blockMaxMs. Without blockMemoryMs (policy always gives the rule's, whose
   *  default is in the config schema) no block is remembered, so none grows. */
  blockGrowth?: number;
  blockMemoryMs?: number;
  blockMaxMs?: number;
}

/** Which store counted an allowed attempt, so its settle goes to the same place
 *  (the resilient wrapper falls back while Redis is down). */
export type StoreRoute = 'primary' | 'local' | 'none';

export interface HitOptions {
  /** The attempt's known-good pair key; exempt specs do not refuse when it exists. */
  knownGoodKey?: string;
  /** false: only check (connect-time), count and reserve nothing. Default true. */
  count?: boolean;
  /** The account's hint key and the attempt's hint: hint-exempt specs do not refuse when the
   *  stored hint equals it. */
  hint?: { key: string; value: string };
  /** The address's successes key: the hit reports how many users logged in from it (when it
   *  allows; a check-only hit (count: false) when it refuses too). */
  successesKey?: string;
}

export type HitResult =
  | {
      ok: true;
      route?: StoreRoute;
      knownGood?: boolean;
      /** The attempt's password matched its account's hint. */
      hintMatch?: boolean;
      /** Distinct users who logged in from the address (successesKey; about, in Redis). */
      successes?: number;
      /** Specs (by index) whose block this hit started. */
      blockedNow?: number[];
    }
  | {
      ok: false;
      index: number;
      retryAfterMs: number;
      count: number;
      blocked: boolean;
      /** A check-only hit with a successesKey: distinct users who logged in from the address. */
      successes?: number;
    };

export interface SettleRequest {
  /** The backend rejected the login. */
  failed: boolean;
  /** hit reserved one failure per failures spec (false when it refused: dry-run). */
  reserved: boolean;
  /** Keyed hash of (client, user, password) for dedupe; never the password. */
  fingerprint?: string;
  /** Per spec, the member a distinct spec counts (client key or user hash). */
  members?: readonly (string | null)[];
  /** On success: remember the known-good pair for ttlMs. */
  knownGood?: { key: string; ttlMs: number };
  /** On success: the account's hint becomes this one, for ttlMs. */
  hint?: { key: string; value: string; ttlMs: number };
  /** On success: the user (a hash) joins the address's successes, kept ttlMs after the last. */
  success?: { key: string; member: string; ttlMs: number };
  /** The caller does not read the counts (a success): a store across IPC need not answer. */
  countsUnread?: boolean;
  /** The login's history row (limits/history.ts), for a store that can write it with this
   *  settle, after everything else the settle writes (on a Redis Cluster: in the row's slot;
   *  the other slots' settles run beside it, as they do with each other). See RecordRow. */
  record?: RecordRow;
}

/** A record row a settle may carry: what historyAdd(key, field, bounds) would write. A store
 *  that writes it with the settle (Redis: in the script of the slot holding its key; across IPC:
 *  the primary, after the settle) sets `written`; any other leaves it unset, and so does one
 *  whose write failed, and the caller then writes it with historyAdd after the settle. A row
 *  never fails the settle. */
export interface RecordRow {
  key: string;
  field: string;
  bounds: RecordBounds;
  written?: boolean;
}

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

/** One row of a capped record (an account's login history, its password prints): how many
 *  events it counts, and when the first and the last happened (ms since the epoch). */
export interface RecordEntry {
  field: string;
  count: number;
  firstMs: number;
  lastMs: number;
}

/** historyAdd's bounds: the record lives ttlMs after its last event (entries older than that
 *  are dropped), and keeps at most cap entries (the one seen least lately goes first). */
export interface RecordBounds {
  atMs: number;
  ttlMs: number;
  cap: number;
  /** Only count it in a record that exists (a failure of an account with a history): names
   *  made up by a spray leave nothing behind. */
  existing?: boolean;
}

/** An account's sending counts in the current window (limits/sending.ts). */
export interface SendingCounts {
  messages: number;
  recipients: number;
  newRecipients: number;
  /** How long the window still lasts; 0 when none is open (nothing counted). */
  ttlMs: number;
}

/** sendingAdd's bounds. The counts' window starts at their first count and lasts windowMs
 *  (fixed, like the login counters); the known set keeps a recipient knownTtlMs after it was
 *  last sent to, and at most knownCap of them (the one sent to least lately goes first). */
export interface SendingBounds {
  atMs: number;
  windowMs: number;
  knownTtlMs: number;
  knownCap: number;
}

export interface LimitStore {
  /**
   * Over all specs: if any is blocked, at its limit, or (failures) at its limit counting
   * in-flight reservations, refuse naming the first such spec and change nothing (exempt specs
   * never refuse when the known-good key exists or the hint matches); otherwise count one
   * attempt on every attempts spec and reserve one failure on every failures spec. Reaching an
   * attempts limit starts the block. Atomic per key; the memory store is atomic over all of
   * them, Redis over each subject's (Cluster slot's) keys, where a refusal by one subject gives
   * back what the others counted right after (a block that counting started stays).
   */
  hit(specs: readonly CounterSpec[], opts?: HitOptions): Promise<HitResult>;
  /** Settle what hit reserved: release the reservations; if failed, count the failure on every
   *  failures spec (deduped, or as a distinct member), starting the block at the limit; on
   *  success, remember the known-good pair. Returns each failures spec's count afterwards (an
   *  attempts spec's where the store read it, else 0). */
  settle(specs: readonly CounterSpec[], req: SettleRequest, route?: StoreRoute): Promise<number[]>;
  peek(key: string): Promise<CounterState>;
  /** Keys currently blocked (admin). */
  blocks(): Promise<BlockEntry[]>;
  /** Remove the counter, its reservations, dedupe memory and block. */
  reset(key: string): Promise<void>;
  /** Block the key for `ms` from now whatever its count (admin: a block by hand); it lists,
   *  refuses and lifts like a block a rule started. */
  block(key: string, ms: number): Promise<void>;
  close(): Promise<void>;
  /** Capped records (limits/history.ts): count one event of `field` in the record at `key`.
   *  Optional: a store without them keeps no history (and raises no account events). */
  historyAdd?(key: string, field: string, bounds: RecordBounds): Promise<void>;
  /** The record's entries, newest last event first ([] when none). */
  historyGet?(key: string): Promise<RecordEntry[]>;
  /** Removes one entry; true when it was there (an alert taken once). */
  historyTake?(key: string, field: string): Promise<boolean>;
  /** Sending limits (limits/sending.ts): the counts at `countsKey`, and for each print
   *  whether the known set at `knownKey` has it seen within knownTtlMs before atMs. Reads only.
   *  Optional, like the two below: a store without them tracks no sending. */
  sendingPeek?(countsKey: string, knownKey: string, prints: readonly string[], at: { atMs: number; knownTtlMs: number }): Promise<SendingCounts & { known: boolean[] }>;
  /** One accepted message to `prints` (duplicates possible), atomically: messages +1,
   *  recipients + prints.length, newRecipients + the distinct prints not known; every print
   *  joins the known set as seen at atMs. The counts afterwards, and how many prints were new
   *  (`added`: whether this call crossed a limit). */
  sendingAdd?(countsKey: string, knownKey: string, prints: readonly string[], bounds: SendingBounds): Promise<SendingCounts & { added: number }>;
  /** Removes the counts, and the known set when its key is given. */
  sendingReset?(countsKey: string, knownKey?: string): Promise<void>;
  /** Resolves once the store can answer, or after `withinMs` (then it answers by its
   *  fallback rules until it can). Stores that are always ready omit it. */
  ready?(withinMs: number): Promise<boolean>;
  /** Whether the store answers, for /readyz and the store metrics. Stores without a fallback
   *  (memory, Redis on its own) omit it: callers take them as up. */
  readonly health?: Readonly<StoreHealth>;
}

export interface StoreHealth {
  up: boolean;
  /** Calls answered by the fallback (onError) instead of the store. */
  fallbacks: number;
  /** Times the store went from answering to not. */
  outages: number;
}

/** How long a failure reservation may outlive its settle (a proxy that died mid-login):
 *  longer than any backend login can take, so live reservations never expire early. */
export const RESERVATION_TTL_MS = 120_000;

/** Retry-after for a refusal caused only by in-flight reservations. */
export const INFLIGHT_RETRY_MS = 1_000;

/** Longest block a growing block reaches whatever its growth and count (366 days, the
 *  config's longest window): Redis refuses a PX past its range, which would fail the script. */
export const MAX_BLOCK_MS = 366 * 86_400_000;

/** In-memory bound of a dedupe or distinct set per key: beyond it, the memory store counts
 *  every failure (dedupe) or stops adding members (distinct), so one key cannot grow without
 *  bound. Redis uses HyperLogLog (fixed 12 KiB) for distinct. */
export const MAX_SET_MEMBERS = 4096;

/** Whether a spec's blocks grow: a factor above 1 and a memory of past blocks to count them in. */
export function growsBlocks(spec: CounterSpec): spec is CounterSpec & { blockGrowth: number; blockMemoryMs: number } {
  return (spec.blockGrowth ?? 0) > 1 && (spec.blockMemoryMs ?? 0) > 0;
}

/** The block length for the n-th block within the block memory (n from 1): the TypeScript copy
 *  of lib.lua's start_block. */
export function grownBlockMs(spec: CounterSpec, n: number): number {
  const base = spec.blockMs ?? 0;
  if (!growsBlocks(spec)) return base;
  // blockMaxMs 0 is no cap, as it travels to Redis.
  return Math.min(spec.blockMaxMs || MAX_BLOCK_MS, MAX_BLOCK_MS, Math.floor(base * spec.blockGrowth ** (n - 1)));
}
