// Blocks mirrored into nftables sets, end to end: a real Dovecot behind the proxy, Debian's
// real nft (1.0.6) in a network namespace the test makes (never the host's ruleset), the ban
// feed reading every 100 ms. Each test has a table of its own. Clients are distinct loopback
// addresses (127.x.y.z); IPv6 by the admin API's block by hand.
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { imapLogin } from '../helpers/imap-login.js';
import { netnsForFile } from '../helpers/netns.js';
import type { TestProxy } from '../helpers/proxy.js';
import { dovecotForFile, redisForFile } from '../helpers/rig.js';

const TOKEN = 'nftables-admin-token-0123';
const net = netnsForFile();
const redisHolder = redisForFile();
const rig = dovecotForFile();
let tables = 0;

const IP_RULE = { name: 'ip-failures', key: 'ip', count: 'failures', limit: 2, window: '10m', block: '30m' };

function config(table: string, opts: { nft?: string; limits?: Record<string, unknown>; store?: Record<string, unknown> } = {}) {
  return {
    listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap' }],
    backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap } },
    admin: { listen: '127.0.0.1:0', token: TOKEN },
    firewall: { nftables: { table, nft: opts.nft ?? net.ns.nft }, interval: '100ms' },
    limits: { rules: [IP_RULE], ...opts.limits },
    ...(opts.store ? { store: opts.store } : {}),
  };
}

const api = (p: TestProxy, path: string, method = 'GET') => fetch(`http://127.0.0.1:${p.admin!.port}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` } });
const set = (table: string, v6 = false) => net.ns.elements('inet', table, v6 ? 'blocked6' : 'blocked4');
const addrs = async (table: string, v6 = false) => (await set(table, v6)).map((e) => e.addr).sort();
/** Until `check` passes (the feed reads every 100 ms; no fixed sleep). */
const eventually = (check: () => Promise<void>) => vi.waitFor(check, { timeout: 10_000, interval: 50 });

/** Two wrong passwords from `ip`, then the rule's block turns it away. */
async function getBlocked(p: TestProxy, ip: string): Promise<void> {
  expect([await imapLogin(p, ip, 'alice', 'x1'), await imapLogin(p, ip, 'alice', 'x2'), await imapLogin(p, ip, 'alice', 'alice-pass')]).toEqual(['fail', 'fail', 'limited']);
}

