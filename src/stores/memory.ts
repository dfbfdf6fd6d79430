// In-memory limit store: the embedded default for one process. Atomic by construction
// (each call runs to completion on the event loop). Expired entries are dropped on access
// and by a periodic sweep, so attackers cycling through addresses cannot grow it forever.
import type { Clock } from '../clock.js';
import { RESERVATION_TTL_MS, type BlockEntry, type CounterSpec, type CounterState, type HitResult, type LimitStore } from './store.js';

interface Entry {
  v: number;
  exp: number;
}

/** Sweep period; a bound on how long dead entries linger, not on correctness. */
const SWEEP_INTERVAL_MS = 30_000;

export class MemoryStore implements LimitStore {
  private readonly m = new Map<string, Entry>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly clock: Clock) {
    this.timer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.timer.unref();
  }

  get size(): number {
    return this.m.size;
  }

  sweep(): void {
    const now = this.clock.now();
    for (const [k, e] of this.m) if (e.exp <= now) this.m.delete(k);
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

  private block(spec: CounterSpec, now: number): void {
    // The value is when the block started, for the admin listing.
    if (spec.blockMs !== null) this.m.set(`${spec.key}:b`, { v: now, exp: now + spec.blockMs });
  }

  async hit(specs: readonly CounterSpec[]): Promise<HitResult> {
    const now = this.clock.now();
    for (let i = 0; i < specs.length; i++) {
      const s = specs[i]!;
      const c = this.get(s.key, now);
      const b = this.get(`${s.key}:b`, now);
      const count = c?.v ?? 0;
      if (b) return { ok: false, index: i, retryAfterMs: b.exp - now, count, blocked: true };
      if (count >= s.limit) return { ok: false, index: i, retryAfterMs: c!.exp - now, count, blocked: false };
      if (s.kind === 'failures') {
        const r = this.get(`${s.key}:r`, now);
        if (r && count + r.v >= s.limit) return { ok: false, index: i, retryAfterMs: 1000, count, blocked: false };
      }
    }
    for (const s of specs) {
      if (s.kind === 'attempts') {
        if (this.incr(s.key, 1, s.windowMs, now) >= s.limit) this.block(s, now);
      } else {
        this.incr(`${s.key}:r`, 1, RESERVATION_TTL_MS, now, true);
      }
    }
    return { ok: true };
  }

  async settle(specs: readonly CounterSpec[], failed: boolean): Promise<void> {
    const now = this.clock.now();
    for (const s of specs) {
      if (s.kind !== 'failures') continue;
      const r = this.get(`${s.key}:r`, now);
      if (r && --r.v <= 0) this.m.delete(`${s.key}:r`);
      if (failed && this.incr(s.key, 1, s.windowMs, now) >= s.limit) this.block(s, now);
    }
  }

  async peek(key: string): Promise<CounterState> {
    const now = this.clock.now();
    const c = this.get(key, now);
    const b = this.get(`${key}:b`, now);
    return {
      count: c?.v ?? 0,
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
      out.push({ key, count: this.get(key, now)?.v ?? 0, sinceMs: e.v, remainingMs: e.exp - now });
    }
    return out;
  }

  async reset(key: string): Promise<void> {
    this.m.delete(key);
    this.m.delete(`${key}:r`);
    this.m.delete(`${key}:b`);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
  }
}
