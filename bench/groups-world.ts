// The address world of the groups phase (bench/phase-groups.ts): GeoLite2-like ASN and country
// databases built by MaxMind's writer (test/helpers/mmdb.ts), the client address streams the
// load generator reads (files, one address a line), a Tor-style exit list, the blocklist's
// listed names; and the per-lookup cost of GeoIp.lookup on those databases, in process.
// Deterministic (a seeded PRNG): every run builds the same world.
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../src/logging/logger.js';
import { writeMmdb } from '../test/helpers/mmdb.js';
import { round } from './lib.js';

/** Networks in the databases: GeoLite2 has ~10× more, but a lookup's cost is the tree's depth
 *  (24 nodes below the IPv4 start for a /24, 48 for a /48) and one record decode, not the count. */
export const NETS_V4 = 30_000;
export const NETS_V6 = 10_000;
const ASNS = 3_000;
/** The first HOSTING_ASNS of the ASNs are the `hosting` group (5% of networks). */
const HOSTING_ASNS = 150;
const COUNTRIES = ['NL', 'BE', 'DE', 'FR', 'US', 'GB', 'IT', 'ES', 'PL', 'SE', 'NO', 'DK', 'FI', 'IE', 'PT', 'AT', 'CH', 'CZ', 'SK', 'HU', 'RO', 'BG', 'GR', 'TR', 'RU', 'UA', 'CN', 'JP', 'KR', 'IN', 'ID', 'VN', 'TH', 'MY', 'SG', 'AU', 'NZ', 'CA', 'MX', 'BR', 'AR', 'CL', 'CO', 'PE', 'ZA', 'NG', 'EG', 'MA', 'KE', 'IL'];
/** The `home` group: 5 of the 50 countries (10% of networks). */
export const HOME = COUNTRIES.slice(0, 5);
export const HOSTING = Array.from({ length: HOSTING_ASNS }, (_, i) => asnOf(i));
/** Addresses in the stream every distinct-address target reads (one per session, never
 *  repeated within a run: more than the fastest target's sessions). */
export const MAIN = 150_000;
/** Listed addresses, each a --host-record of dnsmasq: its command line holds ~30,000. */
export const LISTED = 25_000;
export const HITS = 256;
export const TOR = 2_000;
/** One session in TOR_EVERY comes from a Tor exit in the Tor target's stream. */
export const TOR_EVERY = 20;

function asnOf(i: number): number {
  return 1000 + i;
}

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** First octets never drawn: 0, 10, 100 (CGNAT), 127, 169 (link-local), 172, 192 (private
 *  and TEST-NET), 198 (benchmarking), and multicast and above: every address is public. */
const SKIP_V4 = new Set([0, 10, 100, 127, 169, 172, 192, 198]);

function distinct<T>(n: number, draw: () => T, key: (t: T) => string): T[] {
  const seen = new Set<string>();
  const out: T[] = [];
  while (out.length < n) {
    const t = draw();
    if (!seen.has(key(t))) {
      seen.add(key(t));
      out.push(t);
    }
  }
  return out;
}

/** A GeoLite2-Country record: continent, country and registered country, names in the eight
 *  languages GeoLite2 ships (the decode cost of a real record). */
function countryRecord(code: string, i: number): Record<string, unknown> {
  const names = (what: string) => Object.fromEntries(['de', 'en', 'es', 'fr', 'ja', 'pt-BR', 'ru', 'zh-CN'].map((l) => [l, `${what} ${code} (${l})`]));
  const country = { geoname_id: 2_750_000 + i, iso_code: code, names: names('Country') };
  return { continent: { code: 'EU', geoname_id: 6_255_148, names: names('Continent') }, country, registered_country: country };
}

export interface World {
  asnDb: string;
  countryDb: string;
  torFile: string;
  /** Address files for proxied-logins.mjs. */
  streams: { main: string; tor: string; listed: string; hits: string; local: string };
  /** dnsmasq host records: the listed addresses' names in `zone`. */
  listedRecords: (zone: string) => Record<string, string>;
  /** For the GeoIP micro-measure: addresses in mapped networks, v4 and v6, and outside them. */
  v4: (k: number) => string;
  v6: (k: number) => string;
  unmapped: (k: number) => string;
  dbBytes: { asn: number; country: number };
  buildSeconds: number;
}

