// Redis stores on a real Redis Cluster for tests, and what the tests ask the cluster: which
// primary a subject's keys live on (by its hash tag, computed as Redis does), subjects chosen
// to land on given primaries, and how many scripts the primaries have run.
import { Cluster, Redis } from 'ioredis';
import { ManualClock } from '../../src/clock.js';
import type { RedisStoreConfig } from '../../src/config/schema.js';
import { slotTag } from '../../src/limits/keys.js';
import { connectRedis, RedisStore } from '../../src/stores/redis.js';
import { keySlot, type RedisCluster } from './redis.js';

export interface ClusterStores {
  /** A store as mailgate makes it (connectRedis), on the instance clock given. */
  open(prefix: string, opts?: { clock?: ManualClock; timeoutMs?: number }): Promise<RedisStore>;
  /** An admin connection (no prefix). */
  admin(): Promise<Cluster>;
  closeAll(): Promise<void>;
}

export function clusterStores(cluster: () => RedisCluster): ClusterStores {
  const stores: RedisStore[] = [];
  const admins: Cluster[] = [];
  return {
    async open(prefix, opts = {}) {
      const cfg = { cluster: cluster().nodes, keyPrefix: prefix, timeout: opts.timeoutMs ?? 1000, onError: 'local' } as RedisStoreConfig;
      const store = new RedisStore(connectRedis(cfg), { clock: opts.clock });
      stores.push(store);
      if (!(await store.ready(10_000))) throw new Error('cluster store not ready');
      return store;
    },
    async admin() {
      const c = new Cluster(cluster().nodes);
      admins.push(c);
      await new Promise<void>((resolve, reject) => {
        c.once('ready', () => resolve());
        c.once('error', reject);
      });
      return c;
    },
    async closeAll() {
      await Promise.all(stores.map((s) => s.close()));
      for (const a of admins) a.disconnect();
    },
  };
}

/** The primary (port) serving a key's subject now. */
export const primaryOf = (c: RedisCluster, key: string) => c.primaryFor(keySlot(slotTag(key)));

/** `n` values from `candidates` (in order) whose key lands on `port`, or off it (`not`). */
export async function onPrimary<T>(c: RedisCluster, candidates: Iterable<T>, key: (t: T) => string, port: number, n: number, not = false): Promise<T[]> {
  const out: T[] = [];
  for (const t of candidates) {
    if (((await primaryOf(c, key(t))) === port) !== not) out.push(t);
    if (out.length === n) return out;
  }
  throw new Error(`fewer than ${n} candidates ${not ? 'off' : 'on'} primary ${port}`);
}

/** Scripts (EVALSHA and EVAL) the cluster's primaries have run so far, summed. */
export async function scriptCalls(c: RedisCluster): Promise<number> {
  let n = 0;
  for (const node of (await c.topology()).filter((t) => t.primary)) {
    const r = new Redis({ port: node.port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null });
    r.on('error', () => undefined);
    try {
      await r.connect();
      const stats = await r.info('commandstats');
      for (const m of stats.matchAll(/^cmdstat_(evalsha|eval):calls=(\d+)/gm)) n += Number(m[2]);
    } finally {
      r.disconnect();
    }
  }
  return n;
}
