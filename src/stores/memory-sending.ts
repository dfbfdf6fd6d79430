// The memory store's sending counts and known recipients (limits/sending.ts), by the rules
// lua/sending.lua keeps in Redis: per account a fixed-window count, and a map print → when it
// was last sent to, at most knownCap long. No timers: expired entries go on access and by the
// store's sweep.
import type { Clock } from '../clock.js';
import type { SendingBounds, SendingCounts } from './store.js';

/** Accounts kept (counts and known sets each): past it the one written least lately is
 *  forgotten (its counts start again, its recipients are first-time again). Only accounts that
 *  logged in and sent get here, so this bounds a store, not an attack: 100,000 accounts sending
 *  at once is beyond what one process serves. */
export const MAX_SENDING_ACCOUNTS = 100_000;

interface Counts {
  messages: number;
  recipients: number;
  newRecipients: number;
  exp: number;
}

/** A known set: its Map's order is the order of last sends (a send moves a print to the end),
 *  so the oldest is first. */
interface Known {
  prints: Map<string, number>;
  exp: number;
}

const NONE: SendingCounts = { messages: 0, recipients: 0, newRecipients: 0, ttlMs: 0 };

export class MemorySending {
  private readonly counts = new Map<string, Counts>();
  private readonly known = new Map<string, Known>();

  constructor(
    private readonly clock: Clock,
    private readonly maxAccounts = MAX_SENDING_ACCOUNTS,
  ) {}

  get accounts(): number {
    return this.counts.size;
  }

  peek(countsKey: string, knownKey: string, prints: readonly string[], at: { atMs: number; knownTtlMs: number }): SendingCounts & { known: boolean[] } {
    const now = this.clock.now();
    const k = live(this.known, knownKey, now);
    const known = prints.map((p) => (k?.prints.get(p) ?? -Infinity) > at.atMs - at.knownTtlMs);
    return { ...view(live(this.counts, countsKey, now), now), known };
  }

  add(countsKey: string, knownKey: string, prints: readonly string[], b: SendingBounds): SendingCounts & { added: number } {
    const now = this.clock.now();
    let added = 0;
    if (prints.length > 0) {
      const k = live(this.known, knownKey, now) ?? { prints: new Map<string, number>(), exp: 0 };
      // Oldest first: stop at the first one still known.
      for (const [p, last] of k.prints) {
        if (last > b.atMs - b.knownTtlMs) break;
        k.prints.delete(p);
      }
      for (const p of prints) {
        const last = k.prints.get(p);
        if (last === undefined) added++;
        k.prints.delete(p);
        k.prints.set(p, Math.max(last ?? b.atMs, b.atMs));
      }
      for (const p of k.prints.keys()) {
        if (k.prints.size <= b.knownCap) break;
        k.prints.delete(p);
      }
      k.exp = now + b.knownTtlMs;
      this.touch(this.known, knownKey, k);
    }
    const c = live(this.counts, countsKey, now) ?? { messages: 0, recipients: 0, newRecipients: 0, exp: now + b.windowMs };
    c.messages++;
    c.recipients += prints.length;
    c.newRecipients += added;
    this.touch(this.counts, countsKey, c);
    return { ...view(c, now), added };
  }

  reset(countsKey: string, knownKey?: string): void {
    this.counts.delete(countsKey);
    if (knownKey !== undefined) this.known.delete(knownKey);
  }

  sweep(): void {
    const now = this.clock.now();
    for (const m of [this.counts, this.known]) for (const [key, e] of m) if (e.exp <= now) m.delete(key);
  }

  /** Written now: to the end of its map, and the map back within maxAccounts. */
  private touch<T>(m: Map<string, T>, key: string, value: T): void {
    m.delete(key);
    m.set(key, value);
    for (const first of m.keys()) {
      if (m.size <= this.maxAccounts) break;
      m.delete(first);
    }
  }
}

function live<T extends { exp: number }>(m: Map<string, T>, key: string, now: number): T | undefined {
  const e = m.get(key);
  if (e && e.exp <= now) m.delete(key);
  return e && e.exp > now ? e : undefined;
}

function view(c: Counts | undefined, now: number): SendingCounts {
  return c ? { messages: c.messages, recipients: c.recipients, newRecipients: c.newRecipients, ttlMs: c.exp - now } : { ...NONE };
}
