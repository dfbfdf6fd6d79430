// PROXY protocol v2 headers as a balancer sends them (haproxy's proxy-protocol.txt §2.2),
// built byte by byte for tests of the reader, with TLVs (§2.2.7). Pure.
import ipaddr from 'ipaddr.js';

const SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/** A v2 PROXY header for a TCP connection. Addresses as ipaddr.js parses them, unprocessed
 *  (so "::ffff:1.2.3.4" is sent as its IPv6 bytes); an IPv4 destination beside an IPv6
 *  source is sent IPv4-mapped, as a dual-stack balancer would. `tlvs` follow the addresses. */
export function v2Header(src: string, srcPort: number, dst: string, dstPort: number, tlvs: Buffer = Buffer.alloc(0)): Buffer {
  const s = ipaddr.parse(src);
  const parsed = ipaddr.parse(dst);
  const d = s.kind() === 'ipv6' && parsed.kind() === 'ipv4' ? (parsed as ipaddr.IPv4).toIPv4MappedAddress() : parsed;
  const ports = Buffer.from([srcPort >> 8, srcPort & 0xff, dstPort >> 8, dstPort & 0xff]);
  const body = Buffer.concat([Buffer.from(s.toByteArray()), Buffer.from(d.toByteArray()), ports, tlvs]);
  // Version 2, PROXY; TCP over IPv4 (0x11) or IPv6 (0x21); the length of what follows.
  return Buffer.concat([SIGNATURE, Buffer.from([0x21, s.kind() === 'ipv4' ? 0x11 : 0x21, body.length >> 8, body.length & 0xff]), body]);
}

/** PP2_TYPE_SSL (0x20) as a TLS-terminating balancer sends it: client flags PP2_CLIENT_SSL |
 *  CERT_CONN | CERT_SESS, `verify` (0 only when the client certificate was verified), and a
 *  PP2_SUBTYPE_SSL_CN (0x22) sub-TLV naming the certificate's common name. */
export function sslTlv(verify: number, cn: string): Buffer {
  const verifyField = Buffer.alloc(4);
  verifyField.writeUInt32BE(verify);
  const name = Buffer.from(cn, 'latin1');
  const value = Buffer.concat([Buffer.from([0x07]), verifyField, Buffer.from([0x22, name.length >> 8, name.length & 0xff]), name]);
  return Buffer.concat([Buffer.from([0x20, value.length >> 8, value.length & 0xff]), value]);
}
