// DNS blocklist lookups (RFC 5782): an address is asked of each list's zone as an A query, one
// query shared by every caller, answers cached (bounded) for their TTL. Never throws and never
// keeps a caller past limits.dnsbl.timeout; a failing zone is logged once per outage.
import { Resolver } from 'node:dns/promises';
import { performance } from 'node:perf_hooks';
import ipaddr from 'ipaddr.js';
import type { Clock } from '../clock.js';
import type { DnsblConfig, DnsblSource } from '../config/groups-schema.js';
import { MailgateError } from '../errors.js';
import { HalvingCache } from '../halving-cache.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';

/** An answer is kept at least this long whatever its TTL says (a TTL of 0 would make every login
 *  a query) and at most this long (a delisted address should not stay listed for a day). */
export const MIN_TTL_MS = 10_000;
const MAX_TTL_MS = 3_600_000;
/** NXDOMAIN/NODATA carry their TTL in the SOA of the authority section (RFC 2308 §5), which
 *  node:dns does not expose: a clean answer is kept this long, a common SOA minimum of lists. */
export const CLEAN_TTL_MS = 300_000;
/** After a timeout, an error or a refusal, that address is asked again after this long: a dead
 *  server is not asked at every login from the same address, and a recovered one is soon used. */
export const FAILURE_BACKOFF_MS = 10_000;

/** What one query came to (the `result` label of mailgate_dnsbl_queries_total). */
export type DnsblResult = 'listed' | 'clean' | 'refused' | 'timeout' | 'error';

export interface DnsblDeps {
  log: Logger;
  metrics: Pick<Metrics, 'dnsblQueries' | 'dnsblSeconds'>;
  /** For cache expiry only; the timeout is a real timer. */
  clock: Clock;
}

type List = DnsblSource['lists'][number];

/** One (zone, address): the query under way, or its answer until `expires`. */
interface Entry {
  /** The A records once settled (none: NXDOMAIN, NODATA or no answer); null while asked. */
  addresses: readonly string[] | null;
  /** Clock time the entry stops counting; Infinity while asked (the deadline settles it). */
  expires: number;
  /** Settles with `addresses` at the answer or at the deadline; never rejects. */
  done: Promise<readonly string[]>;
}

const NONE: readonly string[] = Object.freeze([]);
const ZERO = Promise.resolve(0);
/** Resolved promises of the scores seen, so that an answer from the cache allocates nothing. */
const SCORES = new Map<number, Promise<number>>([[0, ZERO]]);
const SCORES_MAX = 1024;

function resolvedScore(n: number): Promise<number> {
  let p = SCORES.get(n);
  if (!p) {
    p = Promise.resolve(n);
    if (SCORES.size < SCORES_MAX) SCORES.set(n, p);
  }
  return p;
}

/** An address as the lists know it: IPv4 four-part decimal, IPv4-mapped IPv6 as IPv4, IPv6
 *  without a zone id; null for anything else. */
function parseAddress(ip: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  if (ipaddr.IPv4.isValidFourPartDecimal(ip)) return ipaddr.IPv4.parse(ip);
  if (!ip.includes(':') || !ipaddr.IPv6.isValid(ip)) return null;
  const a = ipaddr.IPv6.parse(ip);
  if (a.zoneId !== undefined) return null;
  return a.isIPv4MappedAddress() ? a.toIPv4Address() : a;
}

function nameOf(addr: ipaddr.IPv4 | ipaddr.IPv6, zone: string): string {
  const bytes = addr.toByteArray();
  if (addr.kind() === 'ipv4') return `${bytes[3]}.${bytes[2]}.${bytes[1]}.${bytes[0]}.${zone}`;
  // RFC 5782 §2.4: the 32 nibbles, least significant first.
  const nibbles: string[] = [];
  for (let i = bytes.length - 1; i >= 0; i--) nibbles.push((bytes[i]! & 0xf).toString(16), (bytes[i]! >> 4).toString(16));
  return `${nibbles.join('.')}.${zone}`;
}

/** The name asked for `ip` in `zone` (RFC 5782 §2.1, §2.4): d.c.b.a.zone for IPv4 and IPv4-mapped
 *  IPv6, 32 reversed nibbles for IPv6; null when `ip` is not an address. */
export function reverseName(ip: string, zone: string): string | null {
  const addr = parseAddress(ip);
  return addr ? nameOf(addr, zone) : null;
}

/** What a list's A records say. With `answers`, only those mean listed; without, any address in
 *  127.0.0.0/8 does (RFC 5782 §2.1) except 127.255.255.0/24, which lists answer when they refuse
 *  the query (Spamhaus: 127.255.255.252-255, e.g. asked through a public resolver). An address
 *  outside 127.0.0.0/8 is a resolver's NXDOMAIN redirection, not a listing. */
export function classify(addresses: readonly string[], answers?: readonly string[]): 'listed' | 'clean' | 'refused' {
  let refused = false;
  for (const a of addresses) {
    // 127.255.255.x: the list refused the query (Spamhaus); 127.0.0.1 is never a listing
    // (RFC 5782 §5) and is what some lists answer a resolver they refuse (URIBL).
    const error = a.startsWith('127.255.255.') || a === '127.0.0.1';
    if (answers ? answers.includes(a) : a.startsWith('127.') && !error) return 'listed';
    if (error) refused = true;
  }
  return refused ? 'refused' : 'clean';
}

const weightOf = (list: List, addresses: readonly string[]) =>
  addresses.length > 0 && classify(addresses, list.answers) === 'listed' ? list.weight : 0;

/** Weights such as 0.7 + 0.1 must reach a threshold of 0.8: sums are rounded to 1e-9. */
const roundScore = (n: number) => Math.round(n * 1e9) / 1e9;

