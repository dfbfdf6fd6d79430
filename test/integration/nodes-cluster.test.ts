// The nodes list on a real Redis Cluster (3 primaries, no replicas): every key of it under one
// hash tag, so the record, the index and the MULTI that writes both go to one slot. Two
// in-process instances list each other; a clean stop removes its record at once.
import { describe, expect, it } from 'vitest';
import { NODES_INDEX, nodeKey, type NodeList } from '../../src/stores/node-registry.js';
import { keySlot } from '../helpers/redis.js';
import { freePort } from '../helpers/ports.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { redisClusterForFile } from '../helpers/rig.js';
import { until } from '../helpers/until.js';

const rc = redisClusterForFile(3, 0);
const TOKEN = 'nodes-cluster-token-0123456789';
const PREFIX = 'ncl:';

async function instance(): Promise<TestProxy> {
  return startTestProxy({
    listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap' }],
    backends: { imap: { host: '127.0.0.1', port: await freePort() } },
    store: { type: 'redis', redis: { cluster: rc.cluster.nodes, keyPrefix: PREFIX, timeout: '1s' } },
    admin: { listen: '127.0.0.1:0', token: TOKEN },
    limits: { keySecret: 'nodes-cluster-secret-0123456789', rules: [] },
    nodes: { beat: '1s' },
  });
}

async function nodesOf(p: TestProxy): Promise<NodeList> {
  const res = await fetch(`http://127.0.0.1:${p.admin!.port}/api/v1/nodes`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as NodeList;
}

describe('nodes on a Redis Cluster', () => {
  it('two instances list each other; a clean stop leaves at once', async () => {
    const [a, b] = await Promise.all([instance(), instance()]);
    try {
      await until(async () => (await nodesOf(a)).nodes.length === 2, 'both nodes listed on the cluster');
      const list = await nodesOf(a);
      expect(list.complete).toBe(true);
      const ids = list.nodes.map((n) => n.id);
      // One slot for all: the index and every record.
      expect(new Set([NODES_INDEX, ...ids.map(nodeKey)].map((k) => keySlot(`${PREFIX}${k}`))).size).toBe(1);
      const bId = (await nodesOf(b)).nodes.find((n) => n.self)!.id;
      await b.stop();
      expect((await nodesOf(a)).nodes.map((n) => n.id)).toEqual(ids.filter((id) => id !== bId));
    } finally {
      await a.stop();
      await b.stop().catch(() => undefined);
    }
  }, 60_000);
});
