// In a worker: limits.connections as the primary holds them (shared-connections.ts). This
// worker owns floor(limit / workers) of every limit, per address and of the total, and admits
// and releases within that share alone, without a message. A connection beyond its share, or
// of a pool the primary made central (it asked how many this worker holds), is asked of the
// primary, which grants, evicts at the total or refuses; then login and close are told to it,
// and this worker tells it when an own connection of a central pool ends. While the primary
// does not answer, this worker's own tracker holds the same limits for the connections it
// asks about (logged once per outage): bounded, never a hang.
import type { Logger } from '../logging/logger.js';
import { ConnectionTracker, type Admission, type Connections, type TrackedConnection } from '../server/connections.js';
import type { WorkerChannel } from './ipc-store.js';
import type { InShare } from './shared-connections.js';

export class RemoteConnections implements Connections {
  private nextCid = 1;
  /** Connections the primary was asked about (admitted, or the answer still out), with the
   *  limits they count on this worker's share of. */
  private readonly cids = new Map<TrackedConnection, { cid: number; share: InShare }>();
  private readonly byCid = new Map<number, TrackedConnection>();
  /** Admitted on this worker's share alone; insertion order is age (ms since the epoch). */
  private readonly own = new Map<TrackedConnection, number>();
  /** What this worker's shares hold: its own connections and those the primary granted on
   *  one share (the other limit asked for), per address and in all. */
  private readonly usedByIp = new Map<string, number>();
  private used = 0;
  /** Addresses the primary made central; the total's state; everything (a limits reload). */
  private readonly central = new Set<string>();
  private totalCentral = false;
  private allCentral = false;
  private readonly local: ConnectionTracker;
  private down = false;

  constructor(
    private readonly channel: Pick<WorkerChannel, 'call' | 'notify' | 'handle' | 'on'>,
    private readonly limits: () => { perIp: number; total: number },
    /** The configured worker count: this worker's share is floor(limit / it). */
    private readonly workers: number,
    private readonly timeoutMs: number,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    // The fallback counts this worker's own connections too: its limits hold in it alone.
    this.local = new ConnectionTracker(() => ({ perIp: Number.MAX_SAFE_INTEGER, total: Math.max(0, limits().total - this.used) }));
    channel.handle('evict', ({ cid }) => this.evictFor(cid));
    // Answered by a note as well, sent before the reply: the primary counts it in order with
    // the own-release notes (a reply resolves a promise, a turn later than a note is read).
    channel.handle('conn.central', ({ key }) => {
      if (key === null) this.totalCentral = true;
      else this.central.add(key);
      const n = key === null ? this.used : (this.usedByIp.get(key) ?? 0);
      channel.notify('conn.held', { key, n });
      return n;
    });
    channel.handle('conn.central-all', () => {
      this.allCentral = true;
      const report = { keys: [...this.usedByIp], total: this.used };
      channel.notify('conn.held-all', report);
      return report;
    });
    channel.handle('conn.oldest', () => {
      for (const [c, at] of this.own) if (c.evictable) return at;
      return null;
    });
    channel.handle('conn.evict-own', () => {
      for (const c of this.own.keys()) {
        if (!c.evictable) continue;
        this.release(c); // tells the primary first: the total is central
        c.evict();
        return true;
      }
      return false;
    });
    channel.on('conn.local', ({ key }) => (key === null ? (this.totalCentral = false) : this.central.delete(key)));
  }

  /** Connections admitted through the primary and still open (tests). */
  get size(): number {
    return this.cids.size;
  }

  /** Connections admitted on this worker's share and still open (tests). */
  get ownSize(): number {
    return this.own.size;
  }

  admit(c: TrackedConnection): Admission | Promise<Admission> {
    const key = c.clientKey;
    const { perIp, total } = this.limits();
    const share: InShare = {
      ip: !this.allCentral && !this.central.has(key) && (this.usedByIp.get(key) ?? 0) < Math.floor(perIp / this.workers),
      total: !this.allCentral && !this.totalCentral && this.used < Math.floor(total / this.workers),
    };
    this.take(key, share);
    if (!share.ip || !share.total) return this.ask(c, share);
    this.own.set(c, this.now());
    return 'ok';
  }

  release(c: TrackedConnection): void {
    const key = c.clientKey;
    if (this.own.delete(c)) return this.untake(key, { ip: true, total: true });
    const asked = this.cids.get(c);
    if (asked === undefined) return this.local.release(c);
    this.forget(c);
    this.channel.notify('conn.release', { cid: asked.cid });
  }

  spliced(c: TrackedConnection): void {
    const asked = this.cids.get(c);
    if (asked !== undefined) this.channel.notify('conn.spliced', { cid: asked.cid });
  }

  /** Counts a connection on the shares it fits in. */
  private take(key: string, share: InShare): void {
    if (share.total) this.used++;
    if (share.ip) this.usedByIp.set(key, (this.usedByIp.get(key) ?? 0) + 1);
  }

  /** Off those shares again; the primary hears of it for the pools it made central (it
   *  counts what this worker said it holds there). */
  private untake(key: string, share: InShare): void {
    if (share.total) this.used--;
    if (share.ip) {
      const n = (this.usedByIp.get(key) ?? 1) - 1;
      if (n > 0) this.usedByIp.set(key, n);
      else this.usedByIp.delete(key);
    }
    const told = { ip: share.ip && (this.allCentral || this.central.has(key)), total: share.total && (this.allCentral || this.totalCentral) };
    if (told.ip || told.total) this.channel.notify('conn.own-release', { key, ...told });
  }

  private async ask(c: TrackedConnection, share: InShare): Promise<Admission> {
    const cid = this.nextCid++;
    this.cids.set(c, { cid, share });
    this.byCid.set(cid, c);
    try {
      const answer = await this.channel.call('conn.admit', { cid, key: c.clientKey, share }, this.timeoutMs);
      if (this.down) {
        this.down = false;
        this.log.warn({ event: 'worker.ipc-recovered' }, 'the primary answers connection-limit calls again');
      }
      if (answer !== 'ok') this.forget(c);
      return answer;
    } catch (err) {
      // A late admission in the primary is released by this note (it follows the call).
      this.channel.notify('conn.release', { cid });
      this.forget(c);
      if (!this.down) {
        this.down = true;
        this.log.error({ event: 'worker.ipc-fallback', error: (err as Error).message }, 'connection limits held by this worker alone until the primary answers');
      }
      const held = (this.usedByIp.get(c.clientKey) ?? 0) + this.local.countFor(c.clientKey);
      return held >= this.limits().perIp ? 'per-ip' : this.local.admit(c);
    }
  }

  /** The primary makes room under the total: only a connection still before login goes. */
  private evictFor(cid: number): boolean {
    const c = this.byCid.get(cid);
    if (!c || !c.evictable) return false;
    this.forget(c); // the primary released it already
    c.evict();
    return true;
  }

  /** Off the shares it counted on, and out of the primary's connections. */
  private forget(c: TrackedConnection): void {
    const asked = this.cids.get(c);
    if (asked === undefined) return;
    this.cids.delete(c);
    this.byCid.delete(asked.cid);
    this.untake(c.clientKey, asked.share);
  }
}
