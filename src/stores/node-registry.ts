// The nodes of a deployment (GET /api/v1/nodes, the console's Nodes panel): every instance
// (worker mode: its primary, for itself and its workers) writes a small record about itself
// every nodes.beat, kept NODE_TTL_BEATS beats; one that stops beating drops out of the list, a
// clean stop deletes its record at once. Redis: one key per node `<keyPrefix>{nodes}:<id>`
// (SET PX) and an index set `<keyPrefix>{nodes}` trimmed of ids whose key expired, one hash tag
// so one Cluster slot. Memory store: this process only. A record holds nothing secret (no
// token, no user name, no client address): it is written where every instance can read it.
import type { Cluster, Redis } from 'ioredis';
import type { Clock } from '../clock.js';
import type { Logger } from '../logging/logger.js';

/** A record outlives this many missed beats: one late beat (a busy event loop, a Redis
 *  failover) does not make a live node blink out of the list. */
export const NODE_TTL_BEATS = 3;
/** Most records one listing reads: the list stays a bounded answer. */
export const MAX_NODES = 200;
/** The index set outlives the last beat of any node by this much: never shorter than a
 *  record (nodes may beat at different rates), and gone a while after the last node is. */
const INDEX_KEEP_MS = 3_600_000;

/** What a node says about itself now (see nodes.ts for how it is gathered). */
export interface NodeFacts {
  /** Worker mode: its workers by slot; one process: none. */
  workers: { slot: number; pid: number }[];
  /** Spliced sessions and open client connections (every worker's), null when unknown. */
  sessions: number | null;
  connections: number | null;
  store: { type: 'memory' | 'redis'; up: boolean };
  attackMode: { active: boolean; forced: 'on' | 'off' | null } | null;
}

/** Who a node is, fixed for its life. */
export interface NodeIdentity {
  id: string;
  host: string;
  pid: number;
  version: string;
  /** ISO time it started. */
  started: string;
  /** Serves the admin endpoint / the policy server. */
  admin: boolean;
  policyServer: boolean;
}

export interface NodeRecord extends NodeIdentity, NodeFacts {
  /** ISO time of the beat that wrote it. */
  beat: string;
}

/** Where records are kept while they live. */
export interface NodeBoard {
  put(rec: NodeRecord, ttlMs: number): Promise<void>;
  list(): Promise<NodeRecord[]>;
  remove(id: string): Promise<void>;
  close(): Promise<void>;
  /** Calls `fn` each time the board becomes writable (Redis: connected, again after an
   *  outage), so a node is listed at once rather than at its next beat. */
  onReady?(fn: () => void): void;
}

/** Records in this process, each until its TTL on the clock: the memory store's board (it
 *  only ever holds this process's record), and the unit tests' stand-in for a shared one. */
export class LocalBoard implements NodeBoard {
  private readonly records = new Map<string, { rec: NodeRecord; until: number }>();

  constructor(private readonly clock: Clock) {}

  async put(rec: NodeRecord, ttlMs: number): Promise<void> {
    this.records.set(rec.id, { rec, until: this.clock.now() + ttlMs });
  }

  async list(): Promise<NodeRecord[]> {
    const now = this.clock.now();
    for (const [id, r] of this.records) if (r.until <= now) this.records.delete(id);
    return [...this.records.values()].map((r) => r.rec);
  }

  async remove(id: string): Promise<void> {
    this.records.delete(id);
  }

  async close(): Promise<void> {}
}

/** The index and record keys (the client adds keyPrefix): one hash tag, one Cluster slot. */
export const NODES_INDEX = '{nodes}';
export const nodeKey = (id: string): string => `{nodes}:${id}`;

/** Records in Redis, which expires them on its own clock (no two hosts' clocks compared). */
export class RedisBoard implements NodeBoard {
  constructor(private readonly redis: Redis | Cluster) {
    // Errors surface on each call; an unhandled 'error' event would crash the process.
    this.redis.on('error', () => undefined);
  }

