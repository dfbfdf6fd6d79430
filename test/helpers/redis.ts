// Starts real redis-server processes (Debian's package) for tests: one server, a 3-node
// Cluster, or a master, a replica and a Sentinel watching them, on free loopback ports in temp
// dirs; never the machine's 6379. Also moves Redis'
// notion of time for a key prefix (shortens TTLs) so window tests never sleep.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { freePorts, waitForPort } from './ports.js';

const run = promisify(execFile);

export interface RedisServer {
  port: number;
  url: string;
  /** SIGKILL, as a crash would. */
  kill(): Promise<void>;
  /** Start again on the same port. */
  restart(): Promise<void>;
  /** SIGSTOP: the server hangs with its connections open, as an overloaded one would. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  stop(): Promise<void>;
}

/** A redis-server on `port`, checked to be this one: a free port is free when asked for, not
 *  reserved, so another test file's server may have taken it meanwhile (then this one exits and
 *  the port answers for the other). Throws PORT_TAKEN then. */
async function spawnServer(port: number, dir: string, extra: string[] = []): Promise<ChildProcess> {
  const child = spawn(
    '/usr/bin/redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'no', '--logfile', join(dir, `redis-${port}.log`), ...extra],
    { stdio: 'ignore' },
  );
  await waitForPort(port);
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await probe.connect();
    const pid = /process_id:(\d+)/.exec(await probe.info('server'))?.[1];
    if (Number(pid) !== child.pid) throw new Error(PORT_TAKEN);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  } finally {
    probe.disconnect();
  }
  return child;
}

const PORT_TAKEN = 'redis test port taken by another server';

async function killChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  await exited;
}

