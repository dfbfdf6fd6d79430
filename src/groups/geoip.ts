// ASN and country of a client address, from local MaxMind-format databases (GeoLite2 and
// DB-IP lite files as distributed), read whole into memory with mmdb-lib (the maxmind package).
// Answers are cached and bounded. Files are read again on reload() (SIGHUP) and when watch()
// sees them replaced; a file that cannot be read keeps the previous database. No sockets; its
// only I/O is reading the two files and watching their folders.
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type ipaddr from 'ipaddr.js';
import { Reader, type AsnResponse, type CountryResponse, type Response } from 'maxmind';
import type { Clock } from '../clock.js';
import { isLocal, parseIp } from '../config/address.js';
import type { GeoipConfig } from '../config/groups-schema.js';
import { MailgateError } from '../errors.js';
import { HalvingCache } from '../halving-cache.js';
import type { Logger } from '../logging/logger.js';

export interface GeoInfo {
  asn?: number;
  asOrg?: string;
  /** ISO 3166-1 alpha-2, upper case. */
  country?: string;
}

export type GeoKey = 'asn' | 'country';

/** type: the metadata's database_type (GeoLite2-ASN…); builtAt: its build_epoch; loadedAt:
 *  when mailgate read it (both ISO 8601). */
export interface GeoSource {
  key: GeoKey;
  path: string;
  type: string;
  builtAt: string;
  loadedAt: string;
}

/** Addresses whose answers are kept: ~100 bytes each with the key, so ~5 MB at most. Far more
 *  than the distinct clients of a busy server in the minutes that matter; past it the
 *  addresses least recently asked make room. Emptied when a database is read again. */
export const GEOIP_CACHE_MAX = 50_000;

/** Quiet time after the last change seen in a database's folder before the file is read:
 *  geoipupdate renames a finished file into place (one event), but a copy over the file
 *  writes it in many pieces, and reading it half-written would only log an error. */
export const GEOIP_WATCH_DEBOUNCE_MS = 250;


/** Which database types each key accepts (metadata database_type): MaxMind's GeoLite2-ASN and
 *  GeoIP2-ISP, DB-IP's "DBIP-ASN-Lite (compat=GeoLite2-ASN)"; GeoLite2/GeoIP2 and DB-IP
 *  Country and City (a city record is a country record with more in it). */
const ACCEPTS: Record<GeoKey, { type: RegExp; expected: string }> = {
  asn: { type: /asn|isp/i, expected: 'an ASN database such as GeoLite2-ASN or dbip-asn-lite' },
  country: { type: /country|city/i, expected: 'a country database such as GeoLite2-Country or dbip-country-lite' },
};

/** Records kept decoded per database, by offset. A country file has a few hundred distinct
 *  records of ~600 bytes (names in eight languages) costing ~10 µs each to decode, ~0.8 µs from
 *  here (measured); ASN records are many but small. Emptied when full. */
const DECODED_RECORDS_MAX = 4096;

function decodedRecords() {
  const m = new Map<string | number, unknown>();
  return { get: (k: string | number) => m.get(k), set: (k: string | number, v: unknown) => m.size >= DECODED_RECORDS_MAX ? m.clear() : m.set(k, v) };
}

/** mmdb-lib: the search tree is followed by a 16-byte separator before the data section. */
const DATA_SECTION_SEPARATOR_BYTES = 16;

const EMPTY: GeoInfo = Object.freeze({});

interface Loaded extends GeoSource {
  reader: Reader<Response>;
  /** An IPv4-only tree (ip_version 4) knows nothing of IPv6 addresses. */
  ipv4Only: boolean;
  /** A lookup threw (a damaged file that passed the checks): logged once per database. */
  failed: boolean;
}

/** Identity of the file last read (or tried) per key, so a folder event for a file that did
 *  not change reads nothing and logs nothing. */
