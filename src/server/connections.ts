// Concurrent connection limits (limits.connections): per client IP (ipv6Prefix grouping) and
// in total. At the total, the oldest connection that has not logged in is evicted to make
// room (Dovecot's rule); spliced sessions are never evicted for this.

export interface TrackedConnection {
  /** Client key (limits/keys.ts clientKey) the per-IP limit counts. */
  readonly clientKey: string;
  /** Still before login (evictable). */
  readonly evictable: boolean;
  /** Close it to make room (it releases itself when it ends). */
  evict(): void;
}

export type Admission = 'ok' | 'per-ip' | 'total';

/** Where limits.connections are held: this process's tracker, or in worker mode the
 *  primary's, over IPC (cluster/remote-connections.ts), so the limits hold across workers. */
export interface Connections {
  admit(c: TrackedConnection): Admission | Promise<Admission>;
  /** The connection ended; a no-op for one that holds no slot. */
  release(c: TrackedConnection): void;
  /** The connection logged in: it is never evicted for the total again. */
  spliced?(c: TrackedConnection): void;
}

export class ConnectionTracker implements Connections {
  private readonly byIp = new Map<string, number>();
  /** Insertion order is age: the first evictable entry is the oldest pre-auth connection. */
  private readonly open = new Set<TrackedConnection>();

  constructor(private readonly limits: () => { perIp: number; total: number }) {}

  get size(): number {
    return this.open.size;
  }

  countFor(clientKey: string): number {
    return this.byIp.get(clientKey) ?? 0;
  }

  admit(c: TrackedConnection): Admission {
    const { perIp, total } = this.limits();
    if (this.countFor(c.clientKey) >= perIp) return 'per-ip';
    if (this.open.size >= total) {
      let victim: TrackedConnection | undefined;
      for (const o of this.open) {
        if (o.evictable) {
          victim = o;
          break;
        }
      }
      if (!victim) return 'total';
      this.release(victim);
      victim.evict();
    }
    this.open.add(c);
    this.byIp.set(c.clientKey, this.countFor(c.clientKey) + 1);
    return 'ok';
  }

  release(c: TrackedConnection): void {
    if (!this.open.delete(c)) return;
    const n = this.countFor(c.clientKey) - 1;
    if (n > 0) this.byIp.set(c.clientKey, n);
    else this.byIp.delete(c.clientKey);
  }
}
