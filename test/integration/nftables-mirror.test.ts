// NftablesMirror against Debian's real nft (1.0.6) in a network namespace of the test's own,
// fed by hand (a stand-in for the ban feed's subscribe): the start's rewrite, a network over an
// address it covers and back, longer blocks, elements gone behind its back, two rules on one
// address, the periodic rewrite, and the README's drop rule dropping what it wrote. The proxy's
// end to end tests are in nftables.test.ts (and with workers, e2e/nftables-workers.test.ts).
import { describe, expect, it, vi } from 'vitest';
import { ManualClock, systemClock, type Clock } from '../../src/clock.js';
import type { Ban, BanDiff } from '../../src/integrations/ban-feed.js';
import { NftablesMirror } from '../../src/integrations/nftables.js';
import { captureLogger } from '../helpers/log-capture.js';
import { netnsForFile, type NftElement } from '../helpers/netns.js';

const net = netnsForFile();
let tables = 0;

function ban(cidr: string, seconds: number, rule = 'ip-failures', now = Date.now()): Ban {
  return { key: `r:${rule}:ip:${cidr}`, rule, kind: 'ip', cidr, sinceMs: now, untilMs: now + seconds * 1000, firewall: true };
}

/** A mirror on a table of its own, and a feed driven by hand. */
async function mirror(nft = net.ns.nft, clock: Clock = systemClock) {
  const table = `t${++tables}`;
  const { logger, captured } = captureLogger();
  const m = new NftablesMirror({ family: 'inet', table, set4: 'blocked4', set6: 'blocked6', nft }, { log: logger, clock });
  let listener: ((diff: BanDiff, all: readonly Ban[]) => void | Promise<void>) | undefined;
  m.attach({ subscribe: (fn) => void (listener = fn) });
  await m.start();
  const none: BanDiff = { added: [], removed: [], extended: [] };
  return {
    table,
    log: captured,
    m,
    /** One read of the feed: `all` the running bans, `changed` whether it differs. */
    read: (all: Ban[], changed = true) => listener!(changed ? { ...none, added: all } : none, all),
    set: (v6 = false) => net.ns.elements('inet', table, v6 ? 'blocked6' : 'blocked4'),
  };
}

const addrs = (els: NftElement[]) => els.map((e) => e.addr).sort();
/** Until `check` passes: the mirror writes off the feed's call. */
const eventually = (check: () => Promise<void>) => vi.waitFor(check, { timeout: 10_000, interval: 50 });

