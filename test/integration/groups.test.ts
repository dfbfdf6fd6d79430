// Address groups with the real parts: a real Dovecot behind the proxy, an ASN database built
// by MaxMind's writer, DNS blocklists served by a real dnsmasq (and, for the list that never
// answers, a scripted silent responder behind it: a fault dnsmasq will not produce itself).
// Clients come through a PROXY-protocol listener, so they can be the public test networks a
// database maps (loopback addresses are in no ASN, by design).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDnsmasq, startScriptedDns, type Dnsmasq, type ScriptedDns } from '../helpers/dnsmasq.js';
import { writeMmdb } from '../helpers/mmdb.js';
import { proxiedImapLogin } from '../helpers/imap-login.js';
import { dovecotForFile } from '../helpers/rig.js';

const rig = dovecotForFile();
let dns: Dnsmasq;
let silent: ScriptedDns;
let asnDb: string;
let countryDb: string;

beforeAll(async () => {
  silent = await startScriptedDns('silent');
  dns = await startDnsmasq({
    zones: ['authbl.test'],
    records: { '5.100.51.198.authbl.test': '127.0.0.2', '6.100.51.198.authbl.test': '127.255.255.254' },
    ttl: 60,
    forward: { 'silent.test': silent.port },
  });
  const dir = mkdtempSync(join(tmpdir(), 'mg-geo-'));
  asnDb = writeMmdb(dir, 'asn', { '203.0.113.0/24': 64500, '192.0.2.0/24': 64511 });
  // 10.0.0.0/8 mapped too, to show a private address is never looked up (never "foreign").
  countryDb = writeMmdb(dir, 'country', { '198.51.100.0/24': 'NL', '203.0.113.0/24': 'DE', '10.0.0.0/8': 'US' });
});
afterAll(async () => {
  await dns?.stop();
  await silent?.stop();
});

const config = () => ({
  listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap', proxyProtocol: true }],
  backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap } },
  limits: {
    trustedProxies: ['127.0.0.0/8'],
    geoip: { asn: asnDb },
    dnsbl: { servers: [dns.server], timeout: '300ms' },
    groups: [
      { name: 'hosting', asn: [64500] },
      { name: 'authbl', dnsbl: { zone: 'authbl.test' } },
      { name: 'quiet-list', dnsbl: { zone: 'silent.test' } },
    ],
    rules: [
      { name: 'hosting-failures', key: 'ip', count: 'failures', limit: 2, window: '1h', block: '1d', only: ['hosting'] },
      { name: 'authbl-failures', key: 'ip', count: 'failures', limit: 1, window: '1h', block: '1d', only: ['authbl'] },
      { name: 'ip-failures', key: 'ip', count: 'failures', limit: 5, window: '10m', block: '30m' },
    ],
  },
});

/** One IMAP login of alice through the PROXY listener as `ip`. */
const login = (port: number, ip: string, pass: string) => proxiedImapLogin(port, ip, 'alice', pass);

