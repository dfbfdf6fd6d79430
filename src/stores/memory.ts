// In-memory limit store: the embedded default for one process. Atomic by construction
// (each call runs to completion on the event loop). Expired entries are dropped on access
// and by a periodic sweep, and sets are bounded, so attackers cycling through addresses or
// passwords cannot grow it forever.
import type { Clock } from '../clock.js';
import {
  grownBlockMs,
  growsBlocks,
  INFLIGHT_RETRY_MS,
  MAX_SET_MEMBERS,
  RESERVATION_TTL_MS,
  type BlockEntry,
  type CounterSpec,
  type CounterState,
  type HitOptions,
  type HitResult,
  type LimitStore,
  type RecordBounds,
  type RecordEntry,
  type SendingBounds,
  type SendingCounts,
  type SettleRequest,
} from './store.js';
import { addToRecord, sortedRows, type Rows } from './records.js';
import { MemorySending } from './memory-sending.js';

interface Entry {
  v: number;
  exp: number;
  set?: Set<string>;
  /** A password hint's value. */
  hint?: string;
}

/** Sweep period; a bound on how long dead entries linger, not on correctness. */
const SWEEP_INTERVAL_MS = 30_000;

export class MemoryStore implements LimitStore {
  private readonly m = new Map<string, Entry>();
  /** Capped records (historyAdd): rows and when the whole record expires. */
  private readonly records = new Map<string, { rows: Rows; exp: number; ttlMs: number }>();
  /** Sending counts and known recipients (sendingAdd): memory-sending.ts. */
  private readonly sending: MemorySending;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly clock: Clock) {
    this.sending = new MemorySending(clock);
    this.timer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.timer.unref();
  }

  get size(): number {
    return this.m.size;
  }

  sweep(): void {
    const now = this.clock.now();
    for (const [k, e] of this.m) if (e.exp <= now) this.m.delete(k);
    for (const [k, r] of this.records) if (r.exp <= now) this.records.delete(k);
    this.sending.sweep();
  }

  private record(key: string, now: number): Rows | undefined {
    const r = this.records.get(key);
    if (r && r.exp <= now) this.records.delete(key);
    return r && r.exp > now ? r.rows : undefined;
  }

  async historyAdd(key: string, field: string, b: RecordBounds): Promise<void> {
    if (b.existing && !this.record(key, this.clock.now())) return;
    const rows = this.record(key, this.clock.now()) ?? new Map<string, RecordEntry>();
    addToRecord(rows, field, b);
    this.records.set(key, { rows, exp: this.clock.now() + b.ttlMs, ttlMs: b.ttlMs });
  }

  async historyGet(key: string): Promise<RecordEntry[]> {
    const now = this.clock.now();
    const r = this.records.get(key);
    if (!r || r.exp <= now) return [];
    return sortedRows([...r.rows.values()].filter((row) => row.lastMs > now - r.ttlMs)).map((row) => ({ ...row }));
  }

  async historyTake(key: string, field: string): Promise<boolean> {
    return this.record(key, this.clock.now())?.delete(field) ?? false;
  }

  async sendingPeek(countsKey: string, knownKey: string, prints: readonly string[], at: { atMs: number; knownTtlMs: number }): Promise<SendingCounts & { known: boolean[] }> {
    return this.sending.peek(countsKey, knownKey, prints, at);
  }

  async sendingAdd(countsKey: string, knownKey: string, prints: readonly string[], b: SendingBounds): Promise<SendingCounts & { added: number }> {
    return this.sending.add(countsKey, knownKey, prints, b);
  }

  async sendingReset(countsKey: string, knownKey?: string): Promise<void> {
    this.sending.reset(countsKey, knownKey);
  }

  private get(key: string, now: number): Entry | undefined {
    const e = this.m.get(key);
    if (e && e.exp <= now) {
      this.m.delete(key);
      return undefined;
    }
    return e;
  }

  /** INCR with a TTL started by the first hit (refresh: reset TTL on every hit). */
  private incr(key: string, by: number, ttlMs: number, now: number, refresh = false): number {
    const e = this.get(key, now);
    if (!e) {
      this.m.set(key, { v: by, exp: now + ttlMs });
      return by;
    }
    e.v += by;
    if (refresh) e.exp = now + ttlMs;
    return e.v;
  }

  /** Adds to a bounded set with a TTL started by the first member; true when it was new. */
  private add(key: string, member: string, ttlMs: number, now: number): boolean {
    let e = this.get(key, now);
    if (!e) {
      e = { v: 0, exp: now + ttlMs, set: new Set() };
      this.m.set(key, e);
    }
    if (e.set!.has(member)) return false;
    if (e.set!.size < MAX_SET_MEMBERS) e.set!.add(member);
    return true;
  }

  private count(spec: CounterSpec, now: number): { value: number; exp: number } {
    const c = this.get(spec.key, now);
    return { value: c ? (spec.distinct ? c.set?.size ?? 0 : c.v) : 0, exp: c?.exp ?? now };
  }

  private startBlock(spec: CounterSpec, now: number): void {
    if (spec.blockMs === null) return;
    // The n-th block within the memory: the memory restarts with each block.
    const n = growsBlocks(spec) ? this.incr(`${spec.key}:o`, 1, spec.blockMemoryMs, now, true) : 1;
    // The value is when the block started, for the admin listing.
    this.m.set(`${spec.key}:b`, { v: now, exp: now + grownBlockMs(spec, n) });
  }

  async hit(specs: readonly CounterSpec[], opts: HitOptions = {}): Promise<HitResult> {
    const now = this.clock.now();
    const knownGood = opts.knownGoodKey !== undefined && this.get(opts.knownGoodKey, now) !== undefined;
    const hintMatch = opts.hint !== undefined && this.get(opts.hint.key, now)?.hint === opts.hint.value;
    const successes = opts.successesKey !== undefined ? (this.get(opts.successesKey, now)?.set?.size ?? 0) : 0;
    const seen = { knownGood, hintMatch, successes };
    // A check-only refusal reports the address's successes too (the connect-time check).
    const also = opts.count === false && opts.successesKey !== undefined ? { successes } : {};
    for (let i = 0; i < specs.length; i++) {
      const s = specs[i]!;
      if ((s.knownGoodExempt && knownGood) || (s.hintExempt && hintMatch)) continue;
      const { value, exp } = this.count(s, now);
      const b = this.get(`${s.key}:b`, now);
      if (b) return { ok: false, index: i, retryAfterMs: b.exp - now, count: value, blocked: true, ...also };
      if (value >= s.limit) return { ok: false, index: i, retryAfterMs: exp - now, count: value, blocked: false, ...also };
      if (s.kind === 'failures' && !s.unreserved) {
        const r = this.get(`${s.key}:r`, now);
        if (r && value + r.v >= s.limit) return { ok: false, index: i, retryAfterMs: INFLIGHT_RETRY_MS, count: value, blocked: false, ...also };
      }
    }
    if (opts.count === false) return { ok: true, ...seen };
    const blockedNow: number[] = [];
    for (const [i, s] of specs.entries()) {
      if (s.kind === 'attempts') {
        if (this.incr(s.key, 1, s.windowMs, now) >= s.limit && s.blockMs !== null) {
          this.startBlock(s, now);
          blockedNow.push(i);
        }
      } else if (!s.unreserved) {
        this.incr(`${s.key}:r`, 1, RESERVATION_TTL_MS, now, true);
      }
    }
    return blockedNow.length ? { ok: true, ...seen, blockedNow } : { ok: true, ...seen };
  }

  async settle(specs: readonly CounterSpec[], req: SettleRequest): Promise<number[]> {
    const now = this.clock.now();
    const counts = specs.map((s, i) => {
      if (!req.failed && s.resetOnSuccess) {
        this.m.delete(s.key);
        this.m.delete(`${s.key}:b`);
      }
      if (s.kind !== 'failures') return this.count(s, now).value;
      if (req.reserved && !s.unreserved) {
        const r = this.get(`${s.key}:r`, now);
        if (r && --r.v <= 0) this.m.delete(`${s.key}:r`);
      }
      if (!req.failed) return this.count(s, now).value;
      let c: number;
      if (s.distinct) {
        const member = req.members?.[i];
        if (!member) return this.count(s, now).value;
        this.add(s.key, member, s.windowMs, now);
        c = this.count(s, now).value;
      } else if (s.dedupe && req.fingerprint && !this.add(`${s.key}:d`, req.fingerprint, s.windowMs, now)) {
        return this.count(s, now).value; // the same wrong password again: counted once
      } else {
        c = this.incr(s.key, 1, s.windowMs, now);
      }
      if (c >= s.limit && !this.get(`${s.key}:b`, now)) this.startBlock(s, now);
      return c;
    });
    if (!req.failed) {
      if (req.knownGood) this.m.set(req.knownGood.key, { v: 1, exp: now + req.knownGood.ttlMs });
      if (req.hint) this.m.set(req.hint.key, { v: 0, exp: now + req.hint.ttlMs, hint: req.hint.value });
      if (req.success) {
        this.add(req.success.key, req.success.member, req.success.ttlMs, now);
        this.get(req.success.key, now)!.exp = now + req.success.ttlMs;
      }
    }
    return counts;
  }

  async peek(key: string): Promise<CounterState> {
    const now = this.clock.now();
    const c = this.get(key, now);
    const b = this.get(`${key}:b`, now);
    return {
      count: c ? (c.set ? c.set.size : c.v) : 0,
      inflight: this.get(`${key}:r`, now)?.v ?? 0,
      ttlMs: c ? c.exp - now : 0,
      blockedMs: b ? b.exp - now : 0,
    };
  }

  async blocks(): Promise<BlockEntry[]> {
    const now = this.clock.now();
    const out: BlockEntry[] = [];
    for (const [k, e] of this.m) {
      if (!k.endsWith(':b') || e.exp <= now) continue;
      const key = k.slice(0, -2);
      const c = this.get(key, now);
      out.push({ key, count: c ? (c.set ? c.set.size : c.v) : 0, sinceMs: e.v, remainingMs: e.exp - now });
    }
    return out;
  }

  async reset(key: string): Promise<void> {
    for (const suffix of ['', ':r', ':b', ':d', ':o']) this.m.delete(`${key}${suffix}`);
  }

  async block(key: string, ms: number): Promise<void> {
    const now = this.clock.now();
    this.m.set(`${key}:b`, { v: now, exp: now + ms });
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
  }
}
