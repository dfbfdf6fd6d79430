// The Redis pub/sub channel `<keyPrefix>kick`: an admin kick made on one instance reaches
// every instance sharing the Redis, each of which ends its own matching sessions. Two
// connections of its own (a publisher, and a subscriber ioredis reconnects and resubscribes);
// classic PUBLISH reaches every node of a Cluster. At most once: an instance not subscribed
// when a kick is published does not hear it. Messages that are not ours are ignored.
import { randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import type { RedisStoreConfig } from '../config/schema.js';
import type { KickTarget } from '../server/live-sessions.js';
import { connectRedis } from './redis.js';

/** What one message says: the publishing instance (o) and whose sessions end. */
interface KickMessage {
  o: string;
  user?: string;
  ip?: string;
}

export class KickChannel {
  readonly name: string;
  /** This instance's id in its messages: it ends its own sessions before publishing. */
  private readonly origin = randomBytes(8).toString('hex');
  private readonly publisher: Redis | Cluster;
  private readonly subscriber: Redis | Cluster;

  constructor(cfg: RedisStoreConfig, onKick: (target: KickTarget) => void) {
    this.name = `${cfg.keyPrefix ?? ''}kick`;
    this.publisher = connectRedis(cfg);
    this.subscriber = this.publisher instanceof Cluster ? this.publisher.duplicate() : this.publisher.duplicate();
    // Errors surface on publish; an unhandled 'error' event would crash the process.
    this.publisher.on('error', () => undefined);
    this.subscriber.on('error', () => undefined);
    this.subscriber.on('message', (_channel: string, raw: string) => {
      const target = this.parse(raw);
      if (target) onKick(target);
    });
    // enableOfflineQueue is off on the store's connections: subscribe once it is ready, and again
    // on every reconnect (ioredis resubscribes what it knows; this covers a first subscribe
    // that failed).
    this.subscriber.on('ready', () => void this.subscriber.subscribe(this.name).catch(() => undefined));
  }

  /** Tell every other instance; false when Redis did not take the message. */
  async publish(target: KickTarget): Promise<boolean> {
    const msg: KickMessage = { o: this.origin, ...(target.user !== undefined ? { user: target.user } : { ip: target.ip }) };
    try {
      await this.publisher.publish(this.name, JSON.stringify(msg));
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.subscriber.disconnect();
    await this.publisher.quit().catch(() => this.publisher.disconnect());
  }

  private parse(raw: string): KickTarget | null {
    let msg: Partial<KickMessage> | null;
    try {
      msg = JSON.parse(raw) as Partial<KickMessage> | null;
    } catch {
      return null;
    }
    if (!msg || msg.o === this.origin) return null;
    if (typeof msg.user === 'string') return { user: msg.user };
    if (typeof msg.ip === 'string') return { ip: msg.ip };
    return null;
  }
}
