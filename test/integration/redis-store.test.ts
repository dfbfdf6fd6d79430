// The store contract against a real redis-server, plus what only Redis has to prove: two
// stores (two instances) racing on one limit, every key with a TTL and no user name, and one
// script per hit and per settle (the history row in it) on one server.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock, type Clock } from '../../src/clock.js';
import { KeyBuilder, slotTag } from '../../src/limits/keys.js';
import { RedisStore } from '../../src/stores/redis.js';
import type { CounterSpec, RecordRow } from '../../src/stores/store.js';
import { storeContract } from '../contract/store-contract.js';
import { advanceRedis, scanKeys, startRedis, type RedisServer } from '../helpers/redis.js';
import { until } from '../helpers/until.js';

let server: RedisServer;
let admin: Redis;
const stores: RedisStore[] = [];

beforeAll(async () => {
  server = await startRedis();
  admin = new Redis(server.url);
});
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  admin?.disconnect();
  await server?.stop();
});

function store(prefix: string, clock?: Clock): RedisStore {
  const s = new RedisStore(new Redis(server.url, { keyPrefix: prefix }), { clock });
  stores.push(s);
  return s;
}

let n = 0;
storeContract('redis', async () => {
  const prefix = `contract${++n}:`;
  // The block cache runs on the instance's clock: moved with Redis' TTLs.
  const clock = new ManualClock(Date.now());
  return {
    store: store(prefix, clock),
    advance: async (ms) => {
      await advanceRedis(admin, prefix, ms);
      clock.advance(ms);
    },
  };
});

