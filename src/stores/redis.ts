// Redis limit store: the same semantics as the memory store, shared by every instance.
// One Lua script per decision (hit) and at most one per outcome (settle), registered once and
// called by SHA; windows and blocks are Redis TTLs on Redis' clock. What travels to the
// scripts, and in which order, is wire.ts'.
import { readFileSync } from 'node:fs';
import { Cluster, Redis } from 'ioredis';
import type { RedisStoreConfig } from '../config/schema.js';
import { parseHostPort } from '../config/address.js';
import type { BlockEntry, CounterSpec, CounterState, HitOptions, HitResult, LimitStore, SettleRequest } from './store.js';
import { encodeArgs, HIT_WIRE, luaHeader, PLAIN_WIRE, SETTLE_WIRE, SPEC_KEYS, type ScriptWire, type SpecKey } from './wire.js';

// Next to this module: src/stores/lua, or dist/stores/lua (copied by scripts/copy-assets.mjs).
const lua = (name: string) => readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8');

/** A script as Redis runs it: the layout and constants from wire.ts, the shared prelude, the
 *  script. */
const script = (name: string, wire: ScriptWire) => `${luaHeader(wire)}${lua('lib')}${lua(name)}`;

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
    client.defineCommand('mgHit', { lua: script('hit', HIT_WIRE) });
    client.defineCommand('mgSettle', { lua: script('settle', SETTLE_WIRE) });
    client.defineCommand('mgPeek', { numberOfKeys: 3, lua: script('peek', PLAIN_WIRE) });
    client.defineCommand('mgBlock', { numberOfKeys: 1, lua: script('block', PLAIN_WIRE) });
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

  private key(key: string, role: SpecKey): string {
    return `${HASH_TAG}${key}${SPEC_KEYS[role]}`;
  }

  /** A spec's keys, in the order wire.ts gives them. */
  private keys(key: string): string[] {
    return (Object.keys(SPEC_KEYS) as SpecKey[]).map((role) => this.key(key, role));
  }

  /** The keys hit and settle send after the specs': a placeholder (in the same slot) for one
   *  not given, so a script's layout never depends on which are. */
  private extraKeys(knownGood?: string, hint?: string, successes?: string): string[] {
    const k = (key: string | undefined) => `${HASH_TAG}${key ?? '-'}`;
    return [k(knownGood), k(hint), k(successes)];
  }

  async hit(specs: readonly CounterSpec[], opts: HitOptions = {}): Promise<HitResult> {
    if (specs.length === 0) return { ok: true };
    const keys = [...specs.flatMap((s) => this.keys(s.key)), ...this.extraKeys(opts.knownGoodKey, opts.hint?.key, opts.successesKey)];
    const call = { count: opts.count !== false, knownGood: opts.knownGoodKey !== undefined, hint: opts.hint?.value, successes: opts.successesKey !== undefined };
    const r = await this.client.mgHit(keys.length, ...keys, ...encodeArgs(HIT_WIRE, specs, call, () => ({})));
    if (r[0] !== 0) return { ok: false, index: r[0]! - 1, retryAfterMs: r[1]!, count: r[2]!, blocked: r[3] === 1 };
    const ok: HitResult = { ok: true, knownGood: r[1] === 1, hintMatch: r[2] === 1, successes: r[3]! };
    return r.length > 4 ? { ...ok, blockedNow: r.slice(4).map((i) => i - 1) } : ok;
  }

  async settle(specs: readonly CounterSpec[], req: SettleRequest): Promise<number[]> {
    // On success only; a pair or hint kept for 0 ms is not kept (and SET PX 0 is an error).
    const ok = !req.failed;
    const kg = ok && req.knownGood && req.knownGood.ttlMs > 0 ? req.knownGood : undefined;
    const hint = ok && req.hint && req.hint.ttlMs > 0 ? req.hint : undefined;
    const success = ok && req.success && req.success.ttlMs > 0 ? req.success : undefined;
    if (specs.length === 0 && !kg && !hint && !success) return [];
    const keys = [...specs.flatMap((s) => this.keys(s.key)), ...this.extraKeys(kg?.key, hint?.key, success?.key)];
    const call = {
      failed: req.failed, reserved: req.reserved, fingerprint: req.fingerprint, knownGoodTtlMs: kg?.ttlMs,
      hint: hint?.value, hintTtlMs: hint?.ttlMs, successMember: success?.member, successesTtlMs: success?.ttlMs,
    };
    return this.client.mgSettle(keys.length, ...keys, ...encodeArgs(SETTLE_WIRE, specs, call, (i) => ({ member: req.members?.[i] })));
  }

  /** peek.lua's keys: counter, reservations, block. */
  private peekKeys(key: string): [string, string, string] {
    return [this.key(key, 'counterKey'), this.key(key, 'reservedKey'), this.key(key, 'blockKey')];
  }

  async peek(key: string): Promise<CounterState> {
    const [count, inflight, ttlMs, blockedMs] = await this.client.mgPeek(...this.peekKeys(key));
    return { count: count!, inflight: inflight!, ttlMs: ttlMs!, blockedMs: blockedMs! };
  }

  async blocks(): Promise<BlockEntry[]> {
    const prefix = `${this.prefix}${HASH_TAG}`;
    const nodes = this.client instanceof Cluster ? this.client.nodes('master') : [this.client];
    const out: BlockEntry[] = [];
    for (const node of nodes) {
      // SCAN patterns are not prefixed by ioredis: match the full key, then strip the prefix.
      const stream = node.scanStream({ match: `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*${SPEC_KEYS.blockKey}`, count: 1000 });
      for await (const batch of stream as AsyncIterable<string[]>) {
        for (const full of batch) {
          const key = full.slice(prefix.length, -SPEC_KEYS.blockKey.length);
          const [count, , , remaining, since] = await this.client.mgPeek(...this.peekKeys(key));
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
    await this.client.mgBlock(this.key(key, 'blockKey'), Math.round(ms));
  }

  async close(): Promise<void> {
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }
}
