// Address groups (limits.groups): which groups a client address is in, from lists (cidrs),
// files (read again on SIGHUP, which builds a new Groups, and when the file changes), the
// ASN/country databases and DNS blocklists. One Groups per running config; rules narrow to
// groups (only/except) and a `together` group is one client for ip-keyed rules (policy.ts).
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Clock } from '../clock.js';
import { isLocalAddress } from '../config/address.js';
import type { GroupConfig } from '../config/groups-schema.js';
import type { LimitsConfig } from '../config/schema.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { AddressSet, parseListFile } from './address-set.js';
import { Dnsbl } from './dnsbl.js';
import { GeoIp, type GeoInfo } from './geoip.js';

/** The groups of one client address, and what the databases say of it. */
export interface Membership {
  /** Groups the address is in, in config order. */
  names: readonly string[];
  /** The first `together` group among them: its key replaces the address in ip-keyed rules. */
  together?: string;
  /** ASN / country groups the databases cannot place the address in or out of (a private or
   *  unknown address): an `except` of them does not make it "foreign". */
  unplaced?: readonly string[];
  asn?: number;
  country?: string;
}

const NONE: Membership = Object.freeze({ names: [] });
/** A file change is read once it has been quiet this long (writers write in pieces). */
const FILE_SETTLE_MS = 200;

/** A group fed by a file: the last contents that parsed, and why the newest did not. */
interface FileList {
  path: string;
  set: AddressSet | null;
  loadedAt: number | null;
  error: string | null;
}

export interface GroupView {
  name: string;
  source: 'cidrs' | 'file' | 'asn' | 'country' | 'dnsbl';
  together: boolean;
  /** Entries of a list or file; numbers of ASNs / countries; lists of a dnsbl group. */
  size: number;
  path?: string;
  loadedAt?: string;
  error?: string;
  zones?: string[];
}

export interface GroupsDeps {
  log: Logger;
  clock: Clock;
  metrics: Pick<Metrics, 'dnsblQueries' | 'dnsblSeconds'>;
}

export class Groups {
  private readonly sets = new Map<string, AddressSet>();
  private readonly files = new Map<string, FileList>();
  private readonly geo: GeoIp | null;
  private readonly dnsbl: Dnsbl | null;
  private readonly watchers: FSWatcher[] = [];
  /** A pending re-read per group (a change is read once it has been quiet). */
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly hasDnsbl: boolean;

  /** Reads every list, file and database now (a database that cannot be read throws,
   *  naming its key; a file that cannot be read leaves its group empty, logged). */
  constructor(
    private readonly cfg: Pick<LimitsConfig, 'groups' | 'geoip' | 'dnsbl'>,
    private readonly deps: GroupsDeps,
    /** The running config's groups (a reload): a file that cannot be read now keeps what
     *  that one had read from the same path. */
    previous?: Groups,
  ) {
    for (const g of cfg.groups) {
      if (g.cidrs) this.sets.set(g.name, new AddressSet(g.cidrs));
      if (g.file) {
        const before = previous?.files.get(g.name);
        const f: FileList = before?.path === g.file ? { ...before } : { path: g.file, set: null, loadedAt: null, error: null };
        this.files.set(g.name, f);
        this.load(g.name, f);
      }
    }
    this.hasDnsbl = cfg.groups.some((g) => g.dnsbl);
    this.geo = cfg.geoip && (cfg.geoip.asn || cfg.geoip.country) ? GeoIp.open(cfg.geoip, deps) : null;
    this.dnsbl = this.hasDnsbl ? new Dnsbl(cfg.dnsbl, deps) : null;
  }

  /** Whether any group or database is configured (else every address is in none). */
  get active(): boolean {
    return this.cfg.groups.length > 0 || this.geo !== null;
  }

  private load(name: string, f: FileList): void {
    let text: string;
    try {
      text = readFileSync(f.path, 'utf8');
    } catch (err) {
      return this.refuse(name, f, (err as NodeJS.ErrnoException).code ?? (err as Error).message);
    }
    const parsed = parseListFile(text);
    if ('line' in parsed) return this.refuse(name, f, `line ${parsed.line}: ${parsed.why}`);
    f.set = new AddressSet(parsed.items);
    f.loadedAt = this.deps.clock.now();
    f.error = null;
    this.deps.log.info({ event: 'groups.loaded', group: name, path: f.path, entries: parsed.items.length }, 'address group file read');
  }

  private refuse(name: string, f: FileList, why: string): void {
    f.error = why;
    const kept = f.set ? `keeping the previous ${f.set.entries} entries` : 'the group is empty until it can be read';
    this.deps.log.error({ event: 'groups.error', group: name, path: f.path, error: why }, `address group file not read: ${kept}`);
  }