describe('Redis store across instances', () => {
  const spec = (kind: CounterSpec['kind'], limit: number): CounterSpec => ({ key: `race-${kind}-${limit}`, kind, limit, windowMs: 60_000, blockMs: null });

  it('two instances and 50 parallel attempts against limit 5 let exactly 5 through', async () => {
    const a = store('race:');
    const b = store('race:');
    const s = spec('attempts', 5);
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).hit([s])));
    expect(results.filter((r) => r.ok)).toHaveLength(5);
    expect((await a.peek(s.key)).count).toBe(5);
  });

  it('failure reservations hold across instances: 20 parallel guesses against limit 3 reserve 3', async () => {
    const a = store('race:');
    const b = store('race:');
    const s = spec('failures', 3);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).hit([s])));
    expect(results.filter((r) => r.ok)).toHaveLength(3);
    await Promise.all([a.settle([s], { failed: true, reserved: true }), b.settle([s], { failed: true, reserved: true }), a.settle([s], { failed: true, reserved: true })]);
    expect(await b.peek(s.key)).toMatchObject({ count: 3, inflight: 0 });
  });

  it('every key has a TTL and user names appear only as keyed hashes', async () => {
    const s = store('scan:');
    const keys = new KeyBuilder('a-secret-of-enough-length');
    const user = 'alice@example.org';
    const specs: CounterSpec[] = [
      { key: keys.ruleKey({ name: 'u', key: 'user' }, '192.0.2.1', user), kind: 'attempts', limit: 1, windowMs: 60_000, blockMs: 600_000 },
      { key: keys.ruleKey({ name: 'iu', key: 'ip+user' }, '192.0.2.1', user), kind: 'failures', limit: 5, windowMs: 60_000, blockMs: 60_000 },
    ];
    await s.hit(specs);
    await s.hit(specs); // refused: the block key exists now
    await s.settle(specs, { failed: true, reserved: true });
    const found = await scanKeys(admin, 'scan:');
    expect(found.length).toBeGreaterThanOrEqual(3);
    for (const k of found) {
      expect(k.pttl).toBeGreaterThan(0);
      expect(k.key.toLowerCase()).not.toContain('alice');
    }
    expect(found.some((k) => k.key.endsWith(':b'))).toBe(true);
  });

  it('one server: an attempt is one hit script and one settle script whatever its subjects, the settle carrying the history row', async () => {
    const s = store('rt:');
    // The block channel's subscriber is up first (it says SUBSCRIBE once, then PING now and then).
    await until(() => s.blockCacheLive, 'the block channel');
    const monitor = await admin.monitor();
    const seen: string[][] = [];
    // Commands the script itself runs show too, with source "lua": only the client's count.
    monitor.on('monitor', (_t: string, args: string[], source: string) => source !== 'lua' && args[0]!.toLowerCase() !== 'ping' && seen.push(args));
    // MONITOR output is asynchronous but in execution order: once our ECHO shows, all before it has.
    const drained = async (marker: string) => {
      await admin.echo(marker);
      await until(() => seen.some((a) => a[0]!.toLowerCase() === 'echo' && a[1] === marker), `MONITOR to show ${marker}`);
      return seen.splice(0).map((a) => a[0]!.toLowerCase()).filter((c) => c !== 'echo');
    };
    // An address's rules and a user's: two subjects (two Cluster slots), one script here.
    const keys = new KeyBuilder('a-secret-of-enough-length');
    const ipSpecs = [keys.ruleKey({ name: 'a', key: 'ip' }, '192.0.2.7', ''), keys.ruleKey({ name: 'f', key: 'ip' }, '192.0.2.7', '')].map((key, i) => ({ ...spec(i ? 'failures' : 'attempts', 10), key }));
    const userSpec = { ...spec('failures', 10), key: keys.ruleKey({ name: 'u', key: 'user' }, '192.0.2.7', 'carol') };
    const specs = [...ipSpecs, userSpec];
    const opts = { knownGoodKey: keys.knownGoodKey('192.0.2.0', 'carol'), successesKey: keys.successesKey('192.0.2.7') };
    await s.hit(specs, opts); // the first calls may load the scripts
    await s.settle(specs, { failed: true, reserved: true, record: { key: keys.historyKey('carol'), field: 'first', bounds: { atMs: Date.now(), ttlMs: 60_000, cap: 5 } } });
    await drained('first');
    expect(await s.hit(specs, opts)).toMatchObject({ ok: true });
    expect(await drained('hit')).toEqual(['evalsha']);
    const row: RecordRow = { key: keys.historyKey('carol'), field: '192.0.2.0/24|imap|ok', bounds: { atMs: Date.now(), ttlMs: 60_000, cap: 5 } };
    const success = { key: opts.successesKey, member: keys.userHash('carol'), ttlMs: 60_000 };
    await s.settle(specs, { failed: false, reserved: true, knownGood: { key: opts.knownGoodKey, ttlMs: 60_000 }, success, record: row, countsUnread: true });
    expect(await drained('settle')).toEqual(['evalsha']);
    expect(row.written).toBe(true);
    expect((await s.historyGet(keys.historyKey('carol'))).map((r) => [r.field, r.count])).toEqual([['192.0.2.0/24|imap|ok', 1], ['first', 1]]);
    await drained('read');
    // A refusal by the user's rule counts nothing on the address's: no abort to send.
    const tight = { ...userSpec, limit: 1 };
    expect(await s.hit([...ipSpecs, tight])).toMatchObject({ ok: false, index: 2 });
    expect(await drained('refused')).toEqual(['evalsha']);
    expect((await s.peek(ipSpecs[0]!.key)).count).toBe(2);
    monitor.disconnect();
  });

  it("a row the settle cannot write (a foreign value at the record's key) fails neither the settle nor its counts: left for historyAdd", async () => {
    const s = store('row:');
    const keys = new KeyBuilder('a-secret-of-enough-length');
    const userSpec = { ...spec('failures', 10), key: keys.ruleKey({ name: 'u', key: 'user' }, '192.0.2.8', 'dave') };
    await admin.set(`row:${slotTag(keys.historyKey('dave'))}${keys.historyKey('dave')}`, 'not a hash');
    await s.hit([userSpec]);
    const row: RecordRow = { key: keys.historyKey('dave'), field: 'f', bounds: { atMs: Date.now(), ttlMs: 60_000, cap: 5 } };
    expect(await s.settle([userSpec], { failed: true, reserved: true, record: row })).toEqual([1]);
    expect(row.written).toBeUndefined();
    expect(await s.peek(userSpec.key)).toMatchObject({ count: 1, inflight: 0 });
    // The caller's historyAdd then reports the error (history.ts logs it).
    await expect(s.historyAdd(row.key, row.field, row.bounds)).rejects.toThrow(/WRONGTYPE/);
  });
});
