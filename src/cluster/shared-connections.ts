// In the primary: limits.connections (perIp, total) over every worker's connections, so they
// hold exactly as in one process. Workers ask at connect (admit), tell at login (spliced) and
// at close (release). At the total the oldest connection not known to have logged in is asked
// to go (its worker evicts it if it is still before login, server/connections.ts' rule); a
// spliced session is never asked. Pure apart from the injected evict call.
import type { ConnAdmission } from './protocol.js';

/** Connections asked to make room for one new one before it is refused: the oldest ones not
 *  known to be spliced may be in a login just now (not evictable, asked for nothing). Bounds
 *  the round trips one admission can cost when the total is reached. */
export const MAX_EVICTION_ASKS = 16;

interface Entry {
  worker: number;
  cid: number;
  key: string;
  spliced: boolean;
  /** Its worker is being asked to evict it. */
  asking: boolean;
}

export type Evict = (worker: number, cid: number) => Promise<boolean>;

export class SharedConnections {
  /** By `worker:cid`; insertion order is age. */
  private readonly open = new Map<string, Entry>();
  private readonly byIp = new Map<string, number>();
  /** Admissions waiting for room; released meanwhile (the client left): cancelled. */
  private readonly waiting = new Map<string, { cancelled: boolean }>();

  constructor(
    private readonly limits: () => { perIp: number; total: number },
    private readonly evict: Evict,
  ) {}

  get size(): number {
    return this.open.size;
  }

  countFor(key: string): number {
    return this.byIp.get(key) ?? 0;
  }

  async admit(worker: number, cid: number, key: string): Promise<ConnAdmission> {
    const first = this.limits();
    if (this.countFor(key) >= first.perIp) return 'per-ip';
    if (this.open.size >= first.total) {
      const id = `${worker}:${cid}`;
      const wait = { cancelled: false };
      this.waiting.set(id, wait);
      try {
        await this.makeRoom(first.total);
      } finally {
        this.waiting.delete(id);
      }
      // Others came and went while the evictions were asked: decide on what holds now.
      const now = this.limits();
      if (wait.cancelled) return 'total'; // nobody waits for this answer any more
      if (this.countFor(key) >= now.perIp) return 'per-ip';
      if (this.open.size >= now.total) return 'total';
    }
    this.open.set(`${worker}:${cid}`, { worker, cid, key, spliced: false, asking: false });
    this.byIp.set(key, this.countFor(key) + 1);
    return 'ok';
  }

  release(worker: number, cid: number): void {
    const id = `${worker}:${cid}`;
    const wait = this.waiting.get(id);
    if (wait) wait.cancelled = true;
    const e = this.open.get(id);
    if (e) this.remove(e);
  }

  spliced(worker: number, cid: number): void {
    const e = this.open.get(`${worker}:${cid}`);
    if (e) e.spliced = true;
  }

  /** A worker exited: its connections went with it. */
  dropWorker(worker: number): void {
    for (const e of this.open.values()) if (e.worker === worker) this.remove(e);
    for (const [id, wait] of this.waiting) if (id.startsWith(`${worker}:`)) wait.cancelled = true;
  }

  private remove(e: Entry): void {
    if (!this.open.delete(`${e.worker}:${e.cid}`)) return;
    const n = this.countFor(e.key) - 1;
    if (n > 0) this.byIp.set(e.key, n);
    else this.byIp.delete(e.key);
  }

  /** Asks the oldest candidates, one at a time, until one went or someone left on their own. */
  private async makeRoom(total: number): Promise<void> {
    let asked = 0;
    for (const e of this.open.values()) {
      if (this.open.size < total || asked >= MAX_EVICTION_ASKS) return;
      if (e.spliced || e.asking) continue;
      asked++;
      e.asking = true;
      const gone = await this.evict(e.worker, e.cid).catch(() => false);
      e.asking = false;
      if (gone) return this.remove(e);
    }
  }
}