export function buildWorld(dir: string): World {
  const t0 = performance.now();
  const rnd = prng(18);
  const int = (n: number) => Math.floor(rnd() * n);
  const nets4 = distinct(NETS_V4, () => {
    let a: number;
    do a = 1 + int(223);
    while (SKIP_V4.has(a));
    return `${a}.${int(256)}.${int(256)}`;
  }, (x) => x);
  // Global unicast under 2400::/8-2bff::/16 (RIPE, APNIC… allocations), no 6to4 or Teredo.
  const nets6 = distinct(NETS_V6, () => `${(0x2400 + int(0x800)).toString(16)}:${int(0x10000).toString(16)}:${int(0x10000).toString(16)}`, (x) => x);
  const asn: Record<string, number> = {};
  const country: Record<string, Record<string, unknown>> = {};
  const records = COUNTRIES.map(countryRecord);
  [...nets4.map((n) => `${n}.0/24`), ...nets6.map((n) => `${n}::/48`)].forEach((cidr) => {
    asn[cidr] = asnOf(int(ASNS));
    country[cidr] = records[int(COUNTRIES.length)]!;
  });
  const asnDb = writeMmdb(dir, 'asn', asn);
  const countryDb = writeMmdb(dir, 'country', country);
  // Address k: network k·7919 mod NETS (7919 is prime to 30,000: consecutive sessions land
  // in networks far apart), host 1 + ⌊k / NETS⌋; distinct for every k below 254·NETS.
  const v4 = (k: number) => `${nets4[(k * 7919) % NETS_V4]}.${1 + (Math.floor(k / NETS_V4) % 254)}`;
  const v6 = (k: number) => `${nets6[(k * 7919) % NETS_V6]}::${(1 + Math.floor(k / NETS_V6)).toString(16)}`;
  const unmapped = (k: number) => `${SKIP_V4.has(1 + (k % 223)) ? 11 : 1 + (k % 223)}.${(k >> 8) & 255}.${k & 255}.77`;
  const tor = distinct(TOR, () => `${nets4[int(NETS_V4)]}.${200 + int(50)}`, (x) => x);
  const main = Array.from({ length: MAIN }, (_, k) => v4(k));
  const listed = Array.from({ length: LISTED }, (_, k) => v4(MAIN + k));
  const hits = Array.from({ length: HITS }, (_, k) => v4(MAIN + LISTED + k));
  const file = (name: string, lines: string[]) => {
    const path = join(dir, name);
    writeFileSync(path, `${lines.join('\n')}\n`);
    return path;
  };
  const torFile = file('tor-exits.txt', ['# Tor bulk exit list (bench, synthetic)', ...tor]);
  const streams = {
    main: file('stream-main.txt', main),
    tor: file('stream-tor.txt', main.map((a, k) => (k % TOR_EVERY === TOR_EVERY - 1 ? tor[Math.floor(k / TOR_EVERY) % TOR]! : a))),
    listed: file('stream-listed.txt', listed),
    hits: file('stream-hits.txt', hits),
    local: file('stream-local.txt', Array.from({ length: 4096 }, (_, k) => `10.1.${k >> 8}.${1 + (k & 255)}`)),
  };
  const listedRecords = (zone: string) => Object.fromEntries(listed.map((a) => [`${a.split('.').reverse().join('.')}.${zone}`, '127.0.0.2']));
  return {
    asnDb, countryDb, torFile, streams, listedRecords, v4, v6, unmapped,
    dbBytes: { asn: statSync(asnDb).size, country: statSync(countryDb).size },
    buildSeconds: round((performance.now() - t0) / 1000, 1)!,
  };
}

/** The built module (what mailgate runs), typed as its source. */
const DIST_GEOIP = new URL('../dist/groups/geoip.js', import.meta.url).pathname;

/** µs per GeoIp.lookup (both databases), median of 3 passes of `n` lookups each: misses (fresh
 *  addresses, each a tree walk and record decode per database, then a cache insert) for IPv4
 *  and IPv6 in mapped networks and for IPv4 outside every network, and hits (a working set
 *  under half the cache's bound, looked up again). */
export async function geoipLookupCost(w: World, n: number): Promise<Record<string, number | null>> {
  const { GeoIp } = (await import(DIST_GEOIP)) as typeof import('../src/groups/geoip.js');
  const quiet = { info() {}, warn() {}, error() {}, debug() {} } as unknown as Logger;
  const open = () => GeoIp.open({ asn: w.asnDb, country: w.countryDb }, { log: quiet, clock: { now: () => Date.now() } });
  const t0 = performance.now();
  open();
  const openMs = performance.now() - t0;
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[1]!;
  const usPer = (g: { lookup(ip: string): unknown }, addrs: string[]) => {
    const t = performance.now();
    for (const a of addrs) g.lookup(a);
    return ((performance.now() - t) * 1000) / addrs.length;
  };
  // JIT warm-up, on its own GeoIp: every timed pass starts with an empty cache.
  usPer(open(), Array.from({ length: 20_000 }, (_, k) => w.v4(200_000 + k)));
  const miss = (addr: (k: number) => string) => median([0, 1, 2].map((p) => usPer(open(), Array.from({ length: n }, (_, k) => addr(p * n + k)))));
  const hitSet = Array.from({ length: 20_000 }, (_, k) => (k % 5 === 4 ? w.v6(k) : w.v4(k)));
  const hit = median([0, 1, 2].map(() => {
    const g = open();
    usPer(g, hitSet);
    return usPer(g, Array.from({ length: n }, (_, k) => hitSet[k % hitSet.length]!));
  }));
  return {
    lookups: n,
    missV4Us: round(miss(w.v4), 2),
    missV6Us: round(miss(w.v6), 2),
    missUnmappedV4Us: round(miss(w.unmapped), 2),
    hitUs: round(hit, 3),
    openMs: round(openMs, 1),
  };
}
