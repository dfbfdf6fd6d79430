// How a backend is told who the client is: a PROXY v1/v2 header (built by proxy-protocol-js),
// IMAP ID x-* fields (RFC 2971, as Dovecot names them) or XCLIENT (Postfix's XCLIENT_README,
// xtext RFC 3461 §4). Pure. Every value is re-validated here, so no client byte reaches a line
// and no odd spelling of an address reaches the backend (peerAddress, shared with the PROXY reader).
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import { Command, INETProtocol, IPv4Address, IPv4ProxyAddress, IPv6Address, IPv6ProxyAddress, Peer, TransportProtocol, UnspecProxyAddress, V1ProxyProtocol, V2ProxyProtocol } from 'proxy-protocol-js';
import { ipv4Octets, plainIpv4 } from '../config/address.js';
import { MailgateError } from '../errors.js';
import type { ClientAddress } from './types.js';

export type ProxyVersion = 'v1' | 'v2';

/** Dovecot keeps at most 64 characters of a forwarded session id (LOGIN_MAX_SESSION_ID_LEN). */
const SESSION_ID = /^[A-Za-z0-9]{1,64}$/;

export type IpAddress = ipaddr.IPv4 | ipaddr.IPv6;

interface Checked {
  ip: IpAddress;
  port: number;
  localIp: IpAddress;
  localPort: number;
  sessionId: string;
}

/** Ranges no TCP connection comes from or goes to (RFC 1122 §3.2.1.3, RFC 4291 §2.5.2, §2.7). */
const NOT_A_PEER: Partial<Record<string, string>> = {
  unspecified: 'an unspecified address (0.0.0.0/8, ::): no connection comes from it',
  broadcast: 'a broadcast address: TCP is unicast',
  multicast: 'a multicast address: TCP is unicast',
};
const COMPATIBLE = 'an IPv4-compatible IPv6 address (deprecated, RFC 4291 §2.5.5.1)';

/** `a` as the address it is (IPv4-mapped IPv6 is the IPv4 client), or why no TCP peer can have
 *  it. The deprecated IPv4-compatible form ::a.b.c.d (RFC 4291 §2.5.5.1) is refused, not
 *  guessed at: no stack sends from it, and ipaddr.js and inet_pton read its text differently. */
export function peerOf(a: IpAddress): IpAddress | string {
  const addr = a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress() ? (a as ipaddr.IPv6).toIPv4Address() : a;
  const range = addr.range();
  const why = NOT_A_PEER[range];
  if (why) return why;
  if (range !== 'loopback' && addr.kind() === 'ipv6' && addr.toByteArray().slice(0, 12).every((b) => b === 0)) return COMPATIBLE;
  return addr;
}

/** peerOf for an IPv4 address in canonical text (plainIpv4), without ipaddr.js's parser and
 *  range table: asked for both ends of every forwarded login (issue 22). ipaddr.js tries
 *  unspecified (0/8), broadcast and multicast (224/4) first, so these three decide alone. */
function ipv4Peer(v4: string): IpAddress | string {
  const octets = ipv4Octets(v4);
  const [first, b, c, d] = octets;
  if (first === 0) return NOT_A_PEER.unspecified!;
  if ((first & b & c & d) === 255) return NOT_A_PEER.broadcast!;
  if (first >= 224 && first <= 239) return NOT_A_PEER.multicast!;
  return new ipaddr.IPv4(octets);
}

/** ipaddr.js reads "::1.2.3.4" as IPv4-mapped (::ffff:1.2.3.4); inet_pton, as Dovecot and
 *  haproxy use it, as IPv4-compatible ::102:304. */
const COMPATIBLE_SPELLING = /^::\d+\.\d+\.\d+\.\d+$/;

