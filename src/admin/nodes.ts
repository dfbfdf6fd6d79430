// GET /api/v1/nodes: every live mailgate instance of the deployment (stores/node-registry.ts),
// and what this node says about itself each beat: who it is (host, pid, version, start) and
// how it is doing (workers, sessions, connections, store, attack mode). No secret, no user name.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { Clock } from '../clock.js';
import type { Config } from '../config/schema.js';
import type { AttackMode } from '../limits/attack-mode.js';
import type { Logger } from '../logging/logger.js';
import { connectRedis } from '../stores/redis.js';
import { LocalBoard, NodeRegistry, RedisBoard, type NodeFacts, type NodeList } from '../stores/node-registry.js';
import type { LimitStore } from '../stores/store.js';
import { AdminError } from './api.js';

/** The answer to GET /api/v1/nodes, or null when the path is not it. */
export async function nodesRoute(method: string | undefined, path: string, nodes: { list(): Promise<NodeList> } | undefined): Promise<NodeList | null> {
  if (path !== '/api/v1/nodes') return null;
  if (!nodes) throw new AdminError(404, 'Not Found', 'no nodes list in this process');
  if (method !== 'GET') throw new AdminError(405, 'Method Not Allowed', 'GET');
  return nodes.list();
}

/** Sum of one metric family's samples in Prometheus text (every label set, every worker). */
export function metricSum(text: string, name: string): number | null {
  const re = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'gm');
  let sum: number | null = null;
  for (let m = re.exec(text); m; m = re.exec(text)) sum = (sum ?? 0) + Number(m[1]);
  return sum;
}

/** The package version: dist/version.json (written by the build), else package.json. */
function packageVersion(): string {
  for (const file of ['../version.json', '../../package.json']) {
    try {
      return (JSON.parse(readFileSync(new URL(file, import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      /* the next place */
    }
  }
  return 'unknown';
}

/** What the process serving the endpoints lends its node record. */
export interface NodeSources {
  initial: Config;
  store: LimitStore;
  clock: Clock;
  log: Logger;
  attackMode(): AttackMode;
  /** Its metrics text (worker mode: every worker's, summed): the open connections. */
  metrics(): Promise<string>;
  /** Spliced sessions (every worker's): the total. */
  sessions?: { list(limit: number): Promise<{ total: number }> };
  /** Worker mode: the live workers. */
  workers?(): { slot: number; pid: number }[];
}

/** This node's registry: on the Redis the store uses (a connection of its own), else this
 *  process alone. Beating from now on. */
export function startNodes(src: NodeSources): NodeRegistry {
  const { initial, clock } = src;
  const board = initial.store.type === 'redis' ? new RedisBoard(connectRedis(initial.store.redis)) : new LocalBoard(clock);
  const identity = {
    id: randomBytes(8).toString('hex'),
    host: os.hostname(),
    pid: process.pid,
    version: packageVersion(),
    started: new Date(clock.now()).toISOString(),
    admin: initial.admin !== undefined,
    policyServer: initial.policyServer !== undefined,
  };
  const facts = async (): Promise<NodeFacts> => {
    const [sessions, text] = await Promise.all([src.sessions?.list(0).catch(() => null), src.metrics().catch(() => '')]);
    const a = src.attackMode().status();
    return {
      workers: src.workers?.() ?? [],
      sessions: sessions?.total ?? null,
      connections: text ? (metricSum(text, 'mailgate_connections') ?? 0) : null,
      store: { type: initial.store.type, up: src.store.health?.up ?? true },
      attackMode: { active: a.active, forced: a.forced },
    };
  };
  const registry = new NodeRegistry(board, identity, facts, clock, initial.nodes.beat, src.log);
  registry.start();
  return registry;
}
