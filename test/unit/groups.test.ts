// Address groups without sockets: the address set (ranges merged, both families, mapped
// IPv4), the list-file formats operators download, and the rules' only / except / together
// on the memory store.
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import { AddressSet, parseListFile } from '../../src/groups/address-set.js';
import { Groups } from '../../src/groups/groups.js';
import { KeyBuilder } from '../../src/limits/keys.js';
import { Policy } from '../../src/limits/policy.js';
import { createLogger } from '../../src/logging/logger.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { until } from '../helpers/until.js';

describe('address sets', () => {
  it('matches addresses and networks of both families, merged, and mapped IPv4 as IPv4', () => {
    const s = new AddressSet(['192.0.2.0/25', '192.0.2.128/25', '198.51.100.7', '2001:db8::/48', '::ffff:203.0.113.0/120']);
    expect(['192.0.2.0', '192.0.2.255', '198.51.100.7', '2001:db8:0:ffff::1', '203.0.113.9', '::ffff:192.0.2.3'].map((a) => s.has(a))).toEqual([true, true, true, true, true, true]);
    expect(['192.0.3.0', '198.51.100.8', '2001:db9::1', 'not-an-ip', ''].map((a) => s.has(a))).toEqual([false, false, false, false, false]);
    expect(s.entries).toBe(5);
    expect(() => new AddressSet(['192.0.2.0/33'])).toThrow(/not an address or CIDR/);
  });

  it('reads the Tor exit lists and Spamhaus DROP as distributed, and names the first bad line', () => {
    const tor = '# torbulkexitlist\n185.220.101.1\n185.220.101.2\n';
    const exitAddresses = 'ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\nPublished 2026-11-30 20:03:01\nLastStatus 2026-12-01 01:00:00\nExitAddress 162.247.74.201 2026-12-01 01:08:47\n';
    const drop = '; Spamhaus DROP List 2026/12/01\n1.10.16.0/20 ; SBL256894\n2.56.192.0/22 ; SBL459831\n';
    const dropJson = '{"cidr":"1.10.16.0/20","sblid":"SBL256894","rir":"apnic"}\n{"type":"metadata","timestamp":1764547200,"size":2}\n';
    expect(parseListFile(tor)).toEqual({ items: ['185.220.101.1', '185.220.101.2'] });
    expect(parseListFile(exitAddresses)).toEqual({ items: ['162.247.74.201'] });
    expect(parseListFile(drop)).toEqual({ items: ['1.10.16.0/20', '2.56.192.0/22'] });
    expect(parseListFile(dropJson)).toEqual({ items: ['1.10.16.0/20'] });
    expect(parseListFile('192.0.2.1\r\n2001:db8::1 # v6\r\n')).toEqual({ items: ['192.0.2.1', '2001:db8::1'] });
    expect(parseListFile('192.0.2.1\n<html>\n')).toEqual({ line: 2, why: 'not an address or CIDR' });
    expect(parseListFile('{"cidr": 7}\n')).toEqual({ line: 1, why: '"cidr" is not a string' });
  });
});

function rig(limits: Record<string, unknown>) {
  const cfg = parseConfig({ policyServer: { listen: '127.0.0.1:0' }, limits });
  const clock = new ManualClock();
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('debug', new Writable({ write: (c: Buffer, _e, cb) => (lines.push(JSON.parse(c.toString())), cb()) }));
  const groups = new Groups(cfg.limits, { log, clock, metrics: createMetrics({ defaultMetrics: false }) });
  const policy = new Policy(cfg.limits, new MemoryStore(clock), new KeyBuilder('test-secret-0123456789'), clock);
  /** One failed login from ip: check, then the backend's "no". */
  const fail = async (ip: string, user = 'alice') => {
    const d = await policy.check({ protocol: 'imap', ip, user, groups: await groups.of(ip) });
    if (d.kind === 'allow') await policy.record(d, 'fail');
    return d.kind === 'refuse' ? d.rule : 'allowed';
  };
  return { groups, policy, fail, lines, cfg };
}

