// The Redis pub/sub channel `<keyPrefix>blocks` that carries every block and unblock made by
// any instance (a rule starting a block, an admin block, a reset) to every instance's block
// cache at once. Classic PUBLISH reaches every node of a Cluster, so one subscriber
// connection to any node hears all of it. Messages are at most once: while the subscriber is
// not subscribed (and when it comes back) the cache is emptied and trusts nothing.
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { BlockCache } from './block-cache.js';

/** How often the subscriber proves it still hears Redis (a stalled server says nothing on a
 *  connection that stays open), and how long the proof may take. */
const PING_EVERY_MS = 5_000;
const PING_TIMEOUT_MS = 2_000;

/** What one message says: the key is blocked for ms more at count n (ms 0: lifted). */
interface BlockMessage {
  k: string;
  ms: number;
  n: number;
}

/** A new subscriber connection (not connected yet), or null while none can be made. */
type SubscriberFactory = () => Redis | null;

/** Options of a subscriber connection: it never reconnects by itself, the channel makes a
 *  new one (on another node of a Cluster) and empties the cache meanwhile. */
const SUBSCRIBER: Partial<RedisOptions> = {
  lazyConnect: true,
  retryStrategy: () => null,
  enableOfflineQueue: true,
  maxRetriesPerRequest: 0,
  commandTimeout: PING_TIMEOUT_MS,
  keyPrefix: undefined,
};

/** Subscribers for a client: a copy of a single server's (or Sentinel's) connection; for a
 *  Cluster, a connection to any node it knows. */
export function subscriberFactory(client: Redis | Cluster): SubscriberFactory {
  if (!(client instanceof Cluster)) return () => client.duplicate(SUBSCRIBER);
  return () => {
    const nodes = client.nodes('all');
    const node = nodes[Math.floor(Math.random() * nodes.length)];
    if (!node) return null;
    return new Redis({ ...client.options.redisOptions, host: node.options.host, port: node.options.port, ...SUBSCRIBER });
  };
}

export class BlockChannel {
  private sub: Redis | null = null;
  private subscribed = false;
  private retries = 0;
  private closed = false;
  private readonly timers: { retry?: NodeJS.Timeout; ping?: NodeJS.Timeout } = {};

  constructor(
    private readonly publisher: Redis | Cluster,
    readonly name: string,
    private readonly subscriber: SubscriberFactory,
    private readonly cache: BlockCache,
  ) {}

  start(): void {
    this.timers.ping = setInterval(() => this.ping(), PING_EVERY_MS).unref();
    this.connect();
  }

  /** Tell every instance (this one too) that the key is blocked for `ms` more at `count`, or
   *  lifted (0). */
  async publish(key: string, ms: number, count: number): Promise<void> {
    const msg: BlockMessage = { k: key, ms: Math.max(0, Math.round(ms)), n: count };
    await this.publisher.publish(this.name, JSON.stringify(msg));
  }

  /** Whether the cache hears every block now (subscribed). */
  get live(): boolean {
    return this.subscribed;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timers.retry);
    clearInterval(this.timers.ping);
    this.subscribed = false;
    this.cache.setLive(false);
    this.sub?.disconnect();
    this.sub = null;
  }

  private connect(): void {
    if (this.closed) return;
    const sub = this.subscriber();
    if (!sub) return this.retry();
    this.sub = sub;
    // Errors end the connection ('close' below); an unhandled 'error' would crash the process.
    sub.on('error', () => undefined);
    sub.on('message', (_channel: string, msg: string) => this.apply(msg));
    sub.once('close', () => this.down(sub));
    sub
      .connect()
      .then(() => sub.subscribe(this.name))
      .then(
        () => {
          if (this.sub !== sub) return;
          this.retries = 0;
          this.subscribed = true;
          this.cache.setLive(true);
        },
        () => this.down(sub),
      );
  }

  private down(sub: Redis): void {
    if (this.sub !== sub) return;
    this.sub = null;
    this.subscribed = false;
    this.cache.setLive(false);
    sub.disconnect();
    this.retry();
  }

  private retry(): void {
    if (this.closed) return;
    this.timers.retry = setTimeout(() => this.connect(), Math.min(100 * ++this.retries, 2_000));
    this.timers.retry.unref();
  }

  private ping(): void {
    const sub = this.sub;
    if (sub?.status === 'ready') sub.ping().catch(() => this.down(sub));
  }

  private apply(raw: string): void {
    let msg: Partial<BlockMessage> | null;
    try {
      msg = JSON.parse(raw) as Partial<BlockMessage> | null;
    } catch {
      return; // not ours: the channel is shared with whoever can publish on this Redis
    }
    if (typeof msg?.k !== 'string' || typeof msg.ms !== 'number') return;
    if (msg.ms > 0) this.cache.note(msg.k, msg.ms, undefined, { count: typeof msg.n === 'number' ? msg.n : 0 });
    else this.cache.forget(msg.k);
  }
}