function stampAt(path: string): string {
  try {
    const st = statSync(path);
    return `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

/** f(), or an Error saying `what`, and why f threw. */
function must<T>(f: () => T, what: string): T {
  try {
    return f();
  } catch (err) {
    throw new Error(`${what} (${(err as Error).message})`);
  }
}

/** Reads and checks one database; throws an Error saying why it cannot be used. */
function readDatabase(key: GeoKey, path: string, now: number): { db: Loaded; stamp: string } {
  // Stamped before reading: a file replaced in between is then read again at its event.
  const stamp = stampAt(path);
  const buf = must(() => readFileSync(path), `cannot read ${path}`);
  const reader = must(() => new Reader<Response>(buf, { cache: decodedRecords() }), `${path} is not a MaxMind-format database`);
  const m = reader.metadata;
  if (typeof m.databaseType !== 'string' || !ACCEPTS[key].type.test(m.databaseType)) {
    throw new Error(`${path} is a ${String(m.databaseType)} database, expected ${ACCEPTS[key].expected}`);
  }
  const ipv4Only = m.ipVersion === 4;
  must(() => {
    if (m.searchTreeSize + DATA_SECTION_SEPARATOR_BYTES > buf.length) throw new Error('shorter than its search tree');
    reader.get(ipv4Only ? '192.0.2.1' : '2001:db8::1');
  }, `${path} is damaged`);
  const builtAt = m.buildEpoch instanceof Date && !Number.isNaN(m.buildEpoch.getTime()) ? m.buildEpoch.toISOString() : '';
  const db = { key, path, type: m.databaseType, builtAt, loadedAt: new Date(now).toISOString(), reader, ipv4Only, failed: false };
  return { db, stamp };
}

const KEYS: GeoKey[] = ['asn', 'country'];
const sourceName = (key: GeoKey) => `geoip.${key}`;

export class GeoIp {
  private readonly dbs: Partial<Record<GeoKey, Loaded>> = {};
  private readonly stamps: Partial<Record<GeoKey, string>> = {};
  /** Answers by address, at most `max` (O(1) when full: halving-cache.ts). */
  private readonly cache: HalvingCache<string, GeoInfo>;
  private readonly watchers: FSWatcher[] = [];
  private readonly timers: Partial<Record<GeoKey, NodeJS.Timeout>> = {};

  private constructor(
    private readonly cfg: GeoipConfig,
    private readonly deps: { log: Logger; clock: Clock },
    max: number,
  ) {
    this.cache = new HalvingCache(max);
  }

  /** Reads the configured databases; one that cannot be read, or is not a MaxMind-format
   *  database of the key's kind, is a config error naming limits.geoip.<key> (exit 2). */
  static open(cfg: GeoipConfig, deps: { log: Logger; clock: Clock }, cacheMax = GEOIP_CACHE_MAX): GeoIp {
    const g = new GeoIp(cfg, deps, cacheMax);
    for (const key of g.keys()) {
      try {
        g.install(key, readDatabase(key, cfg[key]!, deps.clock.now()));
      } catch (err) {
        throw new MailgateError('MG_CONFIG_READ', `limits.geoip.${key}: ${(err as Error).message}`);
      }
    }
    return g;
  }

  /** Addresses cached now. */
  get size(): number {
    return this.cache.size;
  }

  /** The address's ASN and country; {} for a private, loopback or otherwise local address, for
   *  one no database lists, and for anything that is not an address. Synchronous. */
  lookup(ip: string): GeoInfo {
    const hit = this.cache.get(ip);
    if (hit !== undefined) return hit;
    // Only addresses are cached, so junk cannot fill the cache with long strings.
    const parsed = parseIp(ip);
    if (parsed === null) return EMPTY;
    const info = this.resolve(parsed);
    this.cache.set(ip, info);
    return info;
  }

  /** Reads every configured file again (SIGHUP): each that cannot be used keeps its previous
   *  database and logs groups.error. */
  reload(): void {
    for (const key of this.keys()) this.load(key);
  }

  /** Reads a file again when its folder says it changed (geoipupdate replaces files by rename,
   *  so the folder is watched, not the file), after GEOIP_WATCH_DEBOUNCE_MS of quiet. */
  watch(): void {
    if (this.watchers.length > 0) return;
    const byDir = new Map<string, GeoKey[]>();
    for (const key of this.keys()) {
      const dir = dirname(this.cfg[key]!);
      byDir.set(dir, [...(byDir.get(dir) ?? []), key]);
    }
    for (const [dir, keys] of byDir) {
      try {
        const w = watch(dir, { persistent: false }, (_event, file) => {
          for (const key of keys) if (file === null || file === basename(this.cfg[key]!)) this.schedule(key);
        });
        w.on('error', (err) => {
          w.close();
          for (const key of keys) this.logError(key, dir, `watching stopped: ${err.message}; read again on SIGHUP only`);
        });
        this.watchers.push(w);
      } catch (err) {
        for (const key of keys) this.logError(key, dir, `cannot watch: ${(err as Error).message}; read again on SIGHUP only`);
      }
    }
  }

  /** Per database: path, type, build time, when it was read (the admin API). */
  sources(): GeoSource[] {
    return KEYS.flatMap((k) => this.dbs[k] ?? []).map(({ key, path, type, builtAt, loadedAt }) => ({ key, path, type, builtAt, loadedAt }));
  }

  close(): void {
    for (const w of this.watchers.splice(0)) w.close();
    for (const key of KEYS) clearTimeout(this.timers[key]);
    this.forget();
  }

  private forget(): void {
    this.cache.clear();
  }

  private keys(): GeoKey[] {
    return KEYS.filter((k) => this.cfg[k] !== undefined);
  }

  /** A private, loopback… address (config/address.ts isLocal) is in no ASN and no country,
   *  never "foreign". */
  private resolve(addr: ipaddr.IPv4 | ipaddr.IPv6): GeoInfo {
    if (isLocal(addr)) return EMPTY;
    const ip = addr.toString();
    const v6 = addr.kind() === 'ipv6';
    const info: GeoInfo = {};
    const asn = this.get<Partial<AsnResponse>>('asn', ip, v6);
    if (typeof asn?.autonomous_system_number === 'number') {
      info.asn = asn.autonomous_system_number;
      if (typeof asn.autonomous_system_organization === 'string') info.asOrg = asn.autonomous_system_organization;
    }
    const c = this.get<CountryResponse>('country', ip, v6);
    // Anycast and satellite ranges have no country, only the country they are registered in.
    const code = c?.country?.iso_code ?? c?.registered_country?.iso_code;
    if (typeof code === 'string' && /^[A-Za-z]{2}$/.test(code)) info.country = code.toUpperCase();
    return Object.freeze(info);
  }

  private get<T>(key: GeoKey, ip: string, v6: boolean): T | null {
    const d = this.dbs[key];
    if (!d || (v6 && d.ipv4Only)) return null;
    try {
      return d.reader.get(ip) as T | null;
    } catch (err) {
      if (!d.failed) this.logError(key, d.path, `lookup failed, the database may be damaged: ${(err as Error).message}`);
      d.failed = true;
      return null;
    }
  }

  private schedule(key: GeoKey): void {
    clearTimeout(this.timers[key]);
    this.timers[key] = setTimeout(() => {
      delete this.timers[key];
      if (stampAt(this.cfg[key]!) !== this.stamps[key]) this.load(key);
    }, GEOIP_WATCH_DEBOUNCE_MS).unref();
  }

  private load(key: GeoKey): void {
    const path = this.cfg[key]!;
    try {
      this.install(key, readDatabase(key, path, this.deps.clock.now()));
    } catch (err) {
      this.stamps[key] = stampAt(path);
      this.logError(key, path, `${(err as Error).message}; keeping the previous database`);
    }
  }

  private install(key: GeoKey, { db, stamp }: { db: Loaded; stamp: string }): void {
    this.dbs[key] = db;
    this.stamps[key] = stamp;
    this.forget();
    const { path, type, builtAt } = db;
    this.deps.log.info({ event: 'groups.loaded', source: sourceName(key), path, type, builtAt }, `${sourceName(key)}: read ${type} built ${builtAt}`);
  }

  private logError(key: GeoKey, path: string, why: string): void {
    this.deps.log.error({ event: 'groups.error', source: sourceName(key), path, error: why }, `${sourceName(key)}: ${why}`);
  }
}