/**
 * A peer's address from text, or why it cannot be one. Only what net.isIP accepts (no
 * "127.1", "0x7f.1" or "2130706433", which ipaddr.js would read as 127.0.0.1). A zone id
 * ("%eth0") names an interface of the host that wrote it: `strip` for this host's own socket
 * addresses (Node adds one to link-local peers; the backend cannot use it and Dovecot's
 * inet_pton refuses it), `refuse` for text from another host (a PROXY header).
 */
export function peerAddress(text: string, zone: 'strip' | 'refuse'): IpAddress | string {
  const v4 = plainIpv4(text);
  if (v4 !== null) return ipv4Peer(v4);
  if (net.isIP(text) === 0) return 'not an IP address';
  const at = text.indexOf('%');
  if (at >= 0 && zone === 'refuse') return 'an address with a zone id, which names an interface of the sender\'s host';
  const bare = at >= 0 ? text.slice(0, at) : text;
  if (COMPATIBLE_SPELLING.test(bare)) return COMPATIBLE;
  let parsed: IpAddress;
  try {
    parsed = ipaddr.parse(bare);
  } catch {
    return 'not an IP address';
  }
  return peerOf(parsed);
}

function address(s: string, what: string): IpAddress {
  const a = peerAddress(s, 'strip');
  if (typeof a === 'string') throw new MailgateError('MG_BACKEND_PROTOCOL', `cannot forward the client: ${what} is ${a}`);
  return a;
}

function portOf(p: number, what: string): number {
  if (!Number.isInteger(p) || p < 0 || p > 65535) throw new MailgateError('MG_BACKEND_PROTOCOL', `cannot forward the client: ${what} is not a port`);
  return p;
}

function check(c: ClientAddress): Checked {
  if (!SESSION_ID.test(c.sessionId)) throw new MailgateError('MG_BACKEND_PROTOCOL', 'cannot forward the client: bad session id');
  return { ip: address(c.ip, 'client address'), port: portOf(c.port, 'client port'), localIp: address(c.localIp, 'local address'), localPort: portOf(c.localPort, 'local port'), sessionId: c.sessionId };
}

/** Both ends in one family: an IPv4 end next to an IPv6 one becomes IPv4-mapped IPv6. */
function sameFamily(a: IpAddress, b: IpAddress): [ipaddr.IPv4, ipaddr.IPv4] | [ipaddr.IPv6, ipaddr.IPv6] {
  if (a.kind() === 'ipv4' && b.kind() === 'ipv4') return [a as ipaddr.IPv4, b as ipaddr.IPv4];
  const six = (x: IpAddress) => (x.kind() === 'ipv4' ? (x as ipaddr.IPv4).toIPv4MappedAddress() : (x as ipaddr.IPv6));
  return [six(a), six(b)];
}

/** The PROXY header for a relayed client; with no client (a capability probe, mailgate's own
 *  connection) v1 "UNKNOWN" / v2 LOCAL, which tell the backend to use the real endpoints. */
export function proxyHeader(version: ProxyVersion, client: ClientAddress | null): Buffer {
  if (!client) {
    if (version === 'v1') return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
    return Buffer.from(new V2ProxyProtocol(Command.LOCAL, TransportProtocol.UNSPEC, new UnspecProxyAddress()).build());
  }
  const c = check(client);
  const [src, dst] = sameFamily(c.ip, c.localIp);
  const v4 = src.kind() === 'ipv4';
  if (version === 'v1') {
    const proto = v4 ? INETProtocol.TCP4 : INETProtocol.TCP6;
    return Buffer.from(new V1ProxyProtocol(proto, new Peer(src.toString(), c.port), new Peer(dst.toString(), c.localPort)).build(), 'latin1');
  }
  const addr = v4
    ? new IPv4ProxyAddress(IPv4Address.createFrom(src.toByteArray()), c.port, IPv4Address.createFrom(dst.toByteArray()), c.localPort)
    : new IPv6ProxyAddress(IPv6Address.createFrom(src.toByteArray()), c.port, IPv6Address.createFrom(dst.toByteArray()), c.localPort);
  return Buffer.from(new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM, addr).build());
}

