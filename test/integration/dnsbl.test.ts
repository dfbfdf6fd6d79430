// DNS blocklist lookups (groups/dnsbl.ts) against a real DNS server: dnsmasq serving test zones
// on a loopback port, with scripted upstreams for what dnsmasq will not do by itself (answer
// late, never answer, SERVFAIL). Cache expiry runs on a ManualClock; no test waits on time.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import type { DnsblConfig, DnsblSource } from '../../src/config/groups-schema.js';
import { CLEAN_TTL_MS, Dnsbl, FAILURE_BACKOFF_MS, MIN_TTL_MS, reverseName } from '../../src/groups/dnsbl.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { startDnsmasq, startScriptedDns, type Dnsmasq, type ScriptedDns } from '../helpers/dnsmasq.js';
import { captureLogger } from '../helpers/log-capture.js';
import { until } from '../helpers/until.js';

const ZONE = 'bl.test';
const OTHER = 'other.test';
/** TTL of dnsmasq's answers, seconds. */
const TTL_S = 60;
/** Timeout for zones dnsmasq answers itself: generous, so a loaded machine cannot turn an
 *  answer into a timeout. */
const ANSWERED_MS = 2_000;
/** Timeout for the scripted upstreams; the slow one answers after twice this. */
const TIMEOUT_MS = 300;
const V6 = '2001:db8::2';

let dns: Dnsmasq;
const upstream: Record<'slow' | 'silent' | 'servfail', ScriptedDns> = {} as never;
const rigs: Dnsbl[] = [];

beforeAll(async () => {
  upstream.slow = await startScriptedDns({ answer: '127.0.0.2', ttl: TTL_S, delayMs: 2 * TIMEOUT_MS });
  upstream.silent = await startScriptedDns('silent');
  upstream.servfail = await startScriptedDns('servfail');
  const at = (ip: string, zone = ZONE) => reverseName(ip, zone)!;
  dns = await startDnsmasq({
    zones: [ZONE, OTHER],
    ttl: TTL_S,
    records: {
      [at('127.0.0.2')]: '127.0.0.2',
      [at('127.0.0.3')]: '127.255.255.254',
      [at('127.0.0.4')]: '127.0.0.4',
      [at('127.0.0.5')]: '127.0.0.5',
      [at('127.0.0.6')]: '127.255.255.255',
      [at('127.0.0.8')]: '198.51.100.8',
      [at(V6)]: '127.0.0.2',
      [at('127.0.0.2', OTHER)]: '127.0.0.2',
    },
    forward: Object.fromEntries(Object.entries(upstream).map(([name, s]) => [`${name}.${ZONE}`, s.port])),
  });
});

afterAll(async () => {
  await dns?.stop();
  for (const s of Object.values(upstream)) await s.stop();
});

afterEach(() => {
  for (const d of rigs.splice(0)) d.close();
});

function rig(cfg: Partial<DnsblConfig> = {}) {
  const clock = new ManualClock();
  const metrics = createMetrics({ defaultMetrics: false });
  const { logger, captured } = captureLogger('info');
  const dnsbl = new Dnsbl({ servers: [dns.server], timeout: ANSWERED_MS, cacheSize: 1000, ...cfg }, { log: logger, metrics, clock });
  rigs.push(dnsbl);
  /** Queries counted by the metric for a zone, of one result or all. */
  const counted = async (zone: string, result?: string) =>
    (await metrics.dnsblQueries.get()).values.filter((v) => v.labels.zone === zone && (result === undefined || v.labels.result === result)).reduce((s, v) => s + v.value, 0);
  const events = (event: string) => captured.lines.filter((l) => l.event === event);
  return { clock, dnsbl, counted, events, captured };
}

const one = (zone: string, weight = 1, answers?: string[]): DnsblSource => ({ lists: [{ zone, weight, ...(answers && { answers }) }], threshold: weight });
/** A failed answer for ip stays until FAILURE_BACKOFF_MS has passed, then ip is asked again
 *  (and fails the same way). */
async function expectBackoff(r: ReturnType<typeof rig>, ip: string, zone: string, result: string) {
  const before = await r.counted(zone, result);
  r.clock.advance(FAILURE_BACKOFF_MS - 1000);
  expect(await r.dnsbl.score(ip, one(zone))).toBe(0);
  expect(await r.counted(zone, result)).toBe(before);
  r.clock.advance(2000);
  expect(await r.dnsbl.score(ip, one(zone))).toBe(0);
  expect(await r.counted(zone, result)).toBe(before + 1);
}

