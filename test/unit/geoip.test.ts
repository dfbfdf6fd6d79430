// GeoIp against real MaxMind-format files built by MaxMind's perl writer (test/helpers/mmdb.ts):
// lookups (IPv4, IPv6, IPv4-mapped, registered_country), ranges never looked up, open errors,
// reload and watch, the cache's bound. Files and a folder watch only; no sockets.
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Reader } from 'maxmind';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { MailgateError } from '../../src/errors.js';
import { GeoIp } from '../../src/groups/geoip.js';
import { captureLogger } from '../helpers/log-capture.js';
import { writeMmdb } from '../helpers/mmdb.js';
import { until } from '../helpers/until.js';

/** Private and local networks the databases DO map, to show they are never looked up. */
const LOCAL_NETS = ['10.0.0.0/8', '192.168.0.0/16', '127.0.0.0/8', '100.64.0.0/10', 'fc00::/7'];
const LOCAL_ADDRS = ['10.0.0.1', '192.168.1.1', '127.0.0.1', '100.64.0.1', 'fc00::1', '::ffff:10.0.0.1', '::', '0.0.0.0'];

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mailgate-geoip-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A fresh folder per test, so watchers and rewritten files never meet another test's. */
const folder = () => mkdtempSync(join(dir, 't-'));

function asnDb(d: string, file = 'asn.mmdb'): string {
  const local = Object.fromEntries(LOCAL_NETS.map((c) => [c, 64999]));
  return writeMmdb(d, 'asn', { '203.0.113.0/24': 64500, '198.51.100.0/24': 64501, '2001:db8:1::/48': 64502, ...local }, { file });
}

function countryDb(d: string, extra: Record<string, string> = {}, file = 'country.mmdb'): string {
  const local = Object.fromEntries(LOCAL_NETS.map((c) => [c, 'NL']));
  return writeMmdb(
    d,
    'country',
    {
      '198.51.100.0/24': 'NL',
      '2001:db8:1::/48': 'DE',
      // An anycast range: no country, only the one it is registered in.
      '192.0.2.0/24': { registered_country: { iso_code: 'US', names: { en: 'United States' } } },
      ...local,
      ...extra,
    },
    { file },
  );
}

function openBoth(d: string, cacheMax?: number) {
  const { logger, captured } = captureLogger();
  const clock = new ManualClock();
  const cfg = { asn: asnDb(d), country: countryDb(d) };
  const geo = GeoIp.open(cfg, { log: logger, clock }, cacheMax);
  const events = (event: string) => captured.lines.filter((l) => l.event === event);
  return { geo, cfg, clock, events };
}