  async put(rec: NodeRecord, ttlMs: number): Promise<void> {
    await this.redis
      .multi()
      .set(nodeKey(rec.id), JSON.stringify(rec), 'PX', ttlMs)
      .sadd(NODES_INDEX, rec.id)
      .pexpire(NODES_INDEX, Math.max(ttlMs, INDEX_KEEP_MS))
      .exec();
  }

  onReady(fn: () => void): void {
    this.redis.on('ready', fn);
  }

  async list(): Promise<NodeRecord[]> {
    const ids = (await this.redis.srandmember(NODES_INDEX, MAX_NODES)) ?? [];
    if (ids.length === 0) return [];
    const raw = await this.redis.mget(ids.map(nodeKey));
    const gone = ids.filter((_, i) => raw[i] === null);
    if (gone.length) await this.redis.srem(NODES_INDEX, ...gone);
    return raw.flatMap((r) => (r === null ? [] : parseRecord(r)));
  }

  async remove(id: string): Promise<void> {
    await this.redis.multi().del(nodeKey(id)).srem(NODES_INDEX, id).exec();
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/** A record another instance wrote; anything that is not one is left out. */
function parseRecord(raw: string): NodeRecord[] {
  try {
    const r = JSON.parse(raw) as Partial<NodeRecord> | null;
    return r && typeof r.id === 'string' && typeof r.beat === 'string' ? [r as NodeRecord] : [];
  } catch {
    return [];
  }
}

/** GET /api/v1/nodes: every live record, this node's marked; complete: false when the shared
 *  board could not be read (then this node's own record only). */
export interface NodeList {
  complete: boolean;
  nodes: (NodeRecord & { self: boolean })[];
}

export class NodeRegistry {
  private timer: NodeJS.Timeout | null = null;
  private last: NodeRecord | null = null;
  private closed = false;
  /** The beat under way: close waits for it, so no late write brings the record back. */
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly board: NodeBoard,
    private readonly identity: NodeIdentity,
    private readonly facts: () => Promise<NodeFacts>,
    private readonly clock: Clock,
    private readonly beatMs: number,
    private readonly log: Logger,
  ) {}

  get id(): string {
    return this.identity.id;
  }

  /** Beats now and every beatMs until close. */
  start(): void {
    this.board.onReady?.(() => void this.beat());
    void this.beat();
    this.timer = setInterval(() => void this.beat(), this.beatMs);
    this.timer.unref();
  }

  /** Writes this node's record; a failure is logged (debug: it repeats every beat while the
   *  store is down, which the store's own health already says) and tried again next beat. */
  beat(): Promise<void> {
    this.pending = this.pending.then(() => this.write());
    return this.pending;
  }

  private async write(): Promise<void> {
    try {
      const rec: NodeRecord = { ...this.identity, ...(await this.facts()), beat: new Date(this.clock.now()).toISOString() };
      if (this.closed) return;
      this.last = rec;
      await this.board.put(rec, this.beatMs * NODE_TTL_BEATS);
    } catch (err) {
      this.log.debug({ event: 'nodes.error', err: (err as Error).message }, 'could not write this node\'s record');
    }
  }

  async list(): Promise<NodeList> {
    const mark = (r: NodeRecord) => ({ ...r, self: r.id === this.identity.id });
    try {
      const nodes = (await this.board.list()).map(mark);
      nodes.sort((a, b) => a.host.localeCompare(b.host) || a.started.localeCompare(b.started) || a.id.localeCompare(b.id));
      return { complete: true, nodes };
    } catch {
      return { complete: false, nodes: this.last ? [mark(this.last)] : [] };
    }
  }

  /** Stops beating and deletes this node's record (a clean stop leaves at once). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.pending;
    await this.board.remove(this.identity.id).catch(() => undefined);
    await this.board.close();
  }
}
