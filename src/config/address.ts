// Parsing of "host:port" listen/connect strings and CIDR lists for the config schema, one
// spelling per address, CIDR matching. Pure: no sockets.
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

export interface HostPort {
  host: string;
  port: number;
}

/** "0.0.0.0:1143", "[::]:1143", "localhost:143" → {host, port}; null when malformed. */
export function parseHostPort(input: string): HostPort | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(input);
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null; // port 0: any free port (tests)
  const host = m[1] ?? m[2]!;
  if (m[1] !== undefined && !ipaddr.IPv6.isValid(host)) return null;
  return { host, port };
}

export function isValidCidr(input: string): boolean {
  try {
    ipaddr.parseCIDR(input);
    return true;
  } catch {
    return ipaddr.isValid(input);
  }
}

export function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  if (!ipaddr.isValid(host)) return false;
  const addr = ipaddr.process(host);
  return addr.range() === 'loopback';
}

/** Whether input[from..] is dotted-quad IPv4 in canonical form: four decimal octets of at
 *  most 255, no leading zero, nothing else (what sockets report). Only such text is its own
 *  canonical spelling; ipaddr.js also reads "01.2.3.4", "0x7f.1.1.1" or "127.1". */
export function isPlainIpv4(input: string, from = 0): boolean {
  const end = input.length;
  let i = from;
  for (let part = 0; part < 4; part++) {
    if (part > 0) {
      if (i >= end || input.charCodeAt(i) !== 0x2e) return false;
      i++;
    }
    const start = i;
    let value = 0;
    while (i < end && i - start < 3) {
      const d = input.charCodeAt(i) - 0x30;
      if (d < 0 || d > 9) break;
      value = value * 10 + d;
      i++;
    }
    const digits = i - start;
    if (digits === 0 || value > 255 || (digits > 1 && input.charCodeAt(start) === 0x30)) return false;
  }
  return i === end;
}

/** The four octets of a canonical dotted quad (isPlainIpv4 text only). */
export function ipv4Octets(v4: string): [number, number, number, number] {
  const o: [number, number, number, number] = [0, 0, 0, 0];
  for (let i = 0, k = 0; i < v4.length; i++) {
    const c = v4.charCodeAt(i);
    if (c === 0x2e) k++;
    else o[k] = o[k]! * 10 + c - 0x30;
  }
  return o;
}

/** The same as one unsigned 32-bit number. */
export function ipv4Int(v4: string): number {
  const [a, b, c, d] = ipv4Octets(v4);
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

/** The netmask of an IPv4 prefix length (0 to 32), unsigned. */
export const ipv4Mask = (bits: number): number => (bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0);

/** How a dual-stack socket spells an IPv4 client. */
const MAPPED = '::ffff:';

/** The IPv4 address of a socket's text for an IPv4 peer ("a.b.c.d" or "::ffff:a.b.c.d", each
 *  in canonical form: isPlainIpv4), as canonicalIp spells it; null for any other text. */
export function plainIpv4(input: string): string | null {
  if (isPlainIpv4(input)) return input;
  return input.startsWith(MAPPED) && isPlainIpv4(input, MAPPED.length) ? input.slice(MAPPED.length) : null;
}

/** An address in one spelling: IPv4-mapped IPv6 (::ffff:1.2.3.4, what a dual-stack socket
 *  reports for IPv4 clients) becomes IPv4; IPv6 is compressed. Null when not an address.
 *  Asked twice per connection: the two spellings sockets give for IPv4 answer without
 *  ipaddr.js's parser (issue 22: 1.4 -> 0.05 µs a call for IPv4, measured). */
export function canonicalIp(input: string | undefined): string | null {
  if (!input) return null;
  const v4 = plainIpv4(input);
  if (v4 !== null) return v4;
  if (!ipaddr.isValid(input)) return null;
  return ipaddr.process(input).toString();
}

/** A matcher for a CIDR list (as validated by isValidCidr); IPv4-mapped ranges and
 *  addresses compare as IPv4. */
export function cidrMatcher(list: readonly string[]): (address: string | undefined) => boolean {
  const ranges = list.map((cidr): [ipaddr.IPv4 | ipaddr.IPv6, number] => {
    if (!cidr.includes('/')) {
      const a = ipaddr.process(cidr);
      return [a, a.kind() === 'ipv4' ? 32 : 128];
    }
    const [net, bits] = ipaddr.parseCIDR(cidr);
    if (net.kind() === 'ipv6' && (net as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) return [(net as ipaddr.IPv6).toIPv4Address(), bits - 96];
    return [net, bits];
  });
  // An empty list (the default for every list) answers without parsing the address: the
  // trusted networks are asked on every login.
  if (ranges.length === 0) return () => false;
  // An IPv4 socket address is matched as a number against the IPv4 ranges (an IPv6 range
  // never holds one): the lists are asked at every connection and login (issue 22).
  const v4 = ranges.flatMap(([net, bits]) => (net.kind() === 'ipv4' ? [{ net: (ipv4Int(net.toString()) & ipv4Mask(bits)) >>> 0, mask: ipv4Mask(bits) }] : []));
  return (address) => {
    const plain = address ? plainIpv4(address) : null;
    if (plain !== null) {
      const n = ipv4Int(plain);
      return v4.some((r) => ((n & r.mask) >>> 0) === r.net);
    }
    if (!address || !ipaddr.isValid(address)) return false;
    const a = ipaddr.process(address);
    return ranges.some(([net, bits]) => net.kind() === a.kind() && a.match(net, bits));
  };
}

/** An address parsed, IPv4-mapped IPv6 as IPv4; null when not an address. node:net's isIP
 *  first: ipaddr.js's own validity checks cost microseconds more on IPv6 (measured). */
export function parseIp(address: string): ipaddr.IPv4 | ipaddr.IPv6 | null {
  const family = isIP(address);
  if (family === 4) return ipaddr.IPv4.parse(address);
  if (family !== 6) return null;
  const a = ipaddr.IPv6.parse(address);
  return a.isIPv4MappedAddress() ? a.toIPv4Address() : a;
}

/** ipaddr.js's names of the ranges that are never a network's public address (RFC 1918,
 *  CGNAT 100.64/10, loopback, link-local, unique local fc00::/7, unspecified, multicast,
 *  broadcast): never sent to a DNS blocklist, in no ASN and no country. The TEST-NETs and
 *  2001:db8::/32 are not among them (no real list or database has them; tests use them). */
const LOCAL_RANGES = new Set(['private', 'carrierGradeNat', 'loopback', 'linkLocal', 'uniqueLocal', 'unspecified', 'multicast', 'broadcast']);

/** Whether a parsed address is local in that sense. */
export const isLocal = (a: ipaddr.IPv4 | ipaddr.IPv6): boolean => LOCAL_RANGES.has(a.range());

/** The same for an address string (unparseable input counts as local: nobody's public
 *  address). */
export function isLocalAddress(address: string): boolean {
  const a = parseIp(address);
  return a === null || isLocal(a);
}