  /** Watches the groups' files (and databases) and reads one again when it changes. */
  watch(): void {
    for (const [name, f] of this.files) {
      // The directory: tools replace a list by renaming a new file over it.
      try {
        const w = watch(dirname(f.path), (_e, file) => {
          if (file !== null && file !== basename(f.path)) return;
          this.settle(name, () => this.load(name, f));
        });
        w.on('error', () => undefined);
        w.unref();
        this.watchers.push(w);
      } catch (err) {
        this.deps.log.warn({ event: 'groups.error', group: name, path: f.path, error: (err as Error).message }, 'cannot watch the file: it is read again on SIGHUP only');
      }
    }
    this.geo?.watch();
  }

  private settle(name: string, fn: () => void): void {
    clearTimeout(this.timers.get(name));
    const t = setTimeout(() => {
      this.timers.delete(name);
      fn();
    }, FILE_SETTLE_MS);
    t.unref();
    this.timers.set(name, t);
  }

  private inStatic(g: GroupConfig, ip: string, geo: GeoInfo): boolean {
    if (g.cidrs) return this.sets.get(g.name)!.has(ip);
    if (g.file) return this.files.get(g.name)!.set?.has(ip) ?? false;
    if (g.asn) return geo.asn !== undefined && g.asn.includes(geo.asn);
    if (g.country) return geo.country !== undefined && g.country.includes(geo.country);
    return false;
  }

  /** Starts the blocklist lookups of an address (at connect: the login then finds them done). */
  prefetch(ip: string): void {
    // A local address is nobody's business outside (and no list lists it).
    if (!this.dnsbl || isLocalAddress(ip)) return;
    for (const g of this.cfg.groups) if (g.dnsbl) this.dnsbl.prefetch(ip, g.dnsbl);
  }

  /** The groups of an address known without waiting (lists, files, databases). */
  staticOf(ip: string): Membership {
    if (!this.active) return NONE;
    const geo = this.geo?.lookup(ip) ?? {};
    const names: string[] = [];
    let together: string | undefined;
    let unplaced: string[] | undefined;
    for (const g of this.cfg.groups) {
      if ((g.asn && geo.asn === undefined) || (g.country && geo.country === undefined)) (unplaced ??= []).push(g.name);
      if (g.dnsbl || !this.inStatic(g, ip, geo)) continue;
      names.push(g.name);
      if (g.together && together === undefined) together = g.name;
    }
    if (names.length === 0 && !unplaced && geo.asn === undefined && geo.country === undefined) return NONE;
    return { names, together, unplaced, asn: geo.asn, country: geo.country };
  }

  /** Every group of an address, blocklists included (each within limits.dnsbl.timeout). */
  async of(ip: string): Promise<Membership> {
    const known = this.staticOf(ip);
    if (!this.hasDnsbl || isLocalAddress(ip)) return known;
    const listed = await Promise.all(this.cfg.groups.map(async (g) => (g.dnsbl ? (await this.dnsbl!.score(ip, g.dnsbl)) >= g.dnsbl.threshold : false)));
    if (!listed.includes(true)) return known;
    // Config order, as staticOf gives it.
    const names = this.cfg.groups.filter((g, i) => listed[i] || known.names.includes(g.name)).map((g) => g.name);
    const together = this.cfg.groups.find((g) => g.together && names.includes(g.name))?.name;
    return { ...known, names, together };
  }

  /** The admin API's listing: each group's source, size and the age of what it read. */
  view(): { groups: GroupView[]; geoip: ReturnType<GeoIp['sources']> } {
    const groups = this.cfg.groups.map((g): GroupView => {
      const base = { name: g.name, together: g.together };
      if (g.cidrs) return { ...base, source: 'cidrs', size: g.cidrs.length };
      if (g.file) {
        const f = this.files.get(g.name)!;
        return { ...base, source: 'file', size: f.set?.entries ?? 0, path: f.path, loadedAt: f.loadedAt === null ? undefined : new Date(f.loadedAt).toISOString(), error: f.error ?? undefined };
      }
      if (g.asn) return { ...base, source: 'asn', size: g.asn.length };
      if (g.country) return { ...base, source: 'country', size: g.country.length };
      return { ...base, source: 'dnsbl', size: g.dnsbl!.lists.length, zones: g.dnsbl!.lists.map((l) => l.zone) };
    });
    return { groups, geoip: this.geo?.sources() ?? [] };
  }

  close(): void {
    for (const w of this.watchers) w.close();
    for (const t of this.timers.values()) clearTimeout(t);
    this.geo?.close();
    this.dnsbl?.close();
  }
}
