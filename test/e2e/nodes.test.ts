// The nodes list (issue 20) on one real redis-server: two in-process instances and the compiled
// CLI in worker mode (`workers: 2`) share it. GET /api/v1/nodes on either instance lists all
// three (the worker-mode primary with its two workers), `mailgate admin nodes` prints the same;
// a clean stop deletes its record at once; a SIGKILLed node stays listed until its record's TTL
// (3 beats of nodes.beat) runs out, then drops out. No Dovecot: nodes need no login.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { NODE_TTL_BEATS, nodeKey, NODES_INDEX, type NodeList } from '../../src/stores/node-registry.js';
import { buildCli, spawnProxy, workersConfig, type BuiltCli, type RunningProxy } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { redisForFile } from '../helpers/rig.js';
import { until } from '../helpers/until.js';

const TOKEN = 'nodes-admin-token-0123456789';
const PREFIX = 'nodes-test:';
/** Short beats so a dead node leaves within 3 s; the test polls, never sleeps. */
const BEAT_MS = 1_000;
const store = redisForFile();
let built: BuiltCli | undefined;
let workers: RunningProxy | undefined;
const inProcess: TestProxy[] = [];
let closedPort: number;

const base = () => ({
  listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap' }],
  // Nothing listens there: no login is made, the capability probe is refused at once.
  backends: { imap: { host: '127.0.0.1', port: closedPort } },
  store: { type: 'redis', redis: { url: store.redis.url, keyPrefix: PREFIX } },
  limits: { keySecret: 'nodes-key-secret-0123456789', rules: [] },
  nodes: { beat: `${BEAT_MS}ms` },
});

async function instance(): Promise<TestProxy> {
  const p = await startTestProxy({ ...base(), admin: { listen: '127.0.0.1:0', token: TOKEN } });
  inProcess.push(p);
  return p;
}

async function nodesOf(port: number): Promise<NodeList> {
  const res = await fetch(`http://127.0.0.1:${port}/api/v1/nodes`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as NodeList;
}

beforeAll(async () => {
  closedPort = await freePort();
  built = buildCli();
  const cfg = { ...workersConfig(closedPort, {}), ...base(), workers: 2, admin: { listen: '127.0.0.1:0' } };
  workers = await spawnProxy(built.cli, built.writeConfig('nodes.yaml', stringify(cfg)), { MAILGATE_ADMIN_TOKEN: TOKEN });
}, 120_000);
afterAll(async () => {
  await workers?.signal('SIGKILL');
  await Promise.all(inProcess.map((p) => p.stop()));
  built?.remove();
});

describe('GET /api/v1/nodes on one Redis', () => {
  it('lists every instance with its facts; the worker-mode primary lists its workers; the CLI prints it', async () => {
    const a = await instance();
    const b = await instance();
    await until(async () => (await nodesOf(a.admin!.port)).nodes.length === 3, 'three nodes listed');
    const list = await nodesOf(a.admin!.port);
    expect(list.complete).toBe(true);
    expect(list.nodes.filter((n) => n.self)).toHaveLength(1);
    const primary = list.nodes.find((n) => n.pid === workers!.child.pid)!;
    expect(primary.workers.map((w) => w.slot).sort()).toEqual([1, 2]);
    expect(primary.workers.every((w) => w.pid > 0 && w.pid !== primary.pid)).toBe(true);
    expect(primary).toMatchObject({ admin: true, store: { type: 'redis', up: true }, sessions: 0, connections: 0, attackMode: { active: false, forced: null } });
    const mine = list.nodes.filter((n) => n.pid === process.pid);
    expect(mine).toHaveLength(2);
    for (const n of mine) expect(n.workers).toEqual([]);
    // The other instance sees the same nodes, itself as self.
    const fromB = await nodesOf(b.admin!.port);
    expect(fromB.nodes.map((n) => n.id).sort()).toEqual(list.nodes.map((n) => n.id).sort());
    expect(fromB.nodes.find((n) => n.self)!.id).not.toBe(list.nodes.find((n) => n.self)!.id);

    const out = built!.run(['admin', 'nodes', '--url', `http://127.0.0.1:${workers!.admin}`], { MAILGATE_ADMIN_TOKEN: TOKEN });
    expect(out.code).toBe(0);
    const printed = JSON.parse(out.stdout) as NodeList;
    expect(printed.nodes.find((n) => n.self)?.pid).toBe(workers!.child.pid);
    // One hash tag for every key: one Cluster slot; each record with its TTL.
    const redis = new Redis(store.redis.url);
    try {
      const keys = await redis.keys(`${PREFIX}*nodes*`);
      expect(keys.sort()).toEqual([`${PREFIX}${NODES_INDEX}`, ...list.nodes.map((n) => `${PREFIX}${nodeKey(n.id)}`)].sort());
      // The index outlives every record (nodes may beat at other rates); it too expires.
      expect(await redis.pttl(`${PREFIX}${NODES_INDEX}`)).toBeGreaterThan(BEAT_MS * NODE_TTL_BEATS);
      for (const n of list.nodes) {
        const ttl = await redis.pttl(`${PREFIX}${nodeKey(n.id)}`);
        expect(ttl).toBeGreaterThan(0);
        expect(ttl).toBeLessThanOrEqual(BEAT_MS * NODE_TTL_BEATS);
        const raw = (await redis.get(`${PREFIX}${nodeKey(n.id)}`))!;
        expect(raw).not.toContain(TOKEN);
      }
    } finally {
      redis.disconnect();
    }
  }, 60_000);

  it('a clean stop leaves the list at once; a killed node stays until its TTL runs out, then leaves', async () => {
    const a = await instance();
    const c = await instance();
    const cId = (await nodesOf(c.admin!.port)).nodes.find((n) => n.self)!.id;
    await c.stop();
    inProcess.splice(inProcess.indexOf(c), 1);
    // Deleted by the stop itself: no wait, no TTL.
    expect((await nodesOf(a.admin!.port)).nodes.map((n) => n.id)).not.toContain(cId);

    const killed = workers!.child.pid;
    const before = await nodesOf(a.admin!.port);
    const dead = before.nodes.find((n) => n.pid === killed)!;
    expect(dead).toBeDefined();
    await workers!.signal('SIGKILL');
    workers = undefined;
    // Its record outlives it (nobody deleted it): Redis still holds it, with its TTL left.
    const redis = new Redis(store.redis.url);
    try {
      const ttl = await redis.pttl(`${PREFIX}${nodeKey(dead.id)}`);
      expect(ttl).toBeGreaterThan(0);
      await until(async () => !(await nodesOf(a.admin!.port)).nodes.some((n) => n.id === dead.id), 'the killed node drops out', 10_000);
      expect(await redis.exists(`${PREFIX}${nodeKey(dead.id)}`)).toBe(0);
      // The index is trimmed of it too; the live instances stay listed.
      expect(await redis.smembers(`${PREFIX}${NODES_INDEX}`)).not.toContain(dead.id);
    } finally {
      redis.disconnect();
    }
    const after = await nodesOf(a.admin!.port);
    expect(after.nodes.every((n) => n.pid === process.pid)).toBe(true);
    expect(after.nodes.find((n) => n.self)).toBeDefined();
  }, 60_000);
});
