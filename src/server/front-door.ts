// The front-door check (issue 14 item 5): most logins arriving from ONE private address mean a
// load balancer without PROXY protocol, or a webmail on the same host. Every client then
// shares that address: one attacker's failures refuse them all, and the backend sees one
// client. Pure: no sockets, no timers; fed the client address of each login, on the clock.
//
// Bounded: it keeps the last `maxTracked` logins of the last `windowMs` (a ring) and a count
// per private address among them, so "most" is exact over that sample whatever the traffic.
import ipaddr from 'ipaddr.js';
import type { Clock } from '../clock.js';
import { ipv4Octets, plainIpv4 } from '../config/address.js';
import type { Logger } from '../logging/logger.js';

export interface FrontDoorOptions {
  /** Logins older than this are forgotten. */
  windowMs: number;
  /** Logins in the sample before any verdict: a quiet hour of a few logins says nothing. */
  minLogins: number;
  /** Share of the sample from one private address that starts an episode. */
  share: number;
  /** Share under which the episode ends (hysteresis: a warning per episode, not per swing). */
  clearShare: number;
  /** Most logins kept: past it the sample is the latest logins, not the whole window. */
  maxTracked: number;
}

/** 80% of at least 50 logins in 10 minutes: a site behind a working PROXY setup has no single
 *  private client near that share (an office NAT is a public address; a webmail in
 *  trustedNetworks is a choice the warning can remind of); a load balancer without PROXY has
 *  all of them, a mixed one most. 256 logins are plenty to measure a share of 80%. */
export const FRONT_DOOR_DEFAULTS: FrontDoorOptions = { windowMs: 10 * 60_000, minLogins: 50, share: 0.8, clearShare: 0.5, maxTracked: 256 };

/** What ipaddr.js calls the ranges a client behind a front door has: RFC 1918, IPv6 ULA
 *  fc00::/7, loopback, link-local, CGNAT 100.64.0.0/10 (RFC 6598). */
const PRIVATE_RANGES = new Set(['private', 'uniqueLocal', 'loopback', 'linkLocal', 'carrierGradeNat']);

/** The same ranges for IPv4, by octets: asked at every login, and ipaddr.js's range() walks a
 *  table of CIDRs (1.3 µs against 0.05, issue 22). */
function privateIpv4(v4: string): boolean {
  const [a, b] = ipv4Octets(v4);
  return a === 10 || a === 127 || (a === 172 && b >= 16 && b < 32) || (a === 192 && b === 168) || (a === 169 && b === 254) || (a === 100 && b >= 64 && b < 128);
}

/** The address in its canonical form when it is private (an IPv4-mapped IPv6 as IPv4), else null. */
export function privateAddress(ip: string): string | null {
  const v4 = plainIpv4(ip);
  if (v4 !== null) return privateIpv4(v4) ? v4 : null;
  return privateAddressGeneral(ip);
}

/** Any spelling of any address, through ipaddr.js (exported for the test that the IPv4 path
 *  agrees with it). */
export function privateAddressGeneral(ip: string): string | null {
  if (!ipaddr.isValid(ip)) return null;
  const a = ipaddr.process(ip);
  return PRIVATE_RANGES.has(a.range()) ? a.toString() : null;
}

export interface SingleSource {
  ip: string;
  /** Logins in the sample, and the address's share of them, when the episode started. */
  logins: number;
  share: number;
}

export class FrontDoor {
  private readonly opts: FrontDoorOptions;
  private readonly times: Float64Array;
  /** The private address of each login in the ring, or null for a public one. */
  private readonly keys: (string | null)[];
  private oldest = 0;
  private size = 0;
  private readonly counts = new Map<string, number>();
  private episode: string | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly onSingleSource: (s: SingleSource) => void,
    opts: Partial<FrontDoorOptions> = {},
  ) {
    this.opts = { ...FRONT_DOOR_DEFAULTS, ...opts };
    this.times = new Float64Array(this.opts.maxTracked);
    this.keys = new Array<string | null>(this.opts.maxTracked).fill(null);
  }

  /** The client address of one login attempt, as limits see it. */
  record(ip: string): void {
    const now = this.clock.now();
    this.expire(now);
    if (this.size === this.opts.maxTracked) this.dropOldest();
    const key = privateAddress(ip);
    const at = (this.oldest + this.size) % this.opts.maxTracked;
    this.times[at] = now;
    this.keys[at] = key;
    this.size++;
    if (key !== null) this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    this.decide(key);
  }

  /** The private address most logins come from, while an episode lasts. */
  get suspicious(): { ip: string } | null {
    this.expire(this.clock.now());
    this.decide(null);
    return this.episode === null ? null : { ip: this.episode };
  }

  /** Logins held and private addresses counted: at most maxTracked each, the memory bound. */
  get tracked(): { logins: number; addresses: number } {
    return { logins: this.size, addresses: this.counts.size };
  }

  private shareOf(key: string): number {
    return (this.counts.get(key) ?? 0) / this.size;
  }

  /** Ends the episode once the sample is large and mixed enough; starts one when the latest
   *  login's address (the only one whose share grew) holds most of a large enough sample. A
   *  sample that merely shrinks (a quiet night) does not end it: nothing contradicts it. */
  private decide(latest: string | null): void {
    const o = this.opts;
    if (this.size < o.minLogins) return;
    if (this.episode !== null && this.shareOf(this.episode) < o.clearShare) this.episode = null;
    if (this.episode === null && latest !== null && this.shareOf(latest) >= o.share) {
      this.episode = latest;
      this.onSingleSource({ ip: latest, logins: this.size, share: this.shareOf(latest) });
    }
  }

  private expire(now: number): void {
    while (this.size > 0 && this.times[this.oldest]! <= now - this.opts.windowMs) this.dropOldest();
  }

  private dropOldest(): void {
    const key = this.keys[this.oldest] ?? null;
    if (key !== null) {
      const n = this.counts.get(key)! - 1;
      if (n === 0) this.counts.delete(key);
      else this.counts.set(key, n);
    }
    this.keys[this.oldest] = null;
    this.oldest = (this.oldest + 1) % this.opts.maxTracked;
    this.size--;
  }
}

/** The one warning of an episode (the composition root passes it as the callback's body). */
export function logSingleSource(log: Logger, s: SingleSource): void {
  log.warn(
    { event: 'auth.single-source', ip: s.ip, logins: s.logins, share: Math.round(s.share * 100) / 100 },
    'most logins come from one private address: a load balancer without PROXY protocol (listeners[].proxyProtocol and limits.trustedProxies), or a webmail on this host? Every client behind it shares its limits',
  );
}
