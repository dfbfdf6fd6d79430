// In the primary: limits.connections (perIp, total) over every worker's connections, exact as
// in one process, without a message in the common case. Each worker owns an implicit share of
// every limit (floor(limit / workers) per address and of the total) and admits and releases
// within it alone (remote-connections.ts). Only a connection beyond its share is asked here:
// a pool (one address, or the total) counts every worker not heard from at its full share,
// which can never be too few; when that leaves no room, the workers are asked how many they
// hold ("central": from then they report each release of that pool's connections here and
// admit its new ones through here) and the exact sum decides. A pool goes back to shares once
// what was granted here fits beside every worker's full share and it is not full. A connection
// that fits its worker's share of one limit is checked only against the other. At the total the
// oldest connection not known to have logged in goes, wherever it is: a connection granted
// here or a worker's own oldest one (server/connections.ts' rule). Pure apart from the
// injected asks.
import type { ConnAdmission } from './protocol.js';

/** Connections asked to make room for one new one before it is refused: the oldest ones not
 *  known to be spliced may be in a login just now (not evictable, asked for nothing). Bounds
 *  the round trips one admission can cost when the total is reached. */
export const MAX_EVICTION_ASKS = 16;
/** The pool of the total (a client key is never empty). */
export const TOTAL = '';

interface Entry {
  worker: number;
  cid: number;
  key: string;
  at: number;
  /** Counted on its worker's share of the address's limit and of the total (the worker
   *  asked for the other one only), not in the pools here. */
  share: InShare;
  spliced: boolean;
  /** Its worker is being asked to evict it. */
  asking: boolean;
}

/** Which limits a connection asked for fits in its worker's share of. */
export interface InShare {
  ip: boolean;
  total: boolean;
}
const NONE: InShare = { ip: false, total: false };

interface Pool {
  /** Connections granted here (entries). */
  granted: number;
  /** Per worker that answered `central`: its own connections in this pool. */
  own: Map<number, number>;
  asking: Promise<boolean> | null;
}

/** What the primary asks the workers (calls over their channels). */
export interface WorkerAsks {
  /** The worker switches the pool (an address, or the total: null) to central and says how
   *  many connections of it it holds on its share. */
  central(worker: number, key: string | null): Promise<number>;
  /** When the worker's oldest own connection still before login was admitted, or null. */
  oldest(worker: number): Promise<number | null>;
  /** Evict the worker's oldest own connection still before login; false: none. */
  evictOwn(worker: number): Promise<boolean>;
  /** Evict this connection granted here if it is still before login; false: it is not. */
  evict(worker: number, cid: number): Promise<boolean>;
  /** The pool is back to shares in that worker. */
  local(worker: number, key: string | null): void;
}

export class SharedConnections {
  /** By `worker:cid`; insertion order is age. */
  private readonly open = new Map<string, Entry>();
  private readonly pools = new Map<string, Pool>();
  /** Workers that reported every pool (centralAll): 0 in a pool they are not listed in. */
  private readonly allKnown = new Set<number>();
  /** Admissions under way; released meanwhile (the client left): cancelled. */
  private readonly waiting = new Map<string, { cancelled: boolean }>();

  constructor(
    private readonly limits: () => { perIp: number; total: number },
    /** The configured worker count: the shares are floor(limit / it). */
    private readonly slots: number,
    /** The workers linked now (ids). */
    private readonly workers: () => number[],
    private readonly asks: WorkerAsks,
    private readonly now: () => number = Date.now,
  ) {}

  /** Connections granted here and still open. */
  get size(): number {
    return this.open.size;
  }

  /** Connections of this address granted here. */
  countFor(key: string): number {
    return this.pools.get(key)?.granted ?? 0;
  }

  /** Pools not on shares (tests: they all go back). */
  get central(): number {
    return this.pools.size;
  }

  /** At most how many connections of a pool are open: exact for the workers that answered,
   *  a full share for the others. */
  held(key: string, limit: number): number {
    const p = this.pools.get(key);
    const share = Math.floor(limit / this.slots);
    let n = p?.granted ?? 0;
    for (const w of this.workers()) n += p?.own.get(w) ?? (this.allKnown.has(w) ? 0 : share);
    return n;
  }

  async admit(worker: number, cid: number, key: string, share: InShare = NONE): Promise<ConnAdmission> {
    const id = `${worker}:${cid}`;
    const wait = { cancelled: false };
    this.waiting.set(id, wait);
    try {
      return await this.decide(worker, cid, key, share, wait);
    } finally {
      this.waiting.delete(id);
      this.gc(key);
      this.gc(TOTAL);
    }
  }

  private async decide(worker: number, cid: number, key: string, share: InShare, wait: { cancelled: boolean }): Promise<ConnAdmission> {
    let roomMade = false;
    for (;;) {
      // Every await may let others come and go: decide on what holds now.
      if (wait.cancelled) return 'total'; // nobody waits for this answer any more
      const { perIp, total } = this.limits();
      if (!share.ip && this.held(key, perIp) >= perIp) {
        if (await this.learn(key)) continue;
        return 'per-ip';
      }
      if (!share.total && this.held(TOTAL, total) >= total) {
        if (await this.learn(TOTAL)) continue;
        if (roomMade) return 'total';
        roomMade = true;
        await this.makeRoom(total);
        continue;
      }
      this.open.set(`${worker}:${cid}`, { worker, cid, key, at: this.now(), share, spliced: false, asking: false });
      if (!share.ip) this.pool(key).granted++;
      if (!share.total) this.pool(TOTAL).granted++;
      return 'ok';
    }
  }