describe('nftables mirror (real nft in a test namespace)', () => {
  it('declares the table and sets at start, and the first read rewrites them whole (a stale element goes)', async () => {
    const t = await mirror();
    expect(await t.set()).toEqual([]);
    await net.ns.batch(`add element inet ${t.table} blocked4 { 203.0.113.66 timeout 1h }`);
    await t.read([ban('198.51.100.7', 600), ban('2001:db8:5::/64', 300)], false);
    await eventually(async () => expect(addrs(await t.set())).toEqual(['198.51.100.7']));
    const [v4] = await t.set();
    expect(v4!.timeoutS).toBeGreaterThanOrEqual(598);
    expect(v4!.timeoutS).toBeLessThanOrEqual(600);
    expect(await t.set(true)).toMatchObject([{ addr: '2001:db8:5::/64', timeoutS: expect.any(Number) }]);
    await t.m.stop();
  });

  it('an address inside a blocked network is left to the network, and comes back when the network goes', async () => {
    const t = await mirror();
    const host = ban('192.0.2.5', 900);
    await t.read([host]);
    await eventually(async () => expect(addrs(await t.set())).toEqual(['192.0.2.5']));
    // The network arrives over the address it covers: nft 1.0.6 cannot delete one and add the
    // other in one batch, so the mirror rewrites the set (one transaction, nobody slips out).
    const network = ban('192.0.2.0/24', 120, 'net-failures');
    await t.read([host, network]);
    await eventually(async () => expect(addrs(await t.set())).toEqual(['192.0.2.0/24']));
    await t.read([host]);
    await eventually(async () => expect(addrs(await t.set())).toEqual(['192.0.2.5']));
    expect((await t.set())[0]!.timeoutS).toBeGreaterThan(800);
    // Known in advance: no batch failed on the way.
    expect(t.log.lines.filter((l) => l.event === 'integrations.resync' || l.event === 'integrations.error')).toEqual([]);
    await t.m.stop();
  });

  it('a longer block rewrites the timeout; a removed element already gone (timed out, deleted by hand) fails nothing', async () => {
    const t = await mirror();
    await t.read([ban('198.51.100.20', 60), ban('198.51.100.21', 60), ban('198.51.100.22', 60)]);
    await eventually(async () => expect(await t.set()).toHaveLength(3));
    await net.ns.batch(`delete element inet ${t.table} blocked4 { 198.51.100.21 }`);
    await t.read([ban('198.51.100.20', 3600), ban('198.51.100.22', 60)]);
    await eventually(async () => expect((await t.set()).find((e) => e.addr === '198.51.100.20')!.timeoutS).toBeGreaterThan(3500));
    expect(addrs(await t.set())).toEqual(['198.51.100.20', '198.51.100.22']);
    // Neither needed a rewrite: the delete of the missing element went through.
    expect(t.log.lines.filter((l) => l.event === 'integrations.resync' || l.event === 'integrations.error')).toEqual([]);
    await t.m.stop();
  });

  it('a change nft refuses (the set changed behind its back) becomes a rewrite of the sets', async () => {
    const t = await mirror();
    await t.read([ban('198.51.100.40', 600)]);
    await eventually(async () => expect(addrs(await t.set())).toEqual(['198.51.100.40']));
    await net.ns.batch(`add element inet ${t.table} blocked4 { 192.0.2.0/24 timeout 1h }`);
    // 192.0.2.77 overlaps the network added by hand: "interval overlaps with an existing one".
    await t.read([ban('198.51.100.40', 600), ban('192.0.2.77', 600)]);
    await eventually(async () => expect(addrs(await t.set())).toEqual(['192.0.2.77', '198.51.100.40']));
    expect(t.log.lines.filter((l) => l.event === 'integrations.resync')).toMatchObject([{ source: 'nftables', error: expect.stringMatching(/overlaps/) }]);
    expect(t.log.lines.filter((l) => l.event === 'integrations.error')).toEqual([]);
    await t.m.stop();
  });

  it('an nft that cannot be run (sudo -n without its sudoers line, a wrong path): one error for the outage, nothing thrown', async () => {
    const t = await mirror('/nonexistent/nft --flag');
    for (let i = 0; i < 3; i++) await t.read([ban('198.51.100.50', 600)]);
    await t.m.stop();
    expect(t.log.lines.filter((l) => l.event === 'integrations.error')).toMatchObject([{ source: 'nftables', error: expect.stringMatching(/^\/nonexistent\/nft --flag: spawn \/nonexistent\/nft ENOENT/) }]);
  });

  it('rewrites the sets whole every 5 minutes: a ruleset reloaded by hand empties them behind its back', async () => {
    const clock = new ManualClock(Date.now());
    const t = await mirror(net.ns.nft, clock);
    const b = ban('198.51.100.60', 3600, 'ip-failures', clock.now());
    await t.read([b]);
    await eventually(async () => expect(addrs(await t.set())).toEqual(['198.51.100.60']));
    await net.ns.batch(`flush set inet ${t.table} blocked4`);
    await t.read([b], false);
    clock.advance(299_000);
    await t.read([b], false);
    await t.m.idle();
    expect(await t.set()).toEqual([]);
    clock.advance(1_000);
    await t.read([b], false);
    await t.m.idle();
    expect(await t.set()).toMatchObject([{ addr: '198.51.100.60', timeoutS: 3300 }]);
    await t.m.stop();
  });

  it("the README's drop rule drops what the mirror wrote: a blocked address's SYN is dropped, another's refused", async () => {
    const t = await mirror();
    await t.read([ban('127.0.0.9', 600)]);
    await eventually(async () => expect(addrs(await t.set())).toEqual(['127.0.0.9']));
    await net.ns.exec(['ip', 'link', 'set', 'lo', 'up']);
    await net.ns.exec(['nft', 'add', 'chain', 'inet', t.table, 'input', '{ type filter hook input priority -10; }']);
    await net.ns.exec(['nft', 'add', 'rule', 'inet', t.table, 'input', 'tcp', 'dport', '{ 25, 110, 143, 465, 587, 993, 995 }', 'ip', 'saddr', '@blocked4', 'counter', 'drop']);
    // Nothing listens on 143 in the namespace: an address not blocked gets a reset at once.
    const client = (from: string) => [process.execPath, '-e', `require('net').connect({host: '127.0.0.1', port: 143, localAddress: '${from}'}).on('error', (e) => console.log(e.code))`];
    const dropped = async () => {
      const chain = JSON.parse(await net.ns.exec(['nft', '-j', 'list', 'chain', 'inet', t.table, 'input'])) as { nftables: { rule?: { expr: { counter?: { packets: number } }[] } }[] };
      return chain.nftables.flatMap((x) => x.rule?.expr ?? []).find((e) => e.counter)!.counter!.packets;
    };
    expect((await net.ns.exec(client('127.0.0.10'))).trim()).toBe('ECONNREFUSED');
    expect(await dropped()).toBe(0);
    const blocked = net.ns.start(client('127.0.0.9'));
    try {
      await eventually(async () => expect(await dropped()).toBeGreaterThanOrEqual(1));
    } finally {
      blocked.kill();
    }
    await t.m.stop();
  });

  it('one element per address: two rules on it, the later end; one lifted leaves the other', async () => {
    const t = await mirror();
    const short = ban('198.51.100.30', 60, 'ip-failures');
    const long = ban('198.51.100.30', 7200, 'ip-daily');
    await t.read([short, long]);
    await eventually(async () => expect(addrs(await t.set())).toEqual(['198.51.100.30']));
    expect((await t.set())[0]!.timeoutS).toBeGreaterThan(7000);
    await t.read([short]);
    await eventually(async () => expect((await t.set())[0]!.timeoutS).toBeLessThanOrEqual(60));
    // IPv4-mapped goes to the IPv4 set; a ban no firewall may drop is never written.
    await t.read([short, ban('::ffff:198.51.100.31', 60), { ...ban('198.51.100.32', 60), firewall: false }]);
    await eventually(async () => expect(addrs(await t.set())).toEqual(['198.51.100.30', '198.51.100.31']));
    expect(await t.set(true)).toEqual([]);
    await t.m.stop();
  });
});
