// In a worker: limits.connections as the primary holds them (shared-connections.ts). Each
// connection gets an id here; admission asks the primary, login and close tell it, and the
// primary may ask for a pre-auth connection to be evicted for the total. While the primary
// does not answer, this worker's own tracker holds the same limits for its connections
// (logged once per outage): bounded, never a hang.
import type { Logger } from '../logging/logger.js';
import { ConnectionTracker, type Admission, type Connections, type TrackedConnection } from '../server/connections.js';
import type { WorkerChannel } from './ipc-store.js';

export class RemoteConnections implements Connections {
  private nextCid = 1;
  /** Connections the primary was asked about (admitted, or the answer still out). */
  private readonly cids = new Map<TrackedConnection, number>();
  private readonly byCid = new Map<number, TrackedConnection>();
  private readonly local: ConnectionTracker;
  private down = false;

  constructor(
    private readonly channel: Pick<WorkerChannel, 'call' | 'notify' | 'handle'>,
    limits: () => { perIp: number; total: number },
    private readonly timeoutMs: number,
    private readonly log: Logger,
  ) {
    this.local = new ConnectionTracker(limits);
    channel.handle('evict', ({ cid }) => this.evictFor(cid));
  }

  /** Connections admitted through the primary and still open (tests). */
  get size(): number {
    return this.cids.size;
  }

  async admit(c: TrackedConnection): Promise<Admission> {
    const cid = this.nextCid++;
    this.cids.set(c, cid);
    this.byCid.set(cid, c);
    try {
      const answer = await this.channel.call('conn.admit', { cid, key: c.clientKey }, this.timeoutMs);
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
      return this.local.admit(c);
    }
  }

  release(c: TrackedConnection): void {
    const cid = this.cids.get(c);
    if (cid === undefined) return this.local.release(c);
    this.forget(c);
    this.channel.notify('conn.release', { cid });
  }

  spliced(c: TrackedConnection): void {
    const cid = this.cids.get(c);
    if (cid !== undefined) this.channel.notify('conn.spliced', { cid });
  }

  /** The primary makes room under the total: only a connection still before login goes. */
  private evictFor(cid: number): boolean {
    const c = this.byCid.get(cid);
    if (!c || !c.evictable) return false;
    this.forget(c); // the primary released it already
    c.evict();
    return true;
  }

  private forget(c: TrackedConnection): void {
    const cid = this.cids.get(c);
    this.cids.delete(c);
    if (cid !== undefined) this.byCid.delete(cid);
  }
}