/** dnsmasq's queries for ip in zone so far. */
const asked = (ip: string, zone = ZONE) => dns.queries(reverseName(ip, zone)!);

describe('answers from a real DNS server', () => {
  it('counts the weight of a list that lists the address (127.0.0.2), nothing for NXDOMAIN', async () => {
    const { dnsbl, counted } = rig();
    expect(await dnsbl.score('127.0.0.2', one(ZONE, 3))).toBe(3);
    expect(await dnsbl.score('127.0.0.9', one(ZONE, 3))).toBe(0);
    expect(await counted(ZONE, 'listed')).toBe(1);
    expect(await counted(ZONE, 'clean')).toBe(1);
    expect(await asked('127.0.0.9')).toBeGreaterThanOrEqual(1);
  });

  it('takes an answer outside 127.0.0.0/8 (NXDOMAIN redirection) for clean', async () => {
    const { dnsbl, counted } = rig();
    expect(await dnsbl.score('127.0.0.8', one(ZONE))).toBe(0);
    expect(await counted(ZONE, 'clean')).toBe(1);
  });

  it('asks for IPv6 by nibbles, and for an IPv4-mapped address as IPv4, sharing the entry', async () => {
    const { dnsbl, counted } = rig();
    const before = await asked(V6);
    expect(await dnsbl.score(V6, one(ZONE))).toBe(1);
    expect(await dnsbl.score('2001:DB8:0::2', one(ZONE))).toBe(1);
    expect(await asked(V6)).toBe(before + 1);
    expect(await dnsbl.score('127.0.0.2', one(ZONE))).toBe(1);
    expect(await dnsbl.score('::ffff:127.0.0.2', one(ZONE))).toBe(1);
    expect(await counted(ZONE)).toBe(2);
  });

  it('takes 127.255.255.x for a refused query: not listed, counted, dnsbl.down once with no address', async () => {
    const r = rig();
    const { dnsbl, counted, events, captured } = r;
    expect(await dnsbl.score('127.0.0.3', one(ZONE))).toBe(0);
    expect(await dnsbl.score('127.0.0.6', one(ZONE))).toBe(0);
    expect(await counted(ZONE, 'refused')).toBe(2);
    expect(events('dnsbl.down')).toEqual([expect.objectContaining({ zone: ZONE, reason: 'refused' })]);
    expect(Object.keys(events('dnsbl.down')[0]!).sort()).toEqual(['event', 'level', 'msg', 'name', 'reason', 'time', 'zone']);
    expect(captured.raw.join('\n')).not.toMatch(/127\.0\.0\.[36]|3\.0\.0\.127/);
    // A refusal is kept for the back-off only, not for the answer's TTL.
    await expectBackoff(r, '127.0.0.3', ZONE, 'refused');
    expect(await dnsbl.score('127.0.0.9', one(ZONE))).toBe(0);
    expect(await dnsbl.score('127.0.0.10', one(ZONE))).toBe(0);
    expect(events('dnsbl.up')).toEqual([expect.objectContaining({ zone: ZONE })]);
    expect(events('dnsbl.down')).toHaveLength(1);
  });

  it('with answers, lists only for those; the cached answer serves lists with other answers', async () => {
    const { dnsbl, counted } = rig();
    const only4 = one(ZONE, 1, ['127.0.0.4']);
    expect(await dnsbl.score('127.0.0.4', only4)).toBe(1);
    expect(await dnsbl.score('127.0.0.5', only4)).toBe(0);
    expect(await dnsbl.score('127.0.0.2', only4)).toBe(0);
    expect(await dnsbl.score('127.0.0.5', one(ZONE))).toBe(1);
    expect(await counted(ZONE)).toBe(3);
  });

  it('adds the weights of the lists that list the address (0.7 + 0.1 reaches 0.8)', async () => {
    const { dnsbl } = rig();
    const both: DnsblSource = { lists: [{ zone: ZONE, weight: 0.7 }, { zone: OTHER, weight: 0.1 }], threshold: 0.8 };
    expect(await dnsbl.score('127.0.0.2', both)).toBe(0.8);
    expect(await dnsbl.score('127.0.0.4', both)).toBe(0.7);
    expect(await dnsbl.score('127.0.0.9', both)).toBe(0);
  });

  it('answers nothing but 0 for what is not an address, and asks nobody', async () => {
    const { dnsbl, counted } = rig();
    for (const bad of ['', 'mail.example', '127.1', 'fe80::1%eth0']) {
      dnsbl.prefetch(bad, one(ZONE));
      expect(await dnsbl.score(bad, one(ZONE)), bad).toBe(0);
    }
    expect(await counted(ZONE)).toBe(0);
  });
});