describe('rules and groups', () => {
  it('together: every address of the group spends one budget', async () => {
    const r = rig({
      groups: [{ name: 'tor', cidrs: ['185.220.101.0/24'], together: true }],
      rules: [{ name: 'ip-failures', key: 'ip', count: 'failures', limit: 2, window: '10m', block: '30m' }],
    });
    expect(await r.fail('185.220.101.1')).toBe('allowed');
    expect(await r.fail('185.220.101.2')).toBe('allowed');
    // A third exit, never seen: the group's block.
    expect(await r.fail('185.220.101.3')).toBe('ip-failures');
    // Anyone else keeps their own budget.
    expect(await r.fail('192.0.2.1')).toBe('allowed');
    // The block is noted under the group's key, so the connect-time check sees it for every exit.
    expect(await r.policy.connectCheck('imap', '185.220.101.99', r.groups.staticOf('185.220.101.99'))).toMatchObject({ rule: 'ip-failures' });
    expect(await r.policy.connectCheck('imap', '192.0.2.1', r.groups.staticOf('192.0.2.1'))).toBeNull();
  });

  it('only: a stricter rule for a group refuses its clients earlier; except: a looser one skips them', async () => {
    const r = rig({
      groups: [
        { name: 'hosting', cidrs: ['203.0.113.0/24'] },
        { name: 'office', cidrs: ['198.51.100.0/24'] },
      ],
      rules: [
        { name: 'hosting-failures', key: 'ip', count: 'failures', limit: 1, window: '1h', block: '1d', only: ['hosting'] },
        { name: 'ip-failures', key: 'ip', count: 'failures', limit: 3, window: '10m', block: '30m', except: ['office'] },
      ],
    });
    expect(await r.fail('203.0.113.5')).toBe('allowed');
    expect(await r.fail('203.0.113.5')).toBe('hosting-failures');
    for (let i = 0; i < 3; i++) expect(await r.fail('192.0.2.5', `u${i}`)).toBe('allowed');
    expect(await r.fail('192.0.2.5')).toBe('ip-failures');
    for (let i = 0; i < 5; i++) expect(await r.fail('198.51.100.5', `u${i}`)).toBe('allowed');
  });

  it('reads a group file, keeps its last good contents when a new one is broken, and says why', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mg-groups-'));
    const file = join(dir, 'tor.txt');
    writeFileSync(file, '185.220.101.1\n');
    const r = rig({ groups: [{ name: 'tor', file }], rules: [] });
    expect(r.groups.staticOf('185.220.101.1').names).toEqual(['tor']);
    writeFileSync(file, '185.220.101.1\nnonsense\n');
    // SIGHUP builds the next config's Groups, handing it the running one.
    const deps = { log: createLogger('silent'), clock: new ManualClock(), metrics: createMetrics({ defaultMetrics: false }) };
    const next = new Groups(r.cfg.limits, deps, r.groups);
    expect(next.view().groups[0]).toMatchObject({ name: 'tor', source: 'file', size: 1, error: 'line 2: not an address or CIDR' });
    expect(next.staticOf('185.220.101.1').names).toEqual(['tor']);
    // Without anything read before, the group is empty (and says why).
    expect(new Groups(r.cfg.limits, deps).view().groups[0]).toMatchObject({ size: 0, error: 'line 2: not an address or CIDR' });
    writeFileSync(file, '185.220.101.2\n');
    const fixed = new Groups(r.cfg.limits, deps, next);
    expect([fixed.staticOf('185.220.101.1').names, fixed.staticOf('185.220.101.2').names]).toEqual([[], ['tor']]);
    expect(fixed.view().groups[0]?.error).toBeUndefined();
  });

  it('reads a changed group file while running (watch), and keeps the last good one when the change is broken', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mg-watch-'));
    const file = join(dir, 'list.txt');
    writeFileSync(file, '192.0.2.1\n');
    const r = rig({ groups: [{ name: 'g', file }], rules: [] });
    r.groups.watch();
    try {
      // A list tool writes a new file and renames it into place.
      writeFileSync(join(dir, 'list.tmp'), '192.0.2.1\n192.0.2.2\n');
      renameSync(join(dir, 'list.tmp'), file);
      await until(() => r.groups.staticOf('192.0.2.2').names.length === 1, 'the new entry', 5_000);
      writeFileSync(file, 'garbage\n');
      await until(() => r.lines.some((l) => l.event === 'groups.error' && l.group === 'g'), 'groups.error', 5_000);
      expect(r.groups.staticOf('192.0.2.2').names).toEqual(['g']);
    } finally {
      r.groups.close();
    }
  });

  it('never asks a blocklist about a local address (private, loopback, CGNAT, unique local)', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const cfg = parseConfig({ policyServer: { listen: '127.0.0.1:0' }, limits: { dnsbl: { servers: ['127.0.0.1:9'] }, groups: [{ name: 'bl', dnsbl: { zone: 'bl.test' } }] } });
    const groups = new Groups(cfg.limits, { log: createLogger('silent'), clock: new ManualClock(), metrics });
    for (const ip of ['10.1.2.3', '192.168.0.1', '127.0.0.1', '100.64.0.1', 'fd00::1', 'fe80::1']) {
      groups.prefetch(ip);
      expect(await groups.of(ip)).toMatchObject({ names: [] });
    }
    expect((await metrics.dnsblQueries.get()).values).toEqual([]);
    groups.close();
  });

  it('a group narrows the admin view of an address: only the rules that apply to it, under its key', async () => {
    const { specsForSubject } = await import('../../src/limits/admin.js');
    const r = rig({
      groups: [{ name: 'tor', cidrs: ['185.220.101.0/24'], together: true }],
      rules: [
        { name: 'tor-only', key: 'ip', count: 'failures', limit: 1, window: '1h', only: ['tor'] },
        { name: 'others', key: 'ip', count: 'failures', limit: 5, window: '1h', except: ['tor'] },
      ],
    });
    const keys = specsForSubject(r.policy, { ip: '185.220.101.7' }, await r.groups.of('185.220.101.7')).map((s) => s.spec.key);
    expect(keys).toEqual(['r:tor-only:ip:grp:tor']);
  });
});