/** An IMAP quoted string (RFC 9051 §4.3) of a value we validated: no quote, backslash or CTL. */
function quoted(v: string): string {
  if (!/^[\x20-\x21\x23-\x5b\x5d-\x7e]*$/.test(v)) throw new MailgateError('MG_BACKEND_PROTOCOL', 'cannot forward the client: value not quotable');
  return `"${v}"`;
}

/** The ID fields Dovecot's imap-login believes from its login_trusted_networks, each written
 *  as its quoted name and a space, once: the values follow per login. */
const ID_FIELDS = ['x-originating-ip', 'x-originating-port', 'x-connected-ip', 'x-connected-port', 'x-session-id'].map((k) => `${quoted(k)} `);

/** IMAP ID with those fields. The values are what check() let through (addresses as ipaddr.js
 *  writes them, ports, an alphanumeric session id), quoted all the same. */
export function imapIdCommand(tag: string, client: ClientAddress): string {
  const c = check(client);
  const values = [c.ip.toString(), String(c.port), c.localIp.toString(), String(c.localPort), c.sessionId];
  let out = `${tag} ID (`;
  for (let i = 0; i < values.length; i++) out += `${i > 0 ? ' ' : ''}${ID_FIELDS[i]}${quoted(values[i]!)}`;
  return `${out})\r\n`;
}

/** A client's EHLO/HELO name as its machine checked it (printable ASCII, no space, at most
 *  255 octets, RFC 5321 §4.5.3.1.2 for a domain), checked again before it reaches a line. */
export function isHeloName(name: string): boolean {
  return /^[\x21-\x7e]{1,255}$/.test(name);
}

/** RFC 3461 §4 xtext: "!" to "~" except "+" and "=" as themselves, everything else "+XX". */
export function xtext(s: string): string {
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    out += b >= 0x21 && b <= 0x7e && b !== 0x2b && b !== 0x3d ? String.fromCharCode(b) : `+${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * An XCLIENT command. `offered`: the attribute names the server listed (SMTP "XCLIENT ADDR
 * PORT …"), or null when it only said it supports XCLIENT (POP3 CAPA, Dovecot's greeting
 * "[XCLIENT]"): then ADDR and PORT only. SMTP writes IPv6 as "IPV6:…" (Postfix requires it,
 * Dovecot accepts both); Dovecot's POP3 XCLIENT takes the bare address. `helo`: the client's
 * EHLO name, sent as HELO where the server lists it.
 */
export function xclientCommand(client: ClientAddress, offered: readonly string[] | null, style: 'smtp' | 'pop3', helo?: string): string {
  const c = check(client);
  const has = (name: string) => (offered === null ? name === 'ADDR' || name === 'PORT' : offered.some((a) => a.toUpperCase() === name));
  if (!has('ADDR')) throw new MailgateError('MG_BACKEND_PROTOCOL', 'backend XCLIENT does not take ADDR');
  const ip = (a: IpAddress) => (style === 'smtp' && a.kind() === 'ipv6' ? `IPV6:${a.toString()}` : a.toString());
  const attrs: [string, string][] = [['ADDR', ip(c.ip)]];
  if (has('PORT')) attrs.push(['PORT', String(c.port)]);
  if (has('DESTADDR')) attrs.push(['DESTADDR', ip(c.localIp)]);
  if (has('DESTPORT')) attrs.push(['DESTPORT', String(c.localPort)]);
  if (has('SESSION')) attrs.push(['SESSION', c.sessionId]);
  if (helo !== undefined && has('HELO')) {
    if (!isHeloName(helo)) throw new MailgateError('MG_BACKEND_PROTOCOL', 'cannot forward the client: bad EHLO name');
    attrs.push(['HELO', helo]);
  }
  return `XCLIENT ${attrs.map(([k, v]) => `${k}=${xtext(v)}`).join(' ')}\r\n`;
}
