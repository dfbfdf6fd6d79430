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
import { Redis } from 'ioredis';
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

export interface RedisCluster {
  nodes: string[];
  stop(): Promise<void>;
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

export async function startRedisCluster(size = 3): Promise<RedisCluster> {
  const dir = mkdtempSync(join(os.tmpdir(), 'mailgate-redis-cluster-'));
  const ports = await clusterPorts(size);
  const children = await Promise.all(
    ports.map((p) => spawnServer(p, dir, ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${p}.conf`), '--cluster-node-timeout', '2000'])),
  );
  const nodes = ports.map((p) => `127.0.0.1:${p}`);
  await run('/usr/bin/redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes']);
  // Wait until every node agrees the cluster is up.
  for (const p of ports) {
    const c = new Redis({ port: p, host: '127.0.0.1', lazyConnect: true });
    await c.connect();
    for (let i = 0; i < 100 && !/cluster_state:ok/.test(await c.cluster('INFO')); i++) await new Promise((r) => setTimeout(r, 100));
    c.disconnect();
  }
  return {
    nodes,
    async stop() {
      await Promise.all(children.map((c) => killChild(c, 'SIGTERM')));
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

/** Every key under a prefix with its TTL in ms (-1: none). */
export async function scanKeys(redis: Redis, prefix: string): Promise<{ key: string; pttl: number }[]> {
  const out: { key: string; pttl: number }[] = [];
  for await (const batch of redis.scanStream({ match: `${prefix}*`, count: 500 })) {
    for (const key of batch as string[]) out.push({ key, pttl: await redis.pttl(key) });
  }
  return out;
}

/** Let `ms` pass for every key under a prefix, as Redis' clock would: shorten TTLs, drop the
 *  keys that would have expired. */
export async function advanceRedis(redis: Redis, prefix: string, ms: number): Promise<void> {
  for (const { key, pttl } of await scanKeys(redis, prefix)) {
    if (pttl < 0) continue;
    if (pttl <= ms) await redis.del(key);
    else await redis.pexpire(key, pttl - ms);
  }
}
