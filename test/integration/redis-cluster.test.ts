// The Redis store on a real Redis Cluster of 3 primaries and 3 replicas
// (cluster-require-full-coverage no): the store contract; keys spread over every primary;
// no overshoot when one attempt's subjects live on different primaries; a refusal gives back
// what the other subject counted; under-shoot while refused partners hold reservations, made
// up by later attempts; the login's history row in its user's slot's settle; the block cache
// and its channel across two instances; and
// SIGKILL of one primary, where only its subjects fall back to onError until its replica takes
// over.
import { afterAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { KeyBuilder } from '../../src/limits/keys.js';
import { Policy } from '../../src/limits/policy.js';
import { parseConfig } from '../../src/config/load.js';
import { MemoryStore } from '../../src/stores/memory.js';
import type { RedisStore } from '../../src/stores/redis.js';
import { ResilientStore } from '../../src/stores/resilient.js';
import type { CounterSpec, LimitStore, RecordRow } from '../../src/stores/store.js';
import { storeContract } from '../contract/store-contract.js';
import { clusterStores, onPrimary, primaryOf, scriptCalls } from '../helpers/cluster-store.js';
import { captureLogger } from '../helpers/log-capture.js';
import { advanceRedis, keySlot, scanKeys } from '../helpers/redis.js';
import { redisClusterForFile } from '../helpers/rig.js';
import { until } from '../helpers/until.js';

const rc = redisClusterForFile(3, 1);
const stores = clusterStores(() => rc.cluster);
afterAll(() => stores.closeAll());

const keys = new KeyBuilder('cluster-test-secret-0123456789');
const spec = (key: string, over: Partial<CounterSpec> = {}): CounterSpec => ({ key, kind: 'attempts', limit: 1000, windowMs: 600_000, blockMs: null, ...over });
const rule = (name: string, key: 'ip' | 'user' | 'ip+user', ip: string, user: string) => keys.ruleKey({ name, key }, ip, user);
const ips = function* (net: string) {
  for (let i = 1; i < 65_000; i++) yield `${net}.${i >> 8}.${i & 255}`;
};
const users = function* (tag: string) {
  for (let i = 0; ; i++) yield `${tag}-${i}`;
};

/** Every key under a prefix, on whichever primary holds it. */
const keysUnder = async (prefix: string) => scanKeys(await stores.admin(), prefix);

let n = 0;
storeContract('redis cluster (3 primaries + 3 replicas)', async () => {
  const prefix = `contract${++n}:`;
  const clock = new ManualClock(Date.now());
  const store = await stores.open(prefix, { clock });
  const admin = await stores.admin();
  return {
    store,
    advance: async (ms) => {
      await advanceRedis(admin, prefix, ms);
      clock.advance(ms);
    },
  };
});

describe('keys spread over the cluster', () => {
  it('300 logins of distinct clients and users put keys on every primary; one attempt\'s ip and user keys on different primaries', async () => {
    const cfg = parseConfig({
      listeners: [{ name: 'i', protocol: 'imap', listen: '127.0.0.1:1', tls: 'none', backend: 'b' }],
      backends: { b: { host: '127.0.0.1', port: 1 } },
      limits: {
        keySecret: 'cluster-test-secret-0123456789',
        knownGood: { ttl: '1d' },
        rules: [
          { name: 'ip-logins', key: 'ip', count: 'attempts', limit: 100, window: '1h' },
          { name: 'pair-failures', key: 'ip+user', count: 'failures', limit: 5, window: '15m' },
          { name: 'user-logins', key: 'user', count: 'attempts', limit: 100, window: '1h' },
        ],
      },
    });
    const policy = new Policy(cfg.limits, await stores.open('spread:'), keys, new ManualClock());
    for (let i = 0; i < 300; i++) {
      const d = await policy.check({ protocol: 'imap', ip: `10.9.${i >> 8}.${i & 255}`, user: `spread-${i}` });
      await policy.record(d, i % 2 ? 'ok' : 'fail');
    }
    const found = await keysUnder('spread:');
    const perPrimary = new Map<number, number>();
    for (const k of found) perPrimary.set(k.node.options.port!, (perPrimary.get(k.node.options.port!) ?? 0) + 1);
    expect([...perPrimary.values()].filter((c) => c > 0)).toHaveLength(3);

    // An attempt whose address and user live on different primaries: each subject's keys on
    // its own primary, the pair's with the user's.
    let i = 0;
    while ((await primaryOf(rc.cluster, rule('ip-logins', 'ip', `10.9.0.${i}`, ''))) === (await primaryOf(rc.cluster, rule('user-logins', 'user', '', `spread-${i}`)))) i++;
    const ipKey = rule('ip-logins', 'ip', `10.9.0.${i}`, '');
    const userKey = rule('user-logins', 'user', '', `spread-${i}`);
    const [ipAt, userAt] = [await primaryOf(rc.cluster, ipKey), await primaryOf(rc.cluster, userKey)];
    expect(ipAt).not.toBe(userAt);
    // The slot helper agrees with the server.
    const admin = await stores.admin();
    for (const k of found.slice(0, 20)) expect(await admin.cluster('KEYSLOT', k.key)).toBe(keySlot(k.key));
    expect(found.filter((k) => k.key.endsWith(ipKey)).map((k) => k.node.options.port)).toEqual([ipAt]);
    expect(found.filter((k) => k.key.endsWith(userKey)).map((k) => k.node.options.port)).toEqual([userAt]);
    const pair = found.filter((k) => k.key.includes(rule('pair-failures', 'ip+user', `10.9.0.${i}`, `spread-${i}`)));
    expect(pair.length).toBeGreaterThan(0);
    expect(new Set(pair.map((k) => k.node.options.port))).toEqual(new Set([userAt]));
  });
});

describe('one attempt over two primaries', () => {
  /** An address and a user whose keys live on different primaries. */
  async function apart(tag: string): Promise<{ ip: string; user: string }> {
    const [user] = await onPrimary(rc.cluster, users(tag), (u) => rule('u', 'user', '', u), (await rc.cluster.topology()).find((t) => t.primary)!.port, 1);
    const [ip] = await onPrimary(rc.cluster, ips('10.20'), (i) => rule('i', 'ip', i, ''), await primaryOf(rc.cluster, rule('u', 'user', '', user!)), 1, true);
    return { ip: ip!, user: user! };
  }

  it('60 racing wrong guesses over two instances against a pair limit of 5: exactly 5 allowed, nothing left reserved', async () => {
    const [a, b] = [await stores.open('race:'), await stores.open('race:')];
    const { ip, user } = await apart('race');
    const specs = [
      spec(rule('ip-logins', 'ip', ip, user)),
      spec(rule('ip-failures', 'ip', ip, user), { kind: 'failures', limit: 100 }),
      spec(rule('pair-failures', 'ip+user', ip, user), { kind: 'failures', limit: 5 }),
      spec(rule('user-logins', 'user', ip, user)),
    ];
    const results = await Promise.all(Array.from({ length: 60 }, async (_, i) => ({ store: i % 2 ? a : b, r: await (i % 2 ? a : b).hit(specs) })));
    const allowed = results.filter((x) => x.r.ok);
    expect(allowed).toHaveLength(5);
    expect(results.filter((x) => !x.r.ok).every((x) => !x.r.ok && x.r.index === 2)).toBe(true);
    await Promise.all(allowed.map((x) => x.store.settle(specs, { failed: true, reserved: true })));
    await b.peek(specs[0]!.key); // b's aborts are in too
    expect(await a.peek(specs[2]!.key)).toMatchObject({ count: 5, inflight: 0 });
    expect(await a.peek(specs[1]!.key)).toMatchObject({ count: 5, inflight: 0 });
    // The refused attempts were given back on the address's primary: 5 attempts counted.
    expect((await a.peek(specs[0]!.key)).count).toBe(5);
    expect((await a.peek(specs[3]!.key)).count).toBe(5);
    expect((await keysUnder('race:')).filter((k) => k.key.endsWith(':r'))).toEqual([]);
  });

  it('a user limit of 8 against 40 parallel logins from 40 addresses: 8 allowed, 8 counted over the addresses, no reservation left', async () => {
    const [a, b] = [await stores.open('abort:'), await stores.open('abort:')];
    const user = 'abort-user';
    const addresses = [...Array.from({ length: 40 }, (_, i) => `10.30.0.${i + 1}`)];
    const specsOf = (ip: string) => [
      spec(rule('ip-logins', 'ip', ip, user)),
      spec(rule('ip-failures', 'ip', ip, user), { kind: 'failures', limit: 10 }),
      spec(rule('user-logins', 'user', ip, user), { limit: 8 }),
    ];
    const results = await Promise.all(addresses.map((ip, i) => (i % 2 ? a : b).hit(specsOf(ip))));
    expect(results.filter((r) => r.ok)).toHaveLength(8);
    await b.peek(specsOf(addresses[0]!)[0]!.key);
    let counted = 0;
    for (const ip of addresses) counted += (await a.peek(specsOf(ip)[0]!.key)).count;
    expect(counted).toBe(8);
    for (const ip of addresses) expect((await a.peek(specsOf(ip)[1]!.key)).inflight).toBe(results[addresses.indexOf(ip)]!.ok ? 1 : 0);
  });
});

describe("the login's history row on a Cluster", () => {
  it("goes with the settle of the user's slot: one settle script per slot, none for the row; alone in a group of its own when no rule is the user's", async () => {
    const store = await stores.open('row:');
    const [user] = await onPrimary(rc.cluster, users('row'), (u) => rule('u', 'user', '', u), (await rc.cluster.topology()).find((t) => t.primary)!.port, 1);
    const [ip] = await onPrimary(rc.cluster, ips('10.40'), (i) => rule('i', 'ip', i, ''), await primaryOf(rc.cluster, rule('u', 'user', '', user!)), 1, true);
    const ipFailures = spec(rule('ip-failures', 'ip', ip!, user!), { kind: 'failures', limit: 100 });
    const userFailures = spec(rule('user-failures', 'user', ip!, user!), { kind: 'failures', limit: 100 });
    const settled = async (specs: CounterSpec[], field: string) => {
      await store.hit(specs);
      const row: RecordRow = { key: keys.historyKey(user!), field, bounds: { atMs: Date.now(), ttlMs: 60_000, cap: 5 } };
      const before = await scriptCalls(rc.cluster);
      expect(await store.settle(specs, { failed: true, reserved: true, record: row })).toEqual(specs.map(() => expect.any(Number)));
      expect(row.written).toBe(true);
      return (await scriptCalls(rc.cluster)) - before;
    };
    expect(await settled([ipFailures, userFailures], 'both')).toBe(2);
    expect(await settled([ipFailures], 'ip only')).toBe(2);
    expect((await store.historyGet(keys.historyKey(user!))).map((r) => r.field).sort()).toEqual(['both', 'ip only']);
  });
});

describe('under-shoot, never overshoot', () => {
  it('a burst where most attempts are refused by their user lets at most the limit through; retries reach exactly the limit', async () => {
    const [a, b] = [await stores.open('under:'), await stores.open('under:')];
    const ip = '10.60.0.1';
    const ipFailures = spec(rule('ip-failures', 'ip', ip, ''), { kind: 'failures', limit: 5 });
    const userOf = (u: string) => spec(rule('user-logins', 'user', ip, u), { limit: 1000 });
    const blocked = Array.from({ length: 20 }, (_, i) => `blocked-${i}`);
    for (const u of blocked) await a.block(userOf(u).key, 600_000);
    // 30 at once: 20 for blocked users (their reservation on the address is a phantom until the
    // abort), 10 for others.
    const users = [...blocked, ...Array.from({ length: 10 }, (_, i) => `legit-${i}`)].sort(() => Math.random() - 0.5);
    const burst = await Promise.all(users.map(async (u, i) => ({ store: i % 2 ? a : b, r: await (i % 2 ? a : b).hit([ipFailures, userOf(u)]) })));
    const through = burst.filter((x) => x.r.ok);
    expect(through.length).toBeLessThanOrEqual(5);
    await Promise.all(through.map((x) => x.store.settle([ipFailures], { failed: true, reserved: true })));
    await a.peek(ipFailures.key);
    await b.peek(ipFailures.key);
    // Later attempts take what the phantoms held back: the address's budget, exactly.
    let more = 0;
    for (let i = 0; i < 10; i++) {
      const r = await a.hit([ipFailures, userOf(`later-${i}`)]);
      if (!r.ok) break;
      more++;
      await a.settle([ipFailures], { failed: true, reserved: true });
    }
    expect(through.length + more).toBe(5);
    expect(await a.peek(ipFailures.key)).toMatchObject({ count: 5, inflight: 0 });
  });
});

describe('block cache and channel, two instances', () => {
  it('a block known to an instance refuses without a script; an unblock or a block by hand through the other is honoured at once', async () => {
    const [a, b] = [await stores.open('l1:'), await stores.open('l1:')];
    await until(() => a.blockCacheLive && b.blockCacheLive, 'both block channels');
    const s = spec(rule('ip-failures', 'ip', '10.40.0.1', ''), { kind: 'failures', limit: 1, blockMs: 600_000 });
    await b.hit([s]);
    await b.settle([s], { failed: true, reserved: true }); // starts the block: cached in b, announced to a
    await until(() => a.cachedBlocks > 0, 'a to hear of the block');
    const before = await scriptCalls(rc.cluster);
    for (const store of [a, b, a, b]) expect(await store.hit([s])).toMatchObject({ ok: false, blocked: true, count: 1 });
    expect(await scriptCalls(rc.cluster)).toBe(before);

    await a.reset(s.key);
    await eventually(async () => (await b.hit([s], { count: false })).ok, 'b to honour the unblock');

    const other = spec(rule('ip-logins', 'ip', '10.40.0.2', ''));
    await a.block(other.key, 60_000);
    await until(() => b.cachedBlocks > 0, 'b to hear of the block by hand');
    const again = await scriptCalls(rc.cluster);
    expect(await b.hit([other])).toMatchObject({ ok: false, blocked: true });
    expect(await scriptCalls(rc.cluster)).toBe(again);
  });
});

// Last: it leaves the cluster with one primary replaced.
describe('a primary killed', () => {
  it('SIGKILL of one primary: only its subjects fall back to onError, the others stay in Redis; its replica takes over', { timeout: 60_000 }, async () => {
    const { logger } = captureLogger();
    const redis = await stores.open('failover:', { timeoutMs: 250 });
    const store: LimitStore = new ResilientStore(redis, new MemoryStore(new ManualClock()), 'local', 250, logger);
    const victim = (await rc.cluster.topology()).find((t) => t.primary)!.port;
    const key = (ip: string) => rule('ip-logins', 'ip', ip, '');
    const onVictim = await onPrimary(rc.cluster, ips('10.50'), key, victim, 4);
    const elsewhere = await onPrimary(rc.cluster, ips('10.51'), key, victim, 8, true);
    const routes = async (list: string[]) => (await Promise.all(list.map((ip) => store.hit([spec(key(ip))])))).map((r) => (r.ok ? r.route : 'refused'));
    expect(await routes([...onVictim, ...elsewhere])).toEqual(Array(12).fill('primary'));

    await rc.cluster.kill(victim);
    const fallbacks = store.health!.fallbacks;
    expect(await routes(elsewhere)).toEqual(Array(8).fill('primary'));
    expect(store.health!.fallbacks).toBe(fallbacks);
    expect(await routes(onVictim)).toEqual(Array(4).fill('local'));
    expect(store.health!.fallbacks).toBe(fallbacks + 4);
    // An attempt whose address answers and whose user's primary is down is a store failure as
    // a whole: onError decides, and the address gives back what it counted.
    const [victimUser] = await onPrimary(rc.cluster, users('failover'), (u) => rule('u', 'user', '', u), victim, 1);
    const mixed = [spec(key(elsewhere[0]!)), spec(rule('u', 'user', '', victimUser!))];
    const counted = (await redis.peek(mixed[0]!.key)).count;
    expect(await store.hit(mixed)).toMatchObject({ ok: true, route: 'local' });
    // (The abort follows the failure; the wrapper's deadline may have answered before it.)
    await eventually(async () => (await redis.peek(mixed[0]!.key)).count === counted, 'the address to give the attempt back');

    const promoted = await rc.cluster.failedOver(victim);
    expect(promoted).not.toBe(victim);
    await eventually(async () => (await routes(onVictim)).every((r) => r === 'primary'), 'decisions back in Redis after the promotion', 30_000);
    expect(await routes(elsewhere)).toEqual(Array(8).fill('primary'));
    // The promoted replica holds the subjects' counts from before (asynchronous replication
    // may lose the last writes: at least the first round's).
    expect((await redis.peek(key(onVictim[0]!))).count).toBeGreaterThanOrEqual(2);
  });
});

/** Polls an asynchronous condition (bounded): for conditions, never for time. */
async function eventually(cond: () => Promise<boolean>, what: string, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
