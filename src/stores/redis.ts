// Redis limit store: the same semantics as the memory store, shared by every instance, on one
// server or sharded over a Redis Cluster. On one server (or Sentinel) a decision is one Lua
// script (hit) and its outcome one more (settle), which also writes the login's history row.
// On a Cluster each subject's keys share a hash tag (keys.ts' slotTag), so a decision is one
// script per subject (slot) sent in parallel, and at most one per subject per outcome, the
// history row in its subject's; redis-plan.ts splits and merges. A refusal in one slot
// aborts what the others counted. Windows and blocks are Redis TTLs on Redis' clock; blocks are
// also cached here (block-cache.ts) and announced to every instance (block-channel.ts). What
// travels to the scripts, and in which order, is wire.ts'.
import { Cluster, Redis } from 'ioredis';
import { systemClock, type Clock } from '../clock.js';
import type { RedisStoreConfig } from '../config/schema.js';
import { parseHostPort } from '../config/address.js';
import { slotTag } from '../limits/keys.js';
import { BlockCache } from './block-cache.js';
import { BlockChannel, subscriberFactory } from './block-channel.js';
import { luaScript as script } from './lua-scripts.js';
import { decide, decodeHit, hitCall, ONE_SERVER, planGroups, settles, type Group, type GroupReply, type Grouping } from './redis-plan.js';
import type { BlockEntry, CounterSpec, CounterState, HitOptions, HitResult, LimitStore, RecordRow, SettleRequest } from './store.js';
import { recordArgs, redisRecords, type RecordOps } from './redis-records.js';
import { redisSending, type SendingOps } from './redis-sending.js';
import { ABORT_WIRE, encodeArgs, HIT_WIRE, PLAIN_WIRE, SETTLE_WIRE, SPEC_KEYS, type SpecKey } from './wire.js';

interface Scripts {
  mgHit(...args: (string | number)[]): Promise<number[]>;
  mgSettle(...args: (string | number)[]): Promise<number[]>;
  mgPeek(...args: (string | number)[]): Promise<number[]>;
  mgBlock(key: string, ms: number): Promise<number>;
  mgAbort(...args: (string | number)[]): Promise<number>;
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

export interface RedisStoreOptions {
  /** The block cache's clock (the instance's). */
  clock?: Clock;
  /** false: no block cache and no channel (every decision asks Redis). */
  blockCache?: boolean;
}

const fulfilled = <T>(s: PromiseSettledResult<T>): s is PromiseFulfilledResult<T> => s.status === 'fulfilled';

/** A settle's record values (SETTLE_WIRE): the row, for the group holding its key. */
function rowCall(row: RecordRow | undefined) {
  const b = row && recordArgs(row.bounds);
  return { recordField: row?.field, recordAtMs: b?.atMs, recordTtlMs: b?.ttlMs, recordCap: b?.cap, recordExisting: b?.existing };
}

export class RedisStore implements LimitStore {
  private readonly client: Client;
  private readonly prefix: string;
  private readonly cache: BlockCache;
  private readonly channel: BlockChannel | null;
  /** How an attempt's keys group into scripts: by hash tag on a Cluster, all in one elsewhere. */
  private readonly grouping: Grouping;
  /** Aborts and announcements sent after a decision returned: awaited before anything reads
   *  counts (peek, blocks) or the store closes, so this instance sees its own accounting. */
  private readonly pending = new Set<Promise<unknown>>();
  /** Capped records (login history): redis-records.ts; sending counts: redis-sending.ts. */
  readonly historyAdd: RecordOps['historyAdd']; readonly historyGet: RecordOps['historyGet']; readonly historyTake: RecordOps['historyTake'];
  readonly sendingPeek: SendingOps['sendingPeek']; readonly sendingAdd: SendingOps['sendingAdd']; readonly sendingReset: SendingOps['sendingReset'];

  constructor(client: Redis | Cluster, opts: RedisStoreOptions = {}) {
    client.defineCommand('mgHit', { lua: script('hit', HIT_WIRE) });
    client.defineCommand('mgSettle', { lua: script('settle', SETTLE_WIRE) });
    client.defineCommand('mgAbort', { lua: script('abort', ABORT_WIRE) });
    client.defineCommand('mgPeek', { numberOfKeys: 3, lua: script('peek', PLAIN_WIRE) });
    client.defineCommand('mgBlock', { numberOfKeys: 1, lua: script('block', PLAIN_WIRE) });
    this.prefix = (client instanceof Cluster ? client.options.keyPrefix : client.options.keyPrefix) ?? '';
    this.grouping = client instanceof Cluster ? slotTag : ONE_SERVER;
    // Errors surface per command (and through the resilient wrapper); an unhandled 'error'
    // event would crash the process.
    client.on('error', () => undefined);
    this.client = client as Client;
    this.cache = new BlockCache(opts.clock ?? systemClock);
    this.channel = opts.blockCache === false ? null : new BlockChannel(client, `${this.prefix}blocks`, subscriberFactory(client), this.cache);
    this.channel?.start();
    ({ historyAdd: this.historyAdd, historyGet: this.historyGet, historyTake: this.historyTake } = redisRecords(client));
    ({ sendingPeek: this.sendingPeek, sendingAdd: this.sendingAdd, sendingReset: this.sendingReset } = redisSending(client));
  }