describe('cache', () => {
  it('answers again from the cache, with the same resolved promise, without asking dnsmasq', async () => {
    const { dnsbl, counted } = rig();
    const before = await asked('127.0.0.4');
    expect(await dnsbl.score('127.0.0.4', one(ZONE, 2))).toBe(2);
    const second = dnsbl.score('127.0.0.4', one(ZONE, 2));
    expect(dnsbl.score('127.0.0.4', one(ZONE, 2))).toBe(second);
    expect(await second).toBe(2);
    expect(await asked('127.0.0.4')).toBe(before + 1);
    expect(await counted(ZONE)).toBe(1);
  });

  it('keeps a listing for its TTL and a clean answer for CLEAN_TTL_MS, then asks again', async () => {
    const { dnsbl, clock } = rig();
    const [listed, clean] = [await asked('127.0.0.2', OTHER), await asked('127.0.0.7', OTHER)];
    await dnsbl.score('127.0.0.2', one(OTHER));
    await dnsbl.score('127.0.0.7', one(OTHER));
    clock.advance(TTL_S * 1000 - 1000);
    expect(await dnsbl.score('127.0.0.2', one(OTHER))).toBe(1);
    expect(await asked('127.0.0.2', OTHER)).toBe(listed + 1);
    clock.advance(2000);
    expect(await dnsbl.score('127.0.0.2', one(OTHER))).toBe(1);
    expect(await asked('127.0.0.2', OTHER)).toBe(listed + 2);
    clock.advance(CLEAN_TTL_MS - TTL_S * 1000 - 2000);
    expect(await dnsbl.score('127.0.0.7', one(OTHER))).toBe(0);
    expect(await asked('127.0.0.7', OTHER)).toBe(clean + 1);
    clock.advance(2000);
    expect(await dnsbl.score('127.0.0.7', one(OTHER))).toBe(0);
    expect(await asked('127.0.0.7', OTHER)).toBe(clean + 2);
  });

  it('holds at most cacheSize entries, dropping the oldest', async () => {
    const { dnsbl } = rig({ cacheSize: 2 });
    const ips = ['127.0.1.1', '127.0.1.2', '127.0.1.3'];
    const before = await Promise.all(ips.map((ip) => asked(ip)));
    for (const ip of ips) await dnsbl.score(ip, one(ZONE));
    await dnsbl.score('127.0.1.3', one(ZONE));
    await dnsbl.score('127.0.1.1', one(ZONE));
    expect(await Promise.all(ips.map((ip) => asked(ip)))).toEqual([before[0]! + 2, before[1]! + 1, before[2]! + 1]);
  });

  it('shares one query among concurrent lookups of an address', async () => {
    const { dnsbl, counted } = rig();
    const before = await asked('127.0.0.5');
    dnsbl.prefetch('127.0.0.5', one(ZONE));
    const scores = await Promise.all([1, 2, 3, 4, 5].map(() => dnsbl.score('127.0.0.5', one(ZONE, 2))));
    expect(scores).toEqual([2, 2, 2, 2, 2]);
    expect(await asked('127.0.0.5')).toBe(before + 1);
    expect(await counted(ZONE)).toBe(1);
  });
});

