// Puts a shared store (Redis) behind a deadline and the operator's choice of what happens
// while it is unreachable: local (same rules on in-memory counters), allow, or deny. Logs
// once per outage and once on recovery; counts every fallback. Never throws.
import type { Logger } from '../logging/logger.js';
import type { BlockEntry, CounterSpec, CounterState, HitOptions, HitResult, LimitStore, RecordBounds, RecordEntry, SendingBounds, SendingCounts, SettleRequest, StoreHealth, StoreRoute } from './store.js';

export type OnError = 'local' | 'allow' | 'deny';

/** How long a client refused in deny mode is told to wait. */
const DENY_RETRY_AFTER_MS = 60_000;

function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(t);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** An optional store method that must be there (every store of ours has it). */
function need<F>(fn: F | undefined): F {
  if (!fn) throw new Error('the store keeps no sending counts');
  return fn;
}

const routed = (r: HitResult, route: StoreRoute): HitResult => (r.ok ? { ...r, route } : r);

export class ResilientStore implements LimitStore {
  private readonly state: StoreHealth = { up: true, fallbacks: 0, outages: 0 };

  constructor(
    private readonly primary: LimitStore,
    private readonly local: LimitStore,
    private readonly onError: OnError,
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {}

  /** A copy: callers read it, only this wrapper changes it. */
  get health(): Readonly<StoreHealth> {
    return { ...this.state };
  }

  private async guarded<T>(op: () => Promise<T>, fallback: () => Promise<T>): Promise<T> {
    let value: T;
    try {
      value = await withDeadline(op(), this.timeoutMs);
    } catch (err) {
      this.state.fallbacks++;
      if (this.state.up) {
        this.state.up = false;
        this.state.outages++;
        this.log.error({ event: 'store.fallback', onError: this.onError, error: (err as Error).message }, `limit store unreachable; onError: ${this.onError}`);
      }
      return fallback();
    }
    if (!this.state.up) {
      this.state.up = true;
      this.log.warn({ event: 'store.recovered', fallbacks: this.state.fallbacks }, 'limit store reachable again');
    }
    return value;
  }

  async hit(specs: readonly CounterSpec[], opts?: HitOptions): Promise<HitResult> {
    return this.guarded(
      async () => routed(await this.primary.hit(specs, opts), 'primary'),
      async (): Promise<HitResult> => {
        switch (this.onError) {
          case 'local':
            return routed(await this.local.hit(specs, opts), 'local');
          case 'allow':
            return { ok: true, route: 'none' };
          case 'deny':
            return { ok: false, index: 0, retryAfterMs: DENY_RETRY_AFTER_MS, count: 0, blocked: false };
        }
      },
    );
  }

  async settle(specs: readonly CounterSpec[], req: SettleRequest, route: StoreRoute = 'primary'): Promise<number[]> {
    if (route === 'none') return specs.map(() => 0);
    if (route === 'local') return this.local.settle(specs, req);
    // A reservation taken in Redis that cannot be settled expires with its TTL. A history row
    // (req.record) the primary did not write is left unwritten here, for the caller's
    // historyAdd, which falls back like any record; so is one a route other than the primary's
    // gets (the local store writes none with a settle).
    return this.guarded(() => this.primary.settle(specs, req), async () => specs.map(() => 0));
  }

  peek(key: string): Promise<CounterState> {
    return this.guarded(() => this.primary.peek(key), () => this.local.peek(key));
  }

  blocks(): Promise<BlockEntry[]> {
    return this.guarded(() => this.primary.blocks(), () => this.local.blocks());
  }

  async reset(key: string): Promise<void> {
    await this.local.reset(key);
    await this.guarded(() => this.primary.reset(key), async () => undefined);
  }

  /** In both, like reset: the block holds in the local fallback during an outage too. */
  async block(key: string, ms: number): Promise<void> {
    await this.local.block(key, ms);
    await this.guarded(() => this.primary.block(key, ms), async () => undefined);
  }

  /** Records (login history) go where the store answers: the local fallback during an outage. */
  async historyAdd(key: string, field: string, b: RecordBounds): Promise<void> {
    const on = (s: LimitStore) => s.historyAdd?.(key, field, b) ?? Promise.resolve();
    await this.guarded(() => on(this.primary), () => on(this.local));
  }

  historyGet(key: string): Promise<RecordEntry[]> {
    const on = (s: LimitStore) => s.historyGet?.(key) ?? Promise.resolve([]);
    return this.guarded(() => on(this.primary), () => on(this.local));
  }

  historyTake(key: string, field: string): Promise<boolean> {
    const on = (s: LimitStore) => s.historyTake?.(key, field) ?? Promise.resolve(false);
    return this.guarded(() => on(this.primary), () => on(this.local));
  }

  /** Sending counts go where the store answers, like records: the local fallback during an
   *  outage (whatever onError says: a store outage never blocks mail, and the limits still
   *  hold on this instance). A store without them fails the call (the limits let it through). */
  sendingPeek(countsKey: string, knownKey: string, prints: readonly string[], at: { atMs: number; knownTtlMs: number }): Promise<SendingCounts & { known: boolean[] }> {
    const on = (s: LimitStore) => need(s.sendingPeek).call(s, countsKey, knownKey, prints, at);
    return this.guarded(() => on(this.primary), () => on(this.local));
  }

  sendingAdd(countsKey: string, knownKey: string, prints: readonly string[], b: SendingBounds): Promise<SendingCounts & { added: number }> {
    const on = (s: LimitStore) => need(s.sendingAdd).call(s, countsKey, knownKey, prints, b);
    return this.guarded(() => on(this.primary), () => on(this.local));
  }

  /** In both, like reset. */
  async sendingReset(countsKey: string, knownKey?: string): Promise<void> {
    await need(this.local.sendingReset).call(this.local, countsKey, knownKey);
    await this.guarded(() => need(this.primary.sendingReset).call(this.primary, countsKey, knownKey), async () => undefined);
  }

  async ready(withinMs: number): Promise<boolean> {
    const ok = (await this.primary.ready?.(withinMs)) ?? true;
    if (!ok) {
      this.state.up = false;
      this.state.outages++;
      this.log.error({ event: 'store.fallback', onError: this.onError, error: `not reachable within ${withinMs} ms of start` }, `limit store unreachable; onError: ${this.onError}`);
    }
    return ok;
  }

  async close(): Promise<void> {
    await Promise.all([this.primary.close(), this.local.close()]);
  }
}
