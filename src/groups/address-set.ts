// A set of addresses and networks, as a group's cidrs or file give it: sorted, merged ranges
// searched in O(log n), so a Tor exit list or a DROP file costs a login what a short list
// does. And the parser for the files operators download: one address or CIDR a line, the
// Tor project's exit lists and Spamhaus DROP (text or JSON lines) as distributed. Pure.
import ipaddr from 'ipaddr.js';
import { parseIp } from '../config/address.js';

type Range = [start: bigint, end: bigint];

const V4_BITS = 32n;
const V6_BITS = 128n;

function toBig(bytes: number[]): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

/** An address or CIDR as a range of its family; null if it is neither. */
function parseRange(text: string): { v6: boolean; range: Range } | null {
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  let bits: number;
  try {
    if (text.includes('/')) [addr, bits] = ipaddr.parseCIDR(text);
    else {
      addr = ipaddr.parse(text);
      bits = addr.kind() === 'ipv4' ? 32 : 128;
    }
  } catch {
    return null;
  }
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
    addr = (addr as ipaddr.IPv6).toIPv4Address();
    bits -= 96;
  }
  const v6 = addr.kind() === 'ipv6';
  const width = v6 ? V6_BITS : V4_BITS;
  const host = width - BigInt(bits);
  const start = (toBig(addr.toByteArray()) >> host) << host;
  return { v6, range: [start, start + (1n << host) - 1n] };
}

/** Sorts and merges overlapping or adjacent ranges. */
function merge(ranges: Range[]): Range[] {
  ranges.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: Range[] = [];
  for (const r of ranges) {
    const last = out.at(-1);
    if (last && r[0] <= last[1] + 1n) {
      if (r[1] > last[1]) last[1] = r[1];
    } else out.push([r[0], r[1]]);
  }
  return out;
}

function within(ranges: readonly Range[], n: bigint): boolean {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = ranges[mid]!;
    if (n < r[0]) hi = mid - 1;
    else if (n > r[1]) lo = mid + 1;
    else return true;
  }
  return false;
}

export class AddressSet {
  private readonly v4: Range[];
  private readonly v6: Range[];
  /** Entries as given (before merging), for the admin API's size. */
  readonly entries: number;

  constructor(items: readonly string[]) {
    const v4: Range[] = [];
    const v6: Range[] = [];
    for (const item of items) {
      const p = parseRange(item);
      if (!p) throw new Error(`not an address or CIDR: ${JSON.stringify(item.slice(0, 64))}`);
      (p.v6 ? v6 : v4).push(p.range);
    }
    this.v4 = merge(v4);
    this.v6 = merge(v6);
    this.entries = items.length;
  }

  has(address: string): boolean {
    const a = parseIp(address);
    if (a === null) return false;
    const n = toBig(a.toByteArray());
    return within(a.kind() === 'ipv4' ? this.v4 : this.v6, n);
  }
}

/** The addresses of a list file, or the first line that is none (1-based). Accepts: one
 *  address or CIDR a line with "#" or ";" comments (plain lists, the Tor bulk exit list,
 *  Spamhaus DROP text); `ExitAddress <ip> <date>` lines of the Tor exit-addresses format
 *  (its other lines are skipped); JSON lines with a "cidr" member (Spamhaus DROP JSON; its
 *  metadata line is skipped). */
export function parseListFile(text: string): { items: string[] } | { line: number; why: string } {
  const items: string[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '' || raw.startsWith('#') || raw.startsWith(';')) continue;
    let token: string | undefined;
    if (raw.startsWith('{')) {
      let obj: unknown;
      try {
        obj = JSON.parse(raw);
      } catch {
        return { line: i + 1, why: 'not valid JSON' };
      }
      const cidr = (obj as { cidr?: unknown }).cidr;
      if (cidr === undefined) continue; // DROP's metadata line
      if (typeof cidr !== 'string') return { line: i + 1, why: '"cidr" is not a string' };
      token = cidr;
    } else {
      const words = raw.split(/[\s;#]+/);
      if (words[0] === 'ExitAddress') token = words[1];
      else if (/^(ExitNode|Published|LastStatus)$/.test(words[0]!)) continue;
      else token = words[0];
    }
    if (!token || !parseRange(token)) return { line: i + 1, why: 'not an address or CIDR' };
    items.push(token);
  }
  return { items };
}
