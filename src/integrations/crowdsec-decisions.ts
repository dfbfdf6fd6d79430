// The CrowdSec decisions mailgate enforces, as a set answering "is this address refused?" in
// O(1) for addresses (one Map) and O(distinct prefix lengths) for ranges (one Map per length,
// keyed by the network address). Fed by the bouncer (a LAPI stream) or, in a worker, by the
// primary's relay. Expiry on the injected clock. Pure: no I/O, no timers.
import ipaddr from 'ipaddr.js';
import { canonicalIp } from '../config/address.js';
import type { Clock } from '../clock.js';

/** One decision as mailgate keeps (and relays) it. `untilMs` is on the clock's time line
 *  (the system clock in worker mode: one host, one time line). */
export interface CsDecision {
  id: number;
  scope: 'ip' | 'range';
  /** The address or CIDR, canonical (IPv4-mapped as IPv4, IPv6 compressed). */
  value: string;
  origin: string;
  scenario: string;
  untilMs: number;
}

export interface CsRefusal {
  origin: string;
  scenario: string;
  untilMs: number;
}

/** A change of the set: `reset` replaces it all (a full pull), else add and remove by id. */
export interface CsDelta {
  reset?: boolean;
  add: CsDecision[];
  remove: number[];
}

/** Most decisions held: CrowdSec's community blocklist is ~15-50k, a large list subscription a
 *  few 100k; a million (~200 bytes each, ~200 MB) bounds memory against a LAPI gone wrong.
 *  Past it new decisions are dropped (counted in `dropped`) until old ones end. */
export const MAX_DECISIONS = 1_000_000;
/** Ended decisions are swept at most this often (each answer skips them anyway). */
const SWEEP_MS = 60_000;

/** Go's time.Duration text ("3h59m50.1s", "-13.17ms", "500µs") in ms; null if not one. */
export function parseGoDuration(text: string): number | null {
  const m = /^(-?)((?:\d+(?:\.\d+)?(?:h|m|s|ms|us|µs|μs|ns))+)$/.exec(text.trim());
  if (!m) return text.trim() === '0' ? 0 : null;
  const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1, us: 1e-3, µs: 1e-3, μs: 1e-3, ns: 1e-6 };
  let ms = 0;
  for (const part of m[2]!.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|μs|ns)/g)) ms += Number(part[1]) * unit[part[2]!]!;
  return m[1] ? -ms : ms;
}

interface Net {
  v6: boolean;
  bits: number;
  /** The network address, canonical. */
  key: string;
}

function networkOf(value: string): Net | null {
  try {
    let [addr, bits] = ipaddr.parseCIDR(value);
    if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) [addr, bits] = [(addr as ipaddr.IPv6).toIPv4Address(), bits - 96];
    const v6 = addr.kind() === 'ipv6';
    const net = v6 ? ipaddr.IPv6.networkAddressFromCIDR(`${addr.toString()}/${bits}`) : ipaddr.IPv4.networkAddressFromCIDR(`${addr.toString()}/${bits}`);
    return { v6, bits, key: net.toString() };
  } catch {
    return null;
  }
}

const groupKey = (v6: boolean, bits: number) => (v6 ? 1000 : 0) + bits;

export class DecisionSet {
  private readonly byId = new Map<number, CsDecision & { slot: string }>();
  private readonly addresses = new Map<string, CsDecision[]>();
  /** Prefix length (+1000 for IPv6) → network address → decisions. */
  private readonly nets = new Map<number, { v6: boolean; bits: number; map: Map<string, CsDecision[]> }>();
  private lastSweep = 0;
  /** Decisions dropped at the cap since the set was made. */
  dropped = 0;

  constructor(
    private readonly clock: Clock,
    private readonly max = MAX_DECISIONS,
  ) {}

  get size(): number {
    return this.byId.size;
  }

  all(): CsDecision[] {
    const now = this.clock.now();
    return [...this.byId.values()].filter((d) => d.untilMs > now).map(({ slot: _, ...d }) => d);
  }

  apply(delta: CsDelta): void {
    if (delta.reset) this.clear();
    for (const id of delta.remove) this.delete(id);
    for (const d of delta.add) this.add(d);
    const now = this.clock.now();
    if (now - this.lastSweep >= SWEEP_MS) this.sweep(now);
  }

  clear(): void {
    this.byId.clear();
    this.addresses.clear();
    this.nets.clear();
  }

  /** The live decision refusing `ip` that ends last, or null. Never throws. */
  refuses(ip: string): CsRefusal | null {
    if (this.byId.size === 0) return null;
    const now = this.clock.now();
    let best: CsDecision | null = pick(this.addresses.get(ip), now, null);
    const canonical = canonicalIp(ip);
    if (canonical === null) return best && refusal(best);
    if (canonical !== ip) best = pick(this.addresses.get(canonical), now, best);
    if (this.nets.size > 0) {
      const v6 = canonical.includes(':');
      for (const g of this.nets.values()) {
        if (g.v6 !== v6) continue;
        const net = v6 ? ipaddr.IPv6.networkAddressFromCIDR(`${canonical}/${g.bits}`) : ipaddr.IPv4.networkAddressFromCIDR(`${canonical}/${g.bits}`);
        best = pick(g.map.get(net.toString()), now, best);
      }
    }
    return best && refusal(best);
  }

  private add(d: CsDecision): void {
    if (this.byId.has(d.id)) this.delete(d.id);
    if (this.byId.size >= this.max) {
      this.dropped++;
      return;
    }
    let list: CsDecision[] | undefined;
    let slot: string;
    if (d.scope === 'ip') {
      const ip = canonicalIp(d.value);
      if (ip === null) return;
      slot = ip;
      list = this.addresses.get(ip) ?? [];
      this.addresses.set(ip, list);
    } else {
      const net = networkOf(d.value);
      if (!net) return;
      const k = groupKey(net.v6, net.bits);
      const g = this.nets.get(k) ?? { v6: net.v6, bits: net.bits, map: new Map<string, CsDecision[]>() };
      this.nets.set(k, g);
      slot = `${k}|${net.key}`;
      list = g.map.get(net.key) ?? [];
      g.map.set(net.key, list);
    }
    list.push(d);
    this.byId.set(d.id, { ...d, slot });
  }

  private delete(id: number): void {
    const d = this.byId.get(id);
    if (!d) return;
    this.byId.delete(id);
    if (d.scope === 'ip') return void drop(this.addresses, d.slot, id);
    const [k, key] = d.slot.split('|') as [string, string];
    const g = this.nets.get(Number(k));
    if (!g) return;
    drop(g.map, key, id);
    if (g.map.size === 0) this.nets.delete(Number(k));
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    for (const d of [...this.byId.values()]) if (d.untilMs <= now) this.delete(d.id);
  }
}

function drop(map: Map<string, CsDecision[]>, key: string, id: number): void {
  const list = map.get(key)?.filter((x) => x.id !== id);
  if (!list?.length) map.delete(key);
  else map.set(key, list);
}

function pick(list: CsDecision[] | undefined, now: number, best: CsDecision | null): CsDecision | null {
  if (!list) return best;
  for (const d of list) if (d.untilMs > now && (!best || d.untilMs > best.untilMs)) best = d;
  return best;
}

const refusal = (d: CsDecision): CsRefusal => ({ origin: d.origin, scenario: d.scenario, untilMs: d.untilMs });