describe('GeoIp lookups', () => {
  let geo: GeoIp;
  let cfg: { asn: string; country: string };
  beforeAll(() => ({ geo, cfg } = openBoth(folder())));
  afterAll(() => geo.close());

  it('answers IPv4, IPv6 (any spelling) and IPv4-mapped IPv6 from both databases', () => {
    expect(geo.lookup('203.0.113.7')).toEqual({ asn: 64500, asOrg: 'Test AS64500' });
    expect(geo.lookup('198.51.100.9')).toEqual({ asn: 64501, asOrg: 'Test AS64501', country: 'NL' });
    expect(geo.lookup('::ffff:198.51.100.9')).toEqual({ asn: 64501, asOrg: 'Test AS64501', country: 'NL' });
    expect(geo.lookup('::ffff:c633:6409')).toEqual({ asn: 64501, asOrg: 'Test AS64501', country: 'NL' });
    expect(geo.lookup('2001:db8:1::5')).toEqual({ asn: 64502, asOrg: 'Test AS64502', country: 'DE' });
    expect(geo.lookup('2001:0DB8:0001:0000:0000:0000:0000:0005')).toEqual({ asn: 64502, asOrg: 'Test AS64502', country: 'DE' });
  });

  it('falls back to registered_country when a range has no country', () => {
    expect(geo.lookup('192.0.2.1')).toEqual({ country: 'US' });
  });

  it('answers {} for an address in no network and for what is not an address', () => {
    for (const ip of ['8.8.8.8', '2001:db8:2::1', '203.0.114.1', 'not-an-ip', '', '999.1.1.1', '127.1', '1.2.3.4 ']) {
      expect(geo.lookup(ip), ip).toEqual({});
    }
  });

  it('never looks up private, loopback, CGNAT, unique-local or unspecified addresses, though the files map them', () => {
    const asn = new Reader(readFileSync(cfg.asn));
    const country = new Reader(readFileSync(cfg.country));
    for (const ip of LOCAL_ADDRS.filter((a) => a !== '::' && a !== '0.0.0.0')) {
      expect(asn.get(ip), ip).toMatchObject({ autonomous_system_number: 64999 });
      expect(country.get(ip), ip).toMatchObject({ country: { iso_code: 'NL' } });
    }
    for (const ip of LOCAL_ADDRS) expect(geo.lookup(ip), ip).toEqual({});
  });

  it('says where each database came from', () => {
    const metaAsn = new Reader(readFileSync(cfg.asn)).metadata;
    expect(geo.sources()).toEqual([
      { key: 'asn', path: cfg.asn, type: 'GeoLite2-ASN', builtAt: metaAsn.buildEpoch.toISOString(), loadedAt: new Date(1_700_000_000_000).toISOString() },
      { key: 'country', path: cfg.country, type: 'GeoLite2-Country', builtAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), loadedAt: new Date(1_700_000_000_000).toISOString() },
    ]);
  });
});

describe('GeoIp databases of other shapes', () => {
  it('reads an IPv4-only tree and answers {} for IPv6 from it', () => {
    const d = folder();
    const country = writeMmdb(d, 'country', { '198.51.100.0/24': 'nl' }, { ipVersion: 4, type: 'DBIP-Country-Lite' });
    const geo = GeoIp.open({ country }, { log: captureLogger().logger, clock: new ManualClock() });
    expect(geo.lookup('198.51.100.1')).toEqual({ country: 'NL' });
    expect(geo.lookup('::ffff:198.51.100.1')).toEqual({ country: 'NL' });
    expect(geo.lookup('2001:db8:1::1')).toEqual({});
    // Its first 32 bits are 198.51.100.1: walked in an IPv4 tree, it would land in NL.
    expect(geo.lookup('c633:6401::1')).toEqual({});
    expect(geo.sources().map((s) => s.type)).toEqual(['DBIP-Country-Lite']);
  });
});