  release(worker: number, cid: number): void {
    const id = `${worker}:${cid}`;
    const wait = this.waiting.get(id);
    if (wait) wait.cancelled = true;
    const e = this.open.get(id);
    if (e) this.remove(e);
  }

  /** One less on a worker's shares of the address and/or the total (a connection on them
   *  ended, or one it counted there was not admitted), where it said how many it holds. Only
   *  what it told is told here (messages keep their order): a worker that has not answered
   *  counts at its full share, and an answer still on its way already leaves this one out. */
  releaseOwn(worker: number, key: string, share: InShare): void {
    for (const [k, on] of [[key, share.ip], [TOTAL, share.total]] as const) {
      const p = this.pools.get(k);
      const n = p?.own.get(worker);
      if (on && p && n !== undefined) p.own.set(worker, Math.max(0, n - 1));
      this.gc(k);
    }
  }

  spliced(worker: number, cid: number): void {
    const e = this.open.get(`${worker}:${cid}`);
    if (e) e.spliced = true;
  }

  /** A worker exited: its connections went with it. */
  dropWorker(worker: number): void {
    for (const e of this.open.values()) if (e.worker === worker) this.remove(e);
    for (const [id, wait] of this.waiting) if (id.startsWith(`${worker}:`)) wait.cancelled = true;
    this.allKnown.delete(worker);
    for (const [k, p] of this.pools) {
      p.own.delete(worker);
      this.gc(k);
    }
  }

  /** A worker's answer to `central`: how many connections of the pool it holds on its share
   *  (read in order with its own-release notes). */
  told(worker: number, key: string | null, n: number): void {
    if (this.workers().includes(worker)) this.pool(key ?? TOTAL).own.set(worker, n);
  }

  /** Before the limits change (a reload): every worker reports every pool and admits only
   *  through here from now on (its share of the old limits is no bound under the new ones). */
  centralAll(worker: number, report: { keys: [string, number][]; total: number }): void {
    this.allKnown.add(worker);
    for (const [k, n] of report.keys) this.pool(k).own.set(worker, n);
    this.pool(TOTAL).own.set(worker, report.total);
  }

  private pool(key: string): Pool {
    let p = this.pools.get(key);
    if (!p) this.pools.set(key, (p = { granted: 0, own: new Map(), asking: null }));
    return p;
  }

  /** Asks the workers not heard from about the pool; true if one answered. */
  private learn(key: string): Promise<boolean> {
    const p = this.pool(key);
    if (p.asking) return p.asking;
    const unknown = this.workers().filter((w) => !p.own.has(w) && !this.allKnown.has(w));
    if (!unknown.length) return Promise.resolve(false);
    // The count itself arrives as a note (held()); no answer: the worker stays counted at
    // its full share.
    const ask = (w: number): Promise<boolean> =>
      this.asks.central(w, key === TOTAL ? null : key).then(
        () => p.own.has(w),
        () => false,
      );
    p.asking = Promise.all(unknown.map(ask)).then((r) => {
      p.asking = null;
      return r.some(Boolean);
    });
    return p.asking;
  }

  /** Back to shares once what was granted here fits beside every worker's full share and the
   *  pool is not full now (a full one stays exact: the next ask needs no round of questions). */
  private gc(key: string): void {
    const p = this.pools.get(key);
    if (!p || p.asking) return;
    const limits = this.limits();
    const limit = key === TOTAL ? limits.total : limits.perIp;
    if (p.granted + this.slots * Math.floor(limit / this.slots) > limit || (p.own.size > 0 && this.held(key, limit) >= limit)) return;
    // Workers that reported everything (a limits reload) stay counted as they said.
    for (const w of [...p.own.keys()]) {
      if (this.allKnown.has(w)) continue;
      p.own.delete(w);
      this.asks.local(w, key === TOTAL ? null : key);
    }
    if (p.granted === 0 && [...p.own.values()].every((n) => n === 0)) this.pools.delete(key);
  }

  private remove(e: Entry): void {
    if (!this.open.delete(`${e.worker}:${e.cid}`)) return;
    for (const [k, inShare] of [[e.key, e.share.ip], [TOTAL, e.share.total]] as const) {
      const p = this.pools.get(k);
      if (!inShare && p) p.granted--;
      this.gc(k);
    }
  }

  /** Asks the oldest candidates, one at a time, until one went or someone left on their own:
   *  connections granted here (by age) and each worker's own oldest one before login. */
  private async makeRoom(total: number): Promise<void> {
    const own = [...(this.pools.get(TOTAL)?.own ?? [])].filter(([, n]) => n > 0).map(([w]) => w);
    const oldest = await Promise.all(own.map(async (w) => ({ w, at: await this.asks.oldest(w).catch(() => null) })));
    type Candidate = { at: number; entry?: Entry; worker?: number };
    const candidates: Candidate[] = [...this.open.values()].filter((e) => !e.spliced).map((entry) => ({ at: entry.at, entry }));
    for (const { w, at } of oldest) if (at !== null) candidates.push({ at, worker: w });
    candidates.sort((a, b) => a.at - b.at); // stable: entries of one instant keep their order
    let asked = 0;
    for (const c of candidates) {
      if (this.held(TOTAL, total) < total || asked >= MAX_EVICTION_ASKS) return;
      const e = c.entry;
      if (e && (e.spliced || e.asking || !this.open.has(`${e.worker}:${e.cid}`))) continue;
      asked++;
      if (!e) {
        // Its worker released it (a note before this answer) if it went.
        if (await this.asks.evictOwn(c.worker!).catch(() => false)) return;
        continue;
      }
      e.asking = true;
      const gone = await this.asks.evict(e.worker, e.cid).catch(() => false);
      e.asking = false;
      if (gone) return this.remove(e);
    }
  }
}