describe('address groups in front of Dovecot', () => {
  it('refuses clients of an ASN with a stricter rule earlier than others, and logs the ASN', async () => {
    const proxy = await rig.proxy(config());
    const port = proxy.port('imap');
    expect([await login(port, '203.0.113.5', 'x1'), await login(port, '203.0.113.5', 'x2'), await login(port, '203.0.113.5', 'alice-pass')]).toEqual(['fail', 'fail', 'limited']);
    // Another AS: the general rule's five.
    const other = [];
    for (let i = 0; i < 5; i++) other.push(await login(port, '192.0.2.5', `y${i}`));
    expect(other).toEqual(['fail', 'fail', 'fail', 'fail', 'fail']);
    expect(await login(port, '192.0.2.5', 'alice-pass')).toBe('limited');
    // The block is noted: the third connection is turned away before it can log in.
    expect(proxy.log.lines.find((l) => l.event === 'session.refused' && l.ip === '203.0.113.5')).toMatchObject({ reason: 'hosting-failures' });
    const failed = proxy.log.lines.find((l) => l.event === 'auth.attempt' && l.outcome === 'fail' && l.ip === '203.0.113.5');
    expect(failed).toMatchObject({ asn: 64500, groups: ['hosting'] });
    expect(proxy.log.lines.find((l) => l.event === 'auth.attempt' && l.asn === 64511)).not.toHaveProperty('groups');
    expect(await proxy.metrics.registry.metrics()).toMatch(/mailgate_group_decisions_total\{group="hosting",result="allow"\} 2/);
  });

  it('an address a DNS blocklist lists meets the rule written for it; a refused query lists nobody', async () => {
    const proxy = await rig.proxy(config());
    const port = proxy.port('imap');
    expect([await login(port, '198.51.100.5', 'x1'), await login(port, '198.51.100.5', 'alice-pass')]).toEqual(['fail', 'limited']);
    // 127.255.255.254: the list refused the query; the address meets only the general rule.
    expect([await login(port, '198.51.100.6', 'x1'), await login(port, '198.51.100.6', 'alice-pass')]).toEqual(['fail', 'ok']);
    // Not listed at all.
    expect([await login(port, '198.51.100.7', 'x1'), await login(port, '198.51.100.7', 'alice-pass')]).toEqual(['fail', 'ok']);
    const metrics = await proxy.metrics.registry.metrics();
    expect(metrics).toMatch(/mailgate_dnsbl_queries_total\{zone="authbl.test",result="listed"\} 1/);
    expect(metrics).toMatch(/mailgate_dnsbl_queries_total\{zone="authbl.test",result="refused"\} 1/);
    expect(metrics).toMatch(/mailgate_dnsbl_queries_total\{zone="authbl.test",result="clean"\} 1/);
    // Each address was asked once although it logged in twice (the cache).
    expect(await dns.queries('5.100.51.198.authbl.test')).toBe(1);
  });

  it('a list that never answers fails no login: it times out, once logged, counted', async () => {
    const proxy = await rig.proxy(config());
    const port = proxy.port('imap');
    expect(await login(port, '192.0.2.80', 'alice-pass')).toBe('ok');
    expect(await login(port, '192.0.2.81', 'alice-pass')).toBe('ok');
    expect(silent.received).toBeGreaterThan(0);
    expect(silent.answered).toBe(0);
    expect(await proxy.metrics.registry.metrics()).toMatch(/mailgate_dnsbl_queries_total\{zone="silent.test",result="timeout"\} [1-9]/);
    expect(proxy.log.lines.filter((l) => l.event === 'dnsbl.down' && l.zone === 'silent.test')).toHaveLength(1);
  });

  it('a soft country rule: stricter limits abroad, none at home, and a private address is never abroad', async () => {
    const proxy = await rig.proxy({
      ...config(),
      limits: {
        trustedProxies: ['127.0.0.0/8'],
        geoip: { country: countryDb },
        groups: [{ name: 'home', country: ['NL'] }],
        rules: [{ name: 'abroad-failures', key: 'ip', count: 'failures', limit: 1, window: '1h', block: '2h', except: ['home'] }],
      },
    });
    const port = proxy.port('imap');
    // DE: one wrong password, then the right one waits.
    expect([await login(port, '203.0.113.40', 'x'), await login(port, '203.0.113.40', 'alice-pass')]).toEqual(['fail', 'limited']);
    // NL and a private address: no limit here.
    for (const ip of ['198.51.100.40', '10.9.9.9']) expect([await login(port, ip, 'x'), await login(port, ip, 'y'), await login(port, ip, 'alice-pass')]).toEqual(['fail', 'fail', 'ok']);
    const at = (ip: string) => proxy.log.lines.find((l) => l.event === 'auth.attempt' && l.ip === ip);
    expect([at('203.0.113.40')?.country, at('198.51.100.40')?.country, at('10.9.9.9')?.country]).toEqual(['DE', 'NL', undefined]);
  });

  it('the admin API lists the groups with their sources, and shows what it knows of an address', async () => {
    const proxy = await rig.proxy({ ...config(), admin: { listen: '127.0.0.1:0' } });
    const base = `http://127.0.0.1:${proxy.admin!.port}`;
    const view = (await (await fetch(`${base}/api/v1/groups`)).json()) as { groups: { name: string; source: string }[]; geoip: { key: string; type: string }[] };
    expect(view.groups.map((g) => [g.name, g.source])).toEqual([
      ['hosting', 'asn'],
      ['authbl', 'dnsbl'],
      ['quiet-list', 'dnsbl'],
    ]);
    expect(view.geoip).toMatchObject([{ key: 'asn', type: 'GeoLite2-ASN' }]);
    const limits = (await (await fetch(`${base}/api/v1/limits?ip=203.0.113.9`)).json()) as { client: unknown; limits: { rule: string }[] };
    expect(limits.client).toEqual({ groups: ['hosting'], asn: 64500 });
    expect(limits.limits.map((l) => l.rule)).toEqual(['hosting-failures', 'ip-failures']);
  });
});