describe('nftables: blocks mirrored into a set (real nft in a test namespace)', () => {
  it("an ip rule's block shows up with its remaining time; the admin API's unblock removes it", async () => {
    const table = `e${++tables}`;
    const p = await rig.proxy(config(table));
    await getBlocked(p, '127.0.90.1');
    await eventually(async () => expect(await addrs(table)).toEqual(['127.0.90.1']));
    const [el] = await set(table);
    expect(el!.timeoutS).toBeGreaterThan(1790);
    expect(el!.timeoutS).toBeLessThanOrEqual(1800);
    expect((await api(p, '/api/v1/blocks/127.0.90.1', 'DELETE')).status).toBe(200);
    await eventually(async () => expect(await addrs(table)).toEqual([]));
    expect(await imapLogin(p, '127.0.90.1', 'alice', 'alice-pass')).toBe('ok');
    expect(p.log.lines.filter((l) => l.event === 'integrations.error')).toEqual([]);
  });

  it("a prefix rule's block is the network as an interval element; an IPv6 block goes to the IPv6 set", async () => {
    const table = `e${++tables}`;
    const net24 = { name: 'net-failures', key: 'ip', prefix: { ipv4: 24 }, count: 'failures', limit: 3, window: '10m', block: '1h' };
    const p = await rig.proxy(config(table, { limits: { rules: [IP_RULE, net24] } }));
    // One failure each from three addresses: no address's own rule, the /24's.
    for (const ip of ['127.0.91.1', '127.0.91.2', '127.0.91.3']) expect(await imapLogin(p, ip, 'alice', 'wrong')).toBe('fail');
    expect(await imapLogin(p, '127.0.91.4', 'alice', 'alice-pass')).toBe('limited');
    await eventually(async () => expect(await addrs(table)).toEqual(['127.0.91.0/24']));
    expect((await set(table))[0]!.timeoutS).toBeGreaterThan(3590);
    // By hand, an IPv6 client: its /64 (limits.ipv6Prefix), in the IPv6 set.
    expect((await api(p, '/api/v1/blocks?ip=2001:db8:8::9&for=10m&rule=ip-failures', 'POST')).status).toBe(201);
    await eventually(async () => expect(await addrs(table, true)).toEqual(['2001:db8:8::/64']));
    expect((await set(table, true))[0]!.timeoutS).toBeGreaterThan(590);
    expect(await addrs(table)).toEqual(['127.0.91.0/24']);
  });

  it('an address someone logged in from lately is not mirrored (known-good pairs on): the login decides per user there', async () => {
    const table = `e${++tables}`;
    const p = await rig.proxy(config(table, { limits: { rules: [IP_RULE], knownGood: { ttl: '1d' } } }));
    expect(await imapLogin(p, '127.0.92.1', 'alice', 'alice-pass')).toBe('ok');
    // The office NAT: a colleague's typos block the address (for everyone but known pairs)...
    expect([await imapLogin(p, '127.0.92.1', 'bob', 'x1'), await imapLogin(p, '127.0.92.1', 'bob', 'x2')]).toEqual(['fail', 'fail']);
    // ...and an attacker elsewhere, in the same read of the feed.
    await getBlocked(p, '127.0.93.1');
    const blocks = (await (await api(p, '/api/v1/blocks')).json()) as { blocks: { ip?: string }[] };
    expect(blocks.blocks.map((b) => b.ip).sort()).toEqual(['127.0.92.1', '127.0.93.1']);
    await eventually(async () => expect(await addrs(table)).toContain('127.0.93.1'));
    expect(await addrs(table)).toEqual(['127.0.93.1']);
    // Alice still gets in from there: a firewall drop would have shut her out.
    expect(await imapLogin(p, '127.0.92.1', 'alice', 'alice-pass')).toBe('ok');
  });

  it('nft failing: one integrations.error for the outage, no login affected, every read retries; then recovered and rewritten', async () => {
    const table = `e${++tables}`;
    const dir = mkdtempSync(join(tmpdir(), 'mg-nft-'));
    const wrapper = join(dir, 'nft');
    // Counts its runs and execs whatever the target file names: first a command that is not there.
    writeFileSync(wrapper, '#!/bin/sh\necho run >> "$0.runs"\nexec $(cat "$0.target") "$@"\n');
    chmodSync(wrapper, 0o755);
    writeFileSync(`${wrapper}.target`, '/nonexistent/nft');
    const runs = () => readFileSync(`${wrapper}.runs`, 'utf8').split('\n').length - 1;
    const p = await rig.proxy(config(table, { nft: wrapper }));
    await getBlocked(p, '127.0.94.1');
    expect(await imapLogin(p, '127.0.94.2', 'alice', 'alice-pass')).toBe('ok');
    await eventually(async () => expect(runs()).toBeGreaterThanOrEqual(5));
    const errors = p.log.lines.filter((l) => l.event === 'integrations.error');
    expect(errors).toMatchObject([{ source: 'nftables', error: expect.stringMatching(/nonexistent\/nft: not found/) }]);
    expect(await addrs(table)).toEqual([]);
    // nft works again: the next read rewrites the sets whole.
    writeFileSync(`${wrapper}.target`, net.ns.nft);
    await eventually(async () => expect(await addrs(table)).toEqual(['127.0.94.1']));
    await eventually(async () => expect(p.log.lines.filter((l) => l.event === 'integrations.recovered' && l.source === 'nftables')).toHaveLength(1));
    expect(p.log.lines.filter((l) => l.event === 'integrations.error')).toHaveLength(1);
  });

  it('a restart rewrites the set: a stale element goes, a block still running (Redis) is back with its remaining time', async () => {
    const table = `e${++tables}`;
    const store = { type: 'redis', redis: { url: redisHolder.redis.url, keyPrefix: `nft${tables}:` } };
    const limits = { rules: [IP_RULE], keySecret: 'nftables-test-key-secret-0123456789' };
    const first = await rig.proxy(config(table, { store, limits }));
    await getBlocked(first, '127.0.95.1');
    await eventually(async () => expect(await addrs(table)).toEqual(['127.0.95.1']));
    await first.stop();
    // While mailgate is down: an element nobody wants is left in the set (a block lifted
    // meanwhile, another program's).
    await net.ns.batch(`add element inet ${table} blocked4 { 198.51.100.99 timeout 1h }`);
    const second = await rig.proxy(config(table, { store, limits }));
    await eventually(async () => expect(await addrs(table)).toEqual(['127.0.95.1']));
    expect(second.log.lines.filter((l) => l.event === 'integrations.error')).toEqual([]);
    const [el] = await set(table);
    expect(el!.timeoutS).toBeGreaterThan(1700);
    expect(el!.timeoutS).toBeLessThanOrEqual(1800);
  });
});