export class Dnsbl {
  private readonly resolver: Resolver;
  /** "zone address" → entry, at most cfg.cacheSize (O(1) when full: halving-cache.ts). */
  private readonly cache: HalvingCache<string, Entry>;
  /** Zones whose last query failed (logged dnsbl.down, not yet dnsbl.up). */
  private readonly down = new Set<string>();
  private closed = false;

  constructor(
    private readonly cfg: DnsblConfig,
    private readonly deps: DnsblDeps,
  ) {
    this.cache = new HalvingCache(cfg.cacheSize);
    this.resolver = new Resolver({ timeout: cfg.timeout, tries: 1 });
    if (cfg.servers) {
      try {
        this.resolver.setServers(cfg.servers);
      } catch (err) {
        throw new MailgateError('MG_CONFIG_INVALID', `limits.dnsbl.servers: ${(err as Error).message} (expected IP:port, [IPv6]:port)`);
      }
    }
  }

  /** The sum of the weights of the lists of `source` that list `ip`: from the cache, or once
   *  every list answered, or at the latest cfg.timeout after the first call for each ip+zone
   *  (a list without an answer by then does not list it). 0 for a malformed ip; never rejects. */
  score(ip: string, source: DnsblSource): Promise<number> {
    try {
      if (this.closed) return ZERO;
      let sum = 0;
      let waits: Promise<number>[] | undefined;
      for (const list of source.lists) {
        const e = this.entry(ip, list);
        if (e === null) return ZERO;
        if (e.addresses) sum += weightOf(list, e.addresses);
        else (waits ??= []).push(e.done.then((a) => weightOf(list, a)));
      }
      if (!waits) return resolvedScore(roundScore(sum));
      return Promise.all(waits).then(
        (ws) => roundScore(ws.reduce((s, w) => s + w, sum)),
        () => 0,
      );
    } catch {
      return ZERO;
    }
  }

  /** Starts the lookups without waiting (at connect: the login finds them done or under way). */
  prefetch(ip: string, source: DnsblSource): void {
    try {
      if (this.closed) return;
      for (const list of source.lists) if (this.entry(ip, list) === null) return;
    } catch {
      // A lookup that cannot start counts as not listed, as in score().
    }
  }

  /** Stops: queries under way are cancelled (their callers get 0), the cache is dropped. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.resolver.cancel();
    this.cache.clear();
  }

  /** The live entry of (list.zone, ip), starting its query when there is none; null: not an IP.
   *  The fast path is one Map lookup under the address as given (callers pass normalised ones). */
  private entry(ip: string, list: List): Entry | null {
    const now = this.deps.clock.now();
    const hit = this.cache.get(`${list.zone} ${ip}`);
    if (hit && hit.expires > now) return hit;
    const addr = parseAddress(ip);
    if (!addr) return null;
    const norm = addr.toString();
    const key = `${list.zone} ${norm}`;
    if (norm !== ip) {
      const e = this.cache.get(key);
      if (e && e.expires > now) return e;
    }
    const e = this.ask(nameOf(addr, list.zone), list);
    this.cache.set(key, e);
    return e;
  }

  /** One A query for `name`, settled by its answer or by the deadline, whichever comes first. */
  private ask(name: string, list: List): Entry {
    const started = performance.now();
    let resolve!: (addresses: readonly string[]) => void;
    const e: Entry = { addresses: null, expires: Infinity, done: new Promise((r) => (resolve = r)) };
    const finish = (result: DnsblResult, addresses: readonly string[], keepMs: number, reason: string = result) => {
      if (e.addresses) return;
      clearTimeout(timer);
      e.addresses = addresses;
      e.expires = this.deps.clock.now() + keepMs;
      resolve(addresses);
      if (!this.closed) this.count(list.zone, result, reason, started);
    };
    const timer = setTimeout(() => finish('timeout', NONE, FAILURE_BACKOFF_MS), this.cfg.timeout);
    timer.unref();
    const answered = (records: { address: string; ttl: number }[]) => {
      const addresses = records.map((r) => r.address);
      const result = addresses.length ? classify(addresses, list.answers) : 'clean';
      const ttlMs = Math.min(MAX_TTL_MS, Math.max(MIN_TTL_MS, Math.min(...records.map((r) => r.ttl)) * 1000));
      finish(result, addresses, result === 'refused' ? FAILURE_BACKOFF_MS : addresses.length ? ttlMs : CLEAN_TTL_MS);
    };
    const failed = (err: unknown) => {
      const code = (err as NodeJS.ErrnoException | undefined)?.code ?? 'unknown';
      // c-ares: NXDOMAIN is ENOTFOUND, an answer without A records ENODATA.
      if (code === 'ENOTFOUND' || code === 'ENODATA') finish('clean', NONE, CLEAN_TTL_MS);
      else if (code === 'ETIMEOUT') finish('timeout', NONE, FAILURE_BACKOFF_MS);
      else finish('error', NONE, FAILURE_BACKOFF_MS, code);
    };
    try {
      this.resolver.resolve4(name, { ttl: true }).then(answered, failed);
    } catch (err) {
      failed(err);
    }
    return e;
  }

  private count(zone: string, result: DnsblResult, reason: string, started: number): void {
    const { metrics, log } = this.deps;
    metrics.dnsblQueries.inc({ zone, result });
    metrics.dnsblSeconds.observe({ zone }, (performance.now() - started) / 1000);
    if (result === 'listed' || result === 'clean') {
      if (this.down.delete(zone)) log.info({ event: 'dnsbl.up', zone }, 'DNS blocklist answers again');
    } else if (!this.down.has(zone)) {
      this.down.add(zone);
      log.warn({ event: 'dnsbl.down', zone, reason }, 'DNS blocklist not answering; addresses count as not listed until it does');
    }
  }
}
