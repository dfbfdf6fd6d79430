// Redis limit store: the same semantics as the memory store, shared by every instance.
// One Lua script per decision (hit) and at most one per outcome (settle), registered once and
// called by SHA; windows and blocks are Redis TTLs on Redis' clock.
import { readFileSync } from 'node:fs';
import { Cluster, Redis } from 'ioredis';
import type { RedisStoreConfig } from '../config/schema.js';
import { parseHostPort } from '../config/address.js';
import { RESERVATION_TTL_MS, type BlockEntry, type CounterSpec, type CounterState, type HitOptions, type HitResult, type LimitStore, type SettleRequest } from './store.js';

// Next to this module: src/stores/lua, or dist/stores/lua (copied by scripts/copy-assets.mjs).
const lua = (name: string) => readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8');

/** Every key an attempt touches must live in one Cluster slot for the scripts to be atomic,
 *  so all keys share this hash tag. Cluster then gives failover and memory headroom, not
 *  write scaling for the limiter (ARCHITECTURE.md). */
const HASH_TAG = '{mg}';

interface Scripts {
  mgHit(...args: (string | number)[]): Promise<number[]>;
  mgSettle(...args: (string | number)[]): Promise<number[]>;
  mgPeek(...args: (string | number)[]): Promise<number[]>;
  mgBlock(key: string, ms: number): Promise<number>;
}
type Client = (Redis | Cluster) & Scripts;

function node(hp: string): { host: string; port: number } {
  const p = parseHostPort(hp)!;
  return { host: p.host, port: p.port };
}

export function connectRedis(cfg: RedisStoreConfig): Redis | Cluster {
  const common = {
    keyPrefix: cfg.keyPrefix,
    // Fail fast while disconnected instead of queueing logins behind a dead server.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: cfg.timeout,
    connectTimeout: Math.max(cfg.timeout, 1000),
    lazyConnect: false,
    // Keep trying in the background: the store is used again as soon as Redis is back.
    retryStrategy: (times: number) => Math.min(100 * times, 2000),
  };
  if (cfg.cluster) {
    return new Cluster(cfg.cluster.map(node), {
      keyPrefix: cfg.keyPrefix,
      enableOfflineQueue: false,
      clusterRetryStrategy: (times: number) => Math.min(100 * times, 2000),
      redisOptions: { ...common, keyPrefix: undefined },
    });
  }
  if (cfg.sentinels) return new Redis({ ...common, sentinels: cfg.sentinels.map(node), name: cfg.name! });
  return new Redis(cfg.url!, common);
}

export class RedisStore implements LimitStore {
  private readonly client: Client;
  private readonly prefix: string;

  constructor(client: Redis | Cluster) {
    client.defineCommand('mgHit', { lua: lua('hit') });
    client.defineCommand('mgSettle', { lua: lua('settle') });
    client.defineCommand('mgPeek', { numberOfKeys: 3, lua: lua('peek') });
    client.defineCommand('mgBlock', { numberOfKeys: 1, lua: lua('block') });
    this.prefix = (client instanceof Cluster ? client.options.keyPrefix : client.options.keyPrefix) ?? '';
    // Errors surface per command (and through the resilient wrapper); an unhandled 'error'
    // event would crash the process.
    client.on('error', () => undefined);
    this.client = client as Client;
  }

  get redis(): Redis | Cluster {
    return this.client;
  }

  async ready(withinMs: number): Promise<boolean> {
    if (this.client.status === 'ready') return true;
    return new Promise<boolean>((resolve) => {
      const t = setTimeout(() => {
        this.client.off('ready', onReady);
        resolve(false);
      }, withinMs);
      const onReady = () => {
        clearTimeout(t);
        resolve(true);
      };
      this.client.once('ready', onReady);
    });
  }

  private keys(key: string): string[] {
    const k = `${HASH_TAG}${key}`;
    return [k, `${k}:r`, `${k}:b`, `${k}:d`, `${k}:o`];
  }