describe('GeoIp.open refuses what it cannot use, naming the key', () => {
  const refusal = (cfg: { asn?: string; country?: string }) => {
    try {
      GeoIp.open(cfg, { log: captureLogger().logger, clock: new ManualClock() });
    } catch (err) {
      expect(err).toBeInstanceOf(MailgateError);
      expect((err as MailgateError).code).toBe('MG_CONFIG_READ');
      return (err as Error).message;
    }
    throw new Error('open did not refuse');
  };

  it('a missing file, a file that is not MMDB, one cut short, one of the wrong kind', () => {
    const d = folder();
    const asn = asnDb(d);
    const garbage = join(d, 'garbage.mmdb');
    writeFileSync(garbage, 'GeoLite2-Country, honest\n'.repeat(100));
    const cut = join(d, 'cut.mmdb');
    writeFileSync(cut, readFileSync(asn).subarray(1000));
    expect(refusal({ asn: join(d, 'nope.mmdb') })).toMatch(/^limits\.geoip\.asn: cannot read .*nope\.mmdb \(ENOENT/);
    expect(refusal({ asn, country: garbage })).toMatch(/^limits\.geoip\.country: .*garbage\.mmdb is not a MaxMind-format database/);
    expect(refusal({ asn: cut })).toMatch(/^limits\.geoip\.asn: .*cut\.mmdb is damaged/);
    expect(refusal({ asn, country: asn })).toMatch(/^limits\.geoip\.country: .*asn\.mmdb is a GeoLite2-ASN database, expected a country database/);
    expect(refusal({ asn: countryDb(d) })).toMatch(/^limits\.geoip\.asn: .*country\.mmdb is a GeoLite2-Country database, expected an ASN database/);
  });
});

describe('GeoIp reload and watch', () => {
  it('reload() reads a replaced file (the cache forgets old answers); a broken one keeps the previous database and says so once', () => {
    const { geo, cfg, clock, events } = openBoth(folder());
    expect(events('groups.loaded').map((l) => [l.source, l.path, l.type])).toEqual([
      ['geoip.asn', cfg.asn, 'GeoLite2-ASN'],
      ['geoip.country', cfg.country, 'GeoLite2-Country'],
    ]);
    expect(geo.lookup('198.51.100.9').country).toBe('NL');
    countryDb(dirname(cfg.country), { '198.51.100.0/24': 'DE' });
    clock.advance(60_000);
    geo.reload();
    expect(geo.lookup('198.51.100.9')).toEqual({ asn: 64501, asOrg: 'Test AS64501', country: 'DE' });
    expect(events('groups.loaded')).toHaveLength(4);
    expect(geo.sources().map((s) => s.loadedAt)).toEqual([new Date(1_700_000_060_000).toISOString(), new Date(1_700_000_060_000).toISOString()]);

    writeFileSync(cfg.country, 'not a database');
    geo.reload();
    expect(geo.lookup('198.51.100.9').country).toBe('DE');
    expect(geo.lookup('198.51.100.10').country).toBe('DE');
    expect(events('groups.error')).toEqual([
      expect.objectContaining({ source: 'geoip.country', path: cfg.country, error: expect.stringMatching(/is not a MaxMind-format database.*keeping the previous database/) }),
    ]);
    geo.close();
  });

  it('watch() reads a file renamed into place, and keeps the database when a broken one is', async () => {
    const d = folder();
    const { geo, cfg, events } = openBoth(d);
    geo.watch();
    expect(geo.lookup('198.51.100.9').country).toBe('NL');
    renameSync(countryDb(d, { '198.51.100.0/24': 'DE' }, 'country.mmdb.tmp'), cfg.country);
    await until(() => geo.lookup('198.51.100.9').country === 'DE', 'the renamed database to be read', 5000);
    expect(events('groups.loaded').filter((l) => l.source === 'geoip.country')).toHaveLength(2);

    writeFileSync(join(d, 'broken.tmp'), 'not a database');
    renameSync(join(d, 'broken.tmp'), cfg.country);
    await until(() => events('groups.error').length > 0, 'the broken database to be refused', 5000);
    expect(events('groups.error')[0]).toMatchObject({ source: 'geoip.country', path: cfg.country });
    expect(geo.lookup('198.51.100.9').country).toBe('DE');
    expect(geo.lookup('2001:db8:1::9').asn).toBe(64502);
    geo.close();
  });
});

describe('GeoIp cache', () => {
  it('never holds more addresses than its cap, and no junk at all', () => {
    const { geo } = openBoth(folder(), 100);
    for (let i = 0; i < 1000; i++) {
      // A client that keeps coming back, among many that pass once.
      expect(geo.lookup('2001:db8:1::7').country).toBe('DE');
      geo.lookup(`198.51.${i >> 8}.${i & 255}`);
      expect(geo.size).toBeLessThanOrEqual(100);
    }
    expect(geo.size).toBeGreaterThanOrEqual(50);
    const size = geo.size;
    for (let i = 0; i < 100; i++) expect(geo.lookup(`junk-${i}`)).toEqual({});
    expect(geo.size).toBe(size);
    expect(geo.lookup('198.51.100.9')).toEqual({ asn: 64501, asOrg: 'Test AS64501', country: 'NL' });
    geo.close();
    expect(geo.size).toBe(0);
  });
});