  get redis(): Redis | Cluster {
    return this.client;
  }

  /** Whether blocks are answered from the cache now (its channel is subscribed), and how many
   *  it holds. */
  get blockCacheLive(): boolean {
    return this.channel?.live ?? false;
  }

  get cachedBlocks(): number {
    return this.cache.size;
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

  /** A key as stored: its subject's hash tag, then the key and its role's suffix. */
  private key(key: string, role: SpecKey): string {
    return `${slotTag(key)}${key}${SPEC_KEYS[role]}`;
  }

  /** A spec's keys, in the order wire.ts gives them. */
  private keys(key: string): string[] {
    return (Object.keys(SPEC_KEYS) as SpecKey[]).map((role) => this.key(key, role));
  }

  /** One group's script arguments: its specs' keys, then the extra keys (a placeholder in the
   *  group's slot for one not here, so a script's layout never depends on which are), then
   *  ARGV (wire.ts' encodeArgs over the group's specs). */
  private args(g: Group, argv: (string | number)[]): (string | number)[] {
    const extra = (key: string | undefined) => (key !== undefined ? `${slotTag(key)}${key}` : `${g.tag}-`);
    const keys = [...g.specs.flatMap((s) => this.keys(s.key)), extra(g.knownGoodKey), extra(g.hintKey), extra(g.successesKey), extra(g.recordKey)];
    return [keys.length, ...keys, ...argv];
  }

  /** Sent after the decision, not awaited by it; tracked for peek, blocks and close. */
  private after(p: Promise<unknown>): void {
    const tracked = p.catch(() => undefined).finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
  }

  private async drain(): Promise<void> {
    if (this.pending.size) await Promise.all([...this.pending]);
  }

  /** Give back what these groups' hits counted (their attempt was refused elsewhere). A lost
   *  abort leaves the attempt counted there (the stricter side) and its reservations expire. */
  private abort(groups: readonly Group[]): void {
    for (const g of groups) this.after(this.client.mgAbort(...this.args(g, encodeArgs(ABORT_WIRE, g.specs, {}, () => ({})))));
  }

  async hit(specs: readonly CounterSpec[], opts: HitOptions = {}): Promise<HitResult> {
    if (specs.length === 0) return { ok: true };
    const cached = this.cache.refusal(specs, opts);
    if (cached) return cached;
    const since = this.cache.generation;
    const groups = planGroups(specs, { knownGoodKey: opts.knownGoodKey, hintKey: opts.hint?.key, successesKey: opts.successesKey }, this.grouping);
    const settled = await Promise.allSettled(groups.map((g) => this.client.mgHit(...this.args(g, encodeArgs(HIT_WIRE, g.specs, hitCall(g, opts), () => ({}))))));
    const replies = settled.map((s, i) => (fulfilled(s) ? decodeHit(groups[i]!, s.value) : undefined));
    const failed = settled.find((s) => !fulfilled(s));
    if (failed) {
      // A store failure for the whole attempt (onError applies): undo what the others counted.
      if (opts.count !== false) this.abort(groups.filter((g, i) => g.specs.length > 0 && replies[i] && !replies[i].refusal));
      throw (failed as PromiseRejectedResult).reason;
    }
    const { result, abort } = decide(specs, groups, replies as GroupReply[], opts);
    this.abort(abort);
    this.learn(specs, groups, replies as GroupReply[], opts, since);
    return result;
  }

  /** What a hit taught about blocks: the ones Redis refused with go to the cache; the ones it
   *  started go to every instance. */
  private learn(specs: readonly CounterSpec[], groups: readonly Group[], replies: readonly GroupReply[], opts: HitOptions, since: number): void {
    const holder = groups.findIndex((g) => g.successesKey !== undefined);
    const successes = holder >= 0 ? { key: opts.successesKey!, n: replies[holder]!.successes } : undefined;
    for (const r of replies) {
      for (const f of [...(r.refusal ? [r.refusal] : []), ...r.provisional]) {
        if (f.blocked) this.cache.note(specs[f.index]!.key, f.retryAfterMs, since, { count: f.count, successes });
      }
      for (const b of r.started) this.announce(specs[b.index]!.key, b.ms, b.count, since);
    }
  }

  /** A block this instance saw start (for `ms`, at `count`), or lifted (0): cached here at
   *  once, published to the others. */
  private announce(key: string, ms: number, count: number, since = this.cache.generation): void {
    if (ms > 0) this.cache.note(key, ms, since, { count });
    else this.cache.forget(key);
    if (this.channel) this.after(this.channel.publish(key, ms, count));
  }

  async settle(specs: readonly CounterSpec[], req: SettleRequest): Promise<number[]> {
    // On success only; a pair or hint kept for 0 ms is not kept (and SET PX 0 is an error).
    const ok = !req.failed;
    const kg = ok && req.knownGood && req.knownGood.ttlMs > 0 ? req.knownGood : undefined;
    const hint = ok && req.hint && req.hint.ttlMs > 0 ? req.hint : undefined;
    const success = ok && req.success && req.success.ttlMs > 0 ? req.success : undefined;
    // The history row goes with the settle of the group holding its key (on one server, the one).
    const row = req.record;
    const extras = { knownGoodKey: kg?.key, hintKey: hint?.key, successesKey: success?.key, recordKey: row?.key };
    const groups = planGroups(specs, extras, this.grouping).filter((g) => settles(g, req.failed));
    const settled = await Promise.allSettled(
      groups.map((g) => {
        const call = {
          failed: req.failed, reserved: req.reserved, fingerprint: req.fingerprint,
          knownGoodTtlMs: g.knownGoodKey !== undefined ? kg?.ttlMs : undefined,
          hint: g.hintKey !== undefined ? hint?.value : undefined, hintTtlMs: g.hintKey !== undefined ? hint?.ttlMs : undefined,
          successMember: g.successesKey !== undefined ? success?.member : undefined, successesTtlMs: g.successesKey !== undefined ? success?.ttlMs : undefined,
          ...rowCall(g.recordKey !== undefined ? row : undefined),
        };
        return this.client.mgSettle(...this.args(g, encodeArgs(SETTLE_WIRE, g.specs, call, (j) => ({ member: req.members?.[g.indexes[j]!] }))));
      }),
    );
    // A group of attempts specs alone was not asked: they read 0 (callers use the failures
    // counts; hit reported the blocks attempts started).
    const counts = specs.map(() => 0);
    settled.forEach((s, gi) => {
      if (!fulfilled(s)) return;
      const g = groups[gi]!;
      g.indexes.forEach((i, j) => (counts[i] = s.value[j]!));
      // Then whether it wrote the row (a failed one is the caller's to write again), then the
      // blocks it started or lifted, as (spec, ms).
      if (g.recordKey !== undefined && s.value[g.indexes.length] === 1) row!.written = true;
      const changed = s.value.slice(g.indexes.length + 1);
      for (let e = 0; e < changed.length; e += 2) this.announce(g.specs[changed[e]! - 1]!.key, changed[e + 1]!, s.value[changed[e]! - 1]!);
    });
    const failed = settled.find((s) => !fulfilled(s));
    if (failed) throw (failed as PromiseRejectedResult).reason;
    return counts;
  }

  /** peek.lua's keys: counter, reservations, block. */
  private peekKeys(key: string): [string, string, string] {
    return [this.key(key, 'counterKey'), this.key(key, 'reservedKey'), this.key(key, 'blockKey')];
  }

  async peek(key: string): Promise<CounterState> {
    await this.drain();
    const [count, inflight, ttlMs, blockedMs] = await this.client.mgPeek(...this.peekKeys(key));
    return { count: count!, inflight: inflight!, ttlMs: ttlMs!, blockedMs: blockedMs! };
  }

  async blocks(): Promise<BlockEntry[]> {
    await this.drain();
    const nodes = this.client instanceof Cluster ? this.client.nodes('master') : [this.client];
    const out: BlockEntry[] = [];
    for (const node of nodes) {
      // SCAN patterns are not prefixed by ioredis: match the full key, then strip the prefix
      // and the subject's hash tag.
      const stream = node.scanStream({ match: `${this.prefix.replace(/[*?[\]\\]/g, '\\$&')}{*}*${SPEC_KEYS.blockKey}`, count: 1000 });
      for await (const batch of stream as AsyncIterable<string[]>) {
        for (const full of batch) {
          const tagged = full.slice(this.prefix.length);
          const key = tagged.slice(tagged.indexOf('}') + 1, -SPEC_KEYS.blockKey.length);
          if (slotTag(key) !== tagged.slice(0, tagged.indexOf('}') + 1)) continue; // not a key of ours
          const [count, , , remaining, since] = await this.client.mgPeek(...this.peekKeys(key));
          if (remaining! > 0) out.push({ key, sinceMs: since!, count: count!, remainingMs: remaining! });
        }
      }
    }
    return out;
  }

  async reset(key: string): Promise<void> {
    await this.drain();
    await this.client.del(...this.keys(key));
    this.cache.forget(key);
    await this.channel?.publish(key, 0, 0);
  }

  async block(key: string, ms: number): Promise<void> {
    await this.client.mgBlock(this.key(key, 'blockKey'), Math.round(ms));
    const { count } = await this.peek(key);
    this.cache.note(key, ms, undefined, { count });
    await this.channel?.publish(key, ms, count);
  }

  async close(): Promise<void> {
    await this.drain();
    await this.channel?.close();
    try {
      await this.client.quit();
    } catch {
      this.client.disconnect();
    }
  }
}