  async hit(specs: readonly CounterSpec[], opts: HitOptions = {}): Promise<HitResult> {
    if (specs.length === 0) return { ok: true };
    const kg = opts.knownGoodKey !== undefined;
    const keys = [...specs.flatMap((s) => this.keys(s.key)), ...(kg ? [`${HASH_TAG}${opts.knownGoodKey}`] : [])];
    const argv = [
      opts.count === false ? '0' : '1',
      kg ? '1' : '0',
      RESERVATION_TTL_MS,
      ...specs.flatMap((s) => [
        s.kind === 'attempts' ? 'a' : 'f', s.limit, s.windowMs, s.blockMs ?? 0, s.knownGoodExempt ? 1 : 0, s.distinct ? 1 : 0,
        s.blockGrowth ?? 0, s.blockMemoryMs ?? 0, s.blockMaxMs ?? 0,
      ]),
    ];
    const r = await this.client.mgHit(keys.length, ...keys, ...argv);
    if (r[0] === 0) return r.length > 2 ? { ok: true, knownGood: r[1] === 1, blockedNow: r.slice(2).map((i) => i - 1) } : { ok: true, knownGood: r[1] === 1 };
    return { ok: false, index: r[0]! - 1, retryAfterMs: r[1]!, count: r[2]!, blocked: r[3] === 1 };
  }

  async settle(specs: readonly CounterSpec[], req: SettleRequest): Promise<number[]> {
    const kg = !req.failed && req.knownGood ? req.knownGood : null;
    if (specs.length === 0 && !kg) return [];
    const keys = [...specs.flatMap((s) => this.keys(s.key)), ...(kg ? [`${HASH_TAG}${kg.key}`] : [])];
    const argv = [
      req.failed ? '1' : '0',
      req.reserved ? '1' : '0',
      req.fingerprint ?? '',
      kg ? kg.ttlMs : 0,
      ...specs.flatMap((s, i) => [
        s.kind === 'attempts' ? 'a' : 'f', s.limit, s.windowMs, s.blockMs ?? 0, s.distinct ? 1 : 0, s.dedupe ? 1 : 0,
        s.blockGrowth ?? 0, s.blockMemoryMs ?? 0, s.blockMaxMs ?? 0, req.members?.[i] ?? '',
      ]),
    ];
    return this.client.mgSettle(keys.length, ...keys, ...argv);
  }

  async peek(key: string): Promise<CounterState> {
    const [count, inflight, ttlMs, blockedMs] = await this.client.mgPeek(...this.keys(key).slice(0, 3));
    return { count: count!, inflight: inflight!, ttlMs: ttlMs!, blockedMs: blockedMs! };
  }

  async blocks(): Promise<BlockEntry[]> {
    const prefix = `${this.prefix}${HASH_TAG}`;
    const nodes = this.client instanceof Cluster ? this.client.nodes('master') : [this.client];
    const out: BlockEntry[] = [];
    for (const node of nodes) {
      // SCAN patterns are not prefixed by ioredis: match the full key, then strip the prefix.
      const stream = node.scanStream({ match: `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*:b`, count: 1000 });
      for await (const batch of stream as AsyncIterable<string[]>) {
        for (const full of batch) {
          const key = full.slice(prefix.length, -2);
          const [count, , , remaining, since] = await this.client.mgPeek(...this.keys(key).slice(0, 3));
          if (remaining! > 0) out.push({ key, sinceMs: since!, count: count!, remainingMs: remaining! });
        }
      }
    }
    return out;
  }

  async reset(key: string): Promise<void> {
    await this.client.del(...this.keys(key));
  }

  async block(key: string, ms: number): Promise<void> {
    await this.client.mgBlock(this.keys(key)[2]!, Math.round(ms));
  }

  async close(): Promise<void> {
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }
}
