// Test-file hooks (vitest): the real services a test file runs against, started before its
// tests and stopped after them. vitest runs after-hooks as a stack (sequence.hooks 'stack',
// its default), so what a file declares first starts first and stops last: declare a service
// before whatever uses it. Kept apart from hostile.ts, which the soak script imports outside
// vitest.
import { afterAll, beforeAll } from 'vitest';
import type { Clock } from '../../src/clock.js';
import { startDovecot, type DovecotInstance, type DovecotOptions } from './dovecot.js';
import { proxyConfig } from './hostile.js';
import { startTestProxy, type TestProxy } from './proxy.js';
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from './redis.js';
import { startSmtpSink, type SmtpSink } from './smtp-sink.js';

/** For a test file: a real Dovecot and a proxy in front of it (proxyConfig), started before
 *  the file's tests and stopped after them. Read rig.dovecot / rig.proxy inside tests. */
export function dovecotWithProxy(): { dovecot: DovecotInstance; proxy: TestProxy } {
  const rig = {} as { dovecot: DovecotInstance; proxy: TestProxy };
  beforeAll(async () => {
    rig.dovecot = await startDovecot();
    rig.proxy = await startTestProxy(proxyConfig(rig.dovecot));
  });
  afterAll(async () => {
    await rig.proxy?.stop();
    await rig.dovecot?.stop();
  });
  return rig;
}

export interface RigOptions extends DovecotOptions {
  /** Start an SMTP sink (rig.sink) and have this Dovecot's submission service relay to it. */
  sink?: boolean;
}

/** Options a file knows only once an earlier hook has run (an endpoint's URL), or at once. */
type Deferred<T> = T | (() => T);
const resolve = <T>(d: Deferred<T>): T => (typeof d === 'function' ? (d as () => T)() : d);

export interface DovecotRig {
  /** Set once the file's hooks have run: read it inside tests and helpers, not at load time.
   *  The first (or only) Dovecot. */
  dovecot: DovecotInstance;
  /** Every Dovecot of the rig, in the order of its options. */
  dovecots: DovecotInstance[];
  /** The SMTP sink, with `sink: true` only. */
  sink: SmtpSink;
  /** Every proxy started with proxy(), stopped after the file's tests. */
  proxies: TestProxy[];
  proxy(config: Record<string, unknown>, opts?: { clock?: Clock }): Promise<TestProxy>;
}

/** For a test file (or a describe block): a real Dovecot started before its tests (with
 *  `opts`), and a proxy factory whose proxies are stopped after them, before Dovecot. */
export function dovecotForFile(opts: Deferred<RigOptions> = {}): DovecotRig {
  return dovecotsForFile(() => [resolve(opts)]);
}

/** As dovecotForFile, with several Dovecots started side by side (a backend pool, or a second
 *  server set up otherwise); their proxies stop before any of them. */
export function dovecotsForFile(opts: Deferred<RigOptions[]>): DovecotRig {
  const rig: DovecotRig = {
    dovecot: undefined as unknown as DovecotInstance,
    dovecots: [],
    sink: undefined as unknown as SmtpSink,
    proxies: [],
    async proxy(config, proxyOpts = {}) {
      const p = await startTestProxy(config, proxyOpts);
      rig.proxies.push(p);
      return p;
    },
  };
  beforeAll(async () => {
    const all = resolve(opts);
    if (all.some((o) => o.sink)) rig.sink = await startSmtpSink();
    const relay = () => ({ host: rig.sink.host, port: rig.sink.port });
    // allSettled: the ones that did start are stopped after, even when another one failed.
    const started = await Promise.allSettled(all.map(({ sink, ...o }) => startDovecot(sink ? { ...o, relay: relay() } : o)));
    rig.dovecots = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
    rig.dovecot = rig.dovecots[0]!;
  });
  afterAll(async () => {
    await Promise.all(rig.proxies.map((p) => p.stop()));
    await Promise.all(rig.dovecots.map((d) => d.stop()));
    await rig.sink?.stop();
  });
  return rig;
}

/** For a test file: a service `start` makes before its tests (as holder[name]), stopped
 *  after them. Declare it before whatever uses it, so that stops first. */
export function serviceForFile<K extends string, T extends { stop(): Promise<void> }>(name: K, start: () => Promise<T>, timeoutMs?: number): Record<K, T> {
  const holder = {} as Record<K, T>;
  beforeAll(async () => {
    holder[name] = await start();
  }, timeoutMs);
  afterAll(async () => {
    await holder[name]?.stop();
  });
  return holder;
}

/** For a test file: a real redis-server on a free port, started before its tests and stopped
 *  after them. Declare it before the rig whose proxies use it, so they stop first. */
export function redisForFile(): { redis: RedisServer } {
  return serviceForFile('redis', startRedis);
}

/** For a test file: a real Redis Cluster (`primaries` primaries, `replicas` replicas each),
 *  started before its tests and stopped after them; declare it before the rig whose proxies
 *  use it. */
export function redisClusterForFile(primaries = 3, replicas = 1): { cluster: RedisCluster } {
  return serviceForFile('cluster', () => startRedisCluster(primaries, { replicas }), 120_000);
}