describe('a list that fails', () => {
  it.each([
    ['slow', 'answers after twice the timeout'],
    ['silent', 'never answers'],
  ] as const)('%s (%s): 0 at the timeout, dnsbl.down once, dnsbl.up once it answers again', async (name, _what) => {
    const server = upstream[name];
    const zone = `${name}.${ZONE}`;
    const { dnsbl, clock, counted, events } = rig({ timeout: TIMEOUT_MS });
    const [received, answered] = [server.received, server.answered];
    const scores = await Promise.all([dnsbl.score('127.0.0.2', one(zone)), dnsbl.score('127.0.0.2', one(zone)), dnsbl.score('127.0.0.3', one(zone))]);
    expect(scores).toEqual([0, 0, 0]);
    // Settled before the slow upstream sent its answers (it sends them after 2 × the timeout).
    expect(server.received - received).toBe(2);
    expect(server.answered - answered).toBe(0);
    expect(await counted(zone, 'timeout')).toBe(2);
    expect(events('dnsbl.down')).toEqual([expect.objectContaining({ zone, reason: 'timeout' })]);
    if (name === 'slow') await until(() => server.answered - answered === 2, 'the late answers');
    // Within the back-off a failed address is not asked again.
    expect(await dnsbl.score('127.0.0.2', one(zone))).toBe(0);
    expect(await counted(zone)).toBe(2);
    // Once the upstream answers, the list counts again. New names: dnsmasq joins a repeated
    // question to its forward still unanswered instead of asking the upstream again.
    const script = server.script;
    server.script = { answer: '127.0.0.2', ttl: 0, delayMs: 0 };
    try {
      clock.advance(FAILURE_BACKOFF_MS + 1);
      expect(await dnsbl.score('127.0.0.4', one(zone))).toBe(1);
      expect(await dnsbl.score('127.0.0.5', one(zone))).toBe(1);
    } finally {
      server.script = script;
    }
    expect(events('dnsbl.up')).toEqual([expect.objectContaining({ zone })]);
    expect(events('dnsbl.down')).toHaveLength(1);
    // A TTL of 0 is kept MIN_TTL_MS all the same (the upstream is back to its fault by now).
    clock.advance(MIN_TTL_MS - 1000);
    expect(await dnsbl.score('127.0.0.4', one(zone))).toBe(1);
    expect(await counted(zone, 'listed')).toBe(2);
  });

  it('answers at its own timeout while c-ares would go on to the next server', async () => {
    const [first, second] = [await startScriptedDns('silent'), await startScriptedDns('silent')];
    try {
      const { dnsbl, counted } = rig({ timeout: TIMEOUT_MS, servers: [`127.0.0.1:${first.port}`, `127.0.0.1:${second.port}`] });
      expect(await dnsbl.score('127.0.0.2', one(ZONE))).toBe(0);
      expect([first.received, second.received]).toEqual([1, 0]);
      expect(await counted(ZONE, 'timeout')).toBe(1);
      // c-ares (tries: 1) does ask the second server once the first timed out.
      await until(() => second.received === 1, 'c-ares to ask the second server');
    } finally {
      await first.stop();
      await second.stop();
    }
  });

  it('SERVFAIL: 0, counted as an error, dnsbl.down with the reason, asked again after the back-off', async () => {
    const zone = `servfail.${ZONE}`;
    const r = rig();
    const { dnsbl, counted, events } = r;
    expect(await dnsbl.score('127.0.0.2', one(zone))).toBe(0);
    expect(await counted(zone, 'error')).toBe(1);
    expect(events('dnsbl.down')).toEqual([expect.objectContaining({ zone, reason: 'ESERVFAIL' })]);
    await expectBackoff(r, '127.0.0.2', zone, 'error');
    expect(events('dnsbl.down')).toHaveLength(1);
  });

  it('no server on the port (ECONNREFUSED): 0, counted as an error', async () => {
    const gone = await startScriptedDns('silent');
    await gone.stop();
    const { dnsbl, counted, events } = rig({ servers: [`127.0.0.1:${gone.port}`] });
    expect(await dnsbl.score('127.0.0.2', one(ZONE))).toBe(0);
    expect(await counted(ZONE, 'error')).toBe(1);
    expect(events('dnsbl.down')).toEqual([expect.objectContaining({ zone: ZONE, reason: 'ECONNREFUSED' })]);
  });

  it('close() settles the lookups under way at 0 and answers 0 after, counting nothing', async () => {
    const zone = `silent.${ZONE}`;
    const { dnsbl, counted, events } = rig({ timeout: 60_000 });
    const received = upstream.silent.received;
    const pending = dnsbl.score('127.0.0.9', one(zone));
    await until(() => upstream.silent.received > received, 'the query to reach the silent upstream');
    dnsbl.close();
    expect(await pending).toBe(0);
    expect(await dnsbl.score('127.0.0.2', one(ZONE))).toBe(0);
    expect(await counted(zone)).toBe(0);
    expect(events('dnsbl.down')).toHaveLength(0);
  });
});
