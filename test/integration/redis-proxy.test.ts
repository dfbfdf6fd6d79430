// mailgate instances sharing counters in a real redis-server (and a real 3-node Cluster, and
// a master + replica behind a real Sentinel), in front of a real Dovecot: one limit across
// instances, Redis killed mid-run, recovery, a Sentinel failover, and what is left in Redis.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestProxy } from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-client.js';
import { scanKeys, startRedisCluster, startRedisSentinel, type RedisCluster, type RedisSentinel } from '../helpers/redis.js';
import { dovecotForFile, redisForFile } from '../helpers/rig.js';

// Redis first, so the instances (on the Dovecot rig) stop before it does.
const store = redisForFile();
const rig = dovecotForFile();
const SECRET = 'test-key-secret-0123456789';

async function instance(redisCfg: Record<string, unknown>, limit = 4): Promise<TestProxy> {
  return rig.proxy({
    listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap' }],
    backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap } },
    store: { type: 'redis', redis: { timeout: '250ms', ...redisCfg } },
    limits: { keySecret: SECRET, rules: [{ name: 'ip-logins', key: 'ip', count: 'attempts', limit, window: '1h' }] },
  });
}

async function login(p: TestProxy, ip: string, user = 'alice', pass = 'alice-pass'): Promise<string> {
  const c = await RawClient.connect(p.port('imap'), { localAddress: ip });
  await c.waitFor(/\r\n/);
  c.write(`t LOGIN ${user} ${pass}\r\n`);
  const text = await c.waitFor(/^t (OK|NO|BAD)/m);
  c.close();
  return /^t OK/m.test(text) ? 'ok' : /UNAVAILABLE\] Too many/.test(text) ? 'limited' : /UNAVAILABLE/.test(text) ? 'unavailable' : 'fail';
}

describe('two instances, one Redis', () => {
  it('refuse the fifth login from an IP with limit 4, whichever instance the logins hit', async () => {
    const prefix = 'two:';
    const [a, b] = await Promise.all([instance({ url: store.redis.url, keyPrefix: prefix }), instance({ url: store.redis.url, keyPrefix: prefix })]);
    const results = [];
    for (const p of [a, b, b, a, b, a]) results.push(await login(p, '127.0.10.1'));
    expect(results).toEqual(['ok', 'ok', 'ok', 'ok', 'limited', 'limited']);
    expect(await login(a, '127.0.10.2')).toBe('ok');

    const admin = new Redis(store.redis.url);
    const keys = await scanKeys(admin, prefix);
    admin.disconnect();
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys) {
      expect(k.pttl).toBeGreaterThan(0);
      expect(k.key).not.toMatch(/alice/i);
    }
  });
});

describe('Redis outage', () => {
  it('killing Redis does not hang a login; onError applies; limits come back with Redis', async () => {
    const local = await instance({ url: store.redis.url, keyPrefix: 'outage-local:', onError: 'local' }, 2);
    const deny = await instance({ url: store.redis.url, keyPrefix: 'outage-deny:', onError: 'deny' }, 2);
    const allow = await instance({ url: store.redis.url, keyPrefix: 'outage-allow:', onError: 'allow' }, 2);
    expect(await login(local, '127.0.11.1')).toBe('ok');

    await store.redis.kill();
    // local: the same rule on in-memory counters (a fresh count: 2 more, then limited).
    expect([await login(local, '127.0.11.1'), await login(local, '127.0.11.1'), await login(local, '127.0.11.1')]).toEqual(['ok', 'ok', 'limited']);
    // deny: a temporary failure, not a wrong password; allow: no limit at all.
    expect(await login(deny, '127.0.11.2')).toBe('limited');
    expect([await login(allow, '127.0.11.3'), await login(allow, '127.0.11.3'), await login(allow, '127.0.11.3')]).toEqual(['ok', 'ok', 'ok']);
    // One log line per outage, not per login.
    expect(local.log.lines.filter((l) => l.event === 'store.fallback')).toHaveLength(1);

    await store.redis.restart(); // empty: nothing was persisted
    let back = false;
    for (let i = 0; i < 50 && !back; i++) {
      await new Promise((r) => setTimeout(r, 100)); // ioredis reconnects in the background
      back = (await login(allow, '127.0.11.4')) === 'ok' && allow.log.lines.some((l) => l.event === 'store.recovered');
    }
    expect(back).toBe(true);
    expect([await login(allow, '127.0.11.5'), await login(allow, '127.0.11.5'), await login(allow, '127.0.11.5')]).toEqual(['ok', 'ok', 'limited']);
  });
});

describe('Redis Cluster', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster(3);
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  it('a 3-node cluster enforces one limit across two instances', async () => {
    const [a, b] = await Promise.all([
      instance({ cluster: cluster.nodes, keyPrefix: 'cl:' }, 3),
      instance({ cluster: cluster.nodes, keyPrefix: 'cl:' }, 3),
    ]);
    const results = [];
    for (const p of [a, b, a, b]) results.push(await login(p, '127.0.12.1'));
    expect(results).toEqual(['ok', 'ok', 'ok', 'limited']);
    expect(a.log.lines.some((l) => l.event === 'store.fallback')).toBe(false);
  });
});

describe('Redis Sentinel', () => {
  let sentinel: RedisSentinel;
  beforeAll(async () => {
    sentinel = await startRedisSentinel();
  });
  afterAll(async () => {
    await sentinel?.stop();
  });

  it('two instances find the master through the Sentinel, share one limit, and follow a failover to the new master', { timeout: 60_000 }, async () => {
    const cfg = { sentinels: sentinel.sentinels, name: sentinel.name, keyPrefix: 'sn:' };
    const [a, b] = await Promise.all([instance(cfg, 3), instance(cfg, 3)]);
    const results = [];
    for (const p of [a, b, a, b]) results.push(await login(p, '127.0.13.1'));
    expect(results).toEqual(['ok', 'ok', 'ok', 'limited']);
    expect([...a.log.lines, ...b.log.lines].some((l) => l.event === 'store.fallback')).toBe(false);

    const old = await sentinel.masterPort();
    await sentinel.killMaster();
    const promoted = await sentinel.failedOver(old);
    // Each instance counts in the promoted server again once ioredis has asked the Sentinel
    // (a login meanwhile is counted locally: onError local, the default).
    const master = new Redis({ port: promoted, host: '127.0.0.1' });
    try {
      let n = 10;
      for (const p of [a, b]) {
        let inMaster = false;
        for (let i = 0; i < 150 && !inMaster; i++) {
          const ip = `127.0.13.${n++}`;
          expect(await login(p, ip)).toBe('ok');
          inMaster = (await scanKeys(master, 'sn:')).some((k) => k.key.endsWith(`:${ip}`) || k.key.includes(`:${ip}:`));
          if (!inMaster) await new Promise((r) => setTimeout(r, 100));
        }
        expect(inMaster).toBe(true);
      }
      const again = [];
      for (const p of [b, a, b, a]) again.push(await login(p, '127.0.13.200'));
      expect(again).toEqual(['ok', 'ok', 'ok', 'limited']);
    } finally {
      master.disconnect();
    }
  });
});