export async function startRedis(): Promise<RedisServer> {
  const dir = mkdtempSync(join(os.tmpdir(), 'mailgate-redis-'));
  let port = 0;
  let started: ChildProcess | undefined;
  for (let attempt = 1; !started; attempt++) {
    [port] = (await freePorts(1)) as [number];
    started = await spawnServer(port, dir).catch((err: Error) => {
      if (attempt >= 3 || err.message !== PORT_TAKEN) throw err;
      return undefined;
    });
  }
  let child: ChildProcess = started;
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill: () => killChild(child, 'SIGKILL'),
    async restart() {
      child = await spawnServer(port, dir);
    },
    pause: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
    async stop() {
      child.kill('SIGCONT'); // a paused server would never act on SIGTERM
      await killChild(child, 'SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether host:port can be bound right now. */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** Ports for Cluster nodes: each node also listens on port + 10000 (the cluster bus), which must
 *  exist (≤ 65535) and be free. The kernel's ephemeral ports reach 60999, so about one in five
 *  would not do. */
async function clusterPorts(n: number): Promise<number[]> {
  const out: number[] = [];
  while (out.length < n) {
    const [p] = await freePorts(1);
    if (p! + 10_000 <= 65_535 && !out.includes(p!) && (await bindable(p! + 10_000))) out.push(p!);
  }
  return out;
}

export interface ClusterNodeInfo {
  port: number;
  id: string;
  primary: boolean;
  /** A primary's slot ranges [from, to]; none for a replica. */
  slots: [number, number][];
}

export interface RedisCluster {
  /** Every node (host:port), primaries and replicas: the seeds to give clients. */
  nodes: string[];
  /** The cluster as a live node sees it now (failed nodes excluded). */
  topology(): Promise<ClusterNodeInfo[]>;
  /** The port of the primary that serves a slot now. */
  primaryFor(slot: number): Promise<number>;
  /** SIGKILL one node, as a crash would (its slots are remembered for failedOver). */
  kill(port: number): Promise<void>;
  /** Resolves once a replica has taken over the slots `port` served (bounded). */
  failedOver(port: number, timeoutMs?: number): Promise<number>;
  stop(): Promise<void>;
}

/** A real Redis Cluster: `primaries` primaries with `replicas` replicas each, node timeout
 *  2 s, and `cluster-require-full-coverage no` (the setting README recommends: a shard that is
 *  down does not stop the others). */
export async function startRedisCluster(primaries = 3, opts: { replicas?: number } = {}): Promise<RedisCluster> {
  const replicas = opts.replicas ?? 0;
  const dir = mkdtempSync(join(os.tmpdir(), 'mailgate-redis-cluster-'));
  const ports = await clusterPorts(primaries * (1 + replicas));
  const children = new Map<number, ChildProcess>();
  await Promise.all(
    ports.map(async (p) => {
      const extra = ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${p}.conf`), '--cluster-node-timeout', '2000', '--cluster-require-full-coverage', 'no'];
      children.set(p, await spawnServer(p, dir, extra));
    }),
  );
  const nodes = ports.map((p) => `127.0.0.1:${p}`);
  await run('/usr/bin/redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', String(replicas), '--cluster-yes']);
  const ask = async <T>(port: number, f: (c: Redis) => Promise<T>): Promise<T> => {
    const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
    c.on('error', () => undefined);
    try {
      await c.connect();
      return await f(c);
    } finally {
      c.disconnect();
    }
  };
  const alive = () => ports.filter((p) => { const c = children.get(p)!; return c.exitCode === null && c.signalCode === null; });
  const topology = async (): Promise<ClusterNodeInfo[]> => {
    const text = await ask(alive()[0]!, (c) => c.cluster('NODES') as Promise<string>);
    return text.trim().split('\n').map((line) => line.split(' ')).filter((f) => !f[2]!.includes('fail')).map((f) => ({
      port: Number(f[1]!.split('@')[0]!.split(':')[1]),
      id: f[0]!,
      primary: f[2]!.includes('master'),
      slots: f.slice(8).filter((r) => !r.startsWith('[')).map((r) => { const [a, b] = r.split('-'); return [Number(a), Number(b ?? a)] as [number, number]; }),
    }));
  };
  /** The slots a killed primary served, for failedOver. */
  const served = new Map<number, [number, number][]>();
  const primaryFor = async (slot: number) => {
    const n = (await topology()).find((t) => t.primary && t.slots.some(([a, b]) => slot >= a && slot <= b));
    if (!n) throw new Error(`no live primary serves slot ${slot}`);
    return n.port;
  };
  const poll = async (cond: () => Promise<boolean>, what: string, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await cond().catch(() => false))) {
      if (Date.now() > deadline) throw new Error(`redis cluster: timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  // Every node agrees the cluster is up, and every replica is in sync with its primary.
  for (const p of ports) {
    await poll(async () => /cluster_state:ok/.test(await ask(p, (c) => c.cluster('INFO') as Promise<string>)), `node ${p} to see the cluster up`);
    await poll(async () => { const info = await ask(p, (c) => c.info('replication')); return /role:master/.test(info) || /master_link_status:up/.test(info); }, `replica ${p} in sync`);
  }
  return {
    nodes,
    topology,
    primaryFor,
    async kill(port) {
      served.set(port, (await topology()).find((n) => n.port === port)?.slots ?? []);
      await killChild(children.get(port)!, 'SIGKILL');
    },
    async failedOver(port, timeoutMs = 30_000) {
      const slot = served.get(port)?.[0]?.[0];
      if (slot === undefined) throw new Error(`${port} served no slots when killed`);
      let promoted = 0;
      await poll(async () => {
        const live = (await topology()).filter((n) => n.primary && n.port !== port);
        const covered = live.flatMap((n) => n.slots).reduce((sum, [a, b]) => sum + b - a + 1, 0);
        promoted = live.find((n) => n.slots.some(([a, b]) => slot >= a && slot <= b))?.port ?? 0;
        return covered === 16_384 && promoted !== 0;
      }, `a replica to take over from ${port}`, timeoutMs);
      return promoted;
    },
    async stop() {
      await Promise.all([...children.values()].map((c) => killChild(c, 'SIGTERM')));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface RedisSentinel {
  /** The Sentinel's address (host:port) and the master name it watches. */
  sentinels: string[];
  name: string;
  /** The current master's port, as the Sentinel reports it. */
  masterPort(): Promise<number>;
  /** SIGKILL the current master, as a crash would. */
  killMaster(): Promise<void>;
  /** Resolves once the Sentinel has promoted another server (bounded). */
  failedOver(fromPort: number, timeoutMs?: number): Promise<number>;
  stop(): Promise<void>;
}

/** A master, one replica and one Sentinel (quorum 1) that declares the master down after one
 *  second and fails over at once: Sentinel's own failover, with real processes. */
export async function startRedisSentinel(): Promise<RedisSentinel> {
  const dir = mkdtempSync(join(os.tmpdir(), 'mailgate-redis-sentinel-'));
  const [master, replica, sentinel] = (await freePorts(3)) as [number, number, number];
  const servers = new Map<number, ChildProcess>();
  servers.set(master, await spawnServer(master, dir));
  servers.set(replica, await spawnServer(replica, dir, ['--replicaof', '127.0.0.1', String(master)]));
  const name = 'mailgate-test';
  // Sentinel rewrites its config file: it lives in the temp dir.
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(
    conf,
    [
      `port ${sentinel}`,
      'bind 127.0.0.1',
      'protected-mode no',
      `dir ${dir}`,
      `logfile ${join(dir, 'sentinel.log')}`,
      `sentinel monitor ${name} 127.0.0.1 ${master} 1`,
      `sentinel down-after-milliseconds ${name} 1000`,
      `sentinel failover-timeout ${name} 5000`,
      `sentinel parallel-syncs ${name} 1`,
      '',
    ].join('\n'),
  );
  const sentinelChild = spawn('/usr/bin/redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  await waitForPort(sentinel);
  const admin = new Redis({ port: sentinel, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 1 });
  await admin.connect();
  const masterPort = async () => Number(((await admin.call('SENTINEL', 'get-master-addr-by-name', name)) as string[])[1]);
  // Wait until the Sentinel knows the replica too, or there is nothing to fail over to.
  for (let i = 0; i < 100; i++) {
    const replicas = (await admin.call('SENTINEL', 'replicas', name)) as unknown[];
    if (replicas.length > 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    sentinels: [`127.0.0.1:${sentinel}`],
    name,
    masterPort,
    async killMaster() {
      const port = await masterPort();
      await killChild(servers.get(port)!, 'SIGKILL');
    },
    async failedOver(fromPort, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const port = await masterPort();
        if (port !== fromPort) return port;
        if (Date.now() > deadline) throw new Error('Sentinel did not fail over in time');
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      admin.disconnect();
      await Promise.all([...servers.values(), sentinelChild].map((c) => killChild(c, 'SIGTERM')));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Every key under a prefix with its TTL in ms (-1: none); on a Cluster, every primary's. */
export async function scanKeys(redis: Redis | Cluster, prefix: string): Promise<{ key: string; pttl: number; node: Redis }[]> {
  const out: { key: string; pttl: number; node: Redis }[] = [];
  for (const node of redis instanceof Cluster ? redis.nodes('master') : [redis]) {
    for await (const batch of node.scanStream({ match: `${prefix}*`, count: 500 })) {
      for (const key of batch as string[]) out.push({ key, pttl: await node.pttl(key), node });
    }
  }
  return out;
}

/** Let `ms` pass for every key under a prefix, as Redis' clock would: shorten TTLs, drop the
 *  keys that would have expired. */
export async function advanceRedis(redis: Redis | Cluster, prefix: string, ms: number): Promise<void> {
  for (const { key, pttl, node } of await scanKeys(redis, prefix)) {
    if (pttl < 0) continue;
    if (pttl <= ms) await node.del(key);
    else await node.pexpire(key, pttl - ms);
  }
}

/** CRC16/XMODEM (polynomial 0x1021, initial 0), the checksum Redis Cluster hashes keys with. */
export function crc16(text: string): number {
  let crc = 0;
  for (const byte of Buffer.from(text, 'utf8')) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** Redis Cluster's slot of a key: CRC16 of its hash tag (the part between the first "{" and
 *  the next "}", when not empty) or of the whole key, mod 16384 (cluster spec). */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  const close = open >= 0 ? key.indexOf('}', open + 1) : -1;
  return crc16(close > open + 1 ? key.slice(open + 1, close) : key) % 16_384;
}
