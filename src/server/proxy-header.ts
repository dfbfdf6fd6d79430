// PROXY protocol v1/v2 header reader for listeners behind a load balancer (haproxy's
// proxy-protocol.txt). ProxyHeaderReader is pure and incremental: bytes in, a verdict out; no
// sockets, no timers. readProxyHeader() feeds it from a connection's first bytes.
// proxy-protocol-js decodes; framing, byte bounds and address validation are ours. Addresses
// are another host's data: only a client's network address gets through (checkEndpoint).
import net, { type Socket } from 'node:net';
import type { Logger } from '../logging/logger.js';
import ipaddr from 'ipaddr.js';
import { Command, IPv4ProxyAddress, IPv6ProxyAddress, TransportProtocol, V1ProxyProtocol, V2ProxyProtocol } from 'proxy-protocol-js';
import { peerAddress, peerOf, type IpAddress } from '../backend/client-info.js';
import { PROXY_V1_MAX_BYTES, PROXY_V2_MAX_BYTES } from '../bounds.js';

export interface Endpoint {
  ip: string;
  port: number;
}

export type ProxyHeader =
  /** A relayed connection: who connected to the load balancer, and where. */
  | { kind: 'proxy'; version: 1 | 2; source: Endpoint; destination: Endpoint }
  /** v2 LOCAL, v1 UNKNOWN, v2 AF_UNSPEC: the balancer's own connection (a health check);
   *  the spec says to use the connection's real endpoints. */
  | { kind: 'local'; version: 1 | 2 };

export type ProxyHeaderStep =
  | { kind: 'more' }
  | { kind: 'done'; header: ProxyHeader; rest: Buffer }
  | { kind: 'invalid'; reason: string };

const V1_SIGNATURE = Buffer.from('PROXY ', 'latin1');
const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
/** Fixed part of a v2 header: signature, version/command, family/transport, length. */
const V2_FIXED_BYTES = 16;

const isPrefixOf = (got: Buffer, signature: Buffer) => signature.subarray(0, Math.min(got.length, signature.length)).equals(got.subarray(0, signature.length));

const port = (p: number) => Number.isInteger(p) && p >= 0 && p <= 65535;

/** v1 ports are decimal without sign; more than 5 digits can only be garbage. */
const V1_PORT = /^\d{1,5}$/;

/**
 * One end of the relayed connection in canonicalIp form, or why the header is refused. Both
 * ends are checked: both reach logs and the backend (ID x-connected-ip, XCLIENT DESTADDR,
 * PROXY out). IPv4-mapped IPv6 is the IPv4 client (normalised); a zone id and the
 * unspecified, broadcast, multicast and IPv4-compatible forms are refused (peerAddress, whose
 * rules client-info applies again before the backend). Loopback is refused too: it is the
 * balancer's own host, which sends LOCAL (v1 UNKNOWN) for its own connections. Believed, it
 * would show the backend this host (mailgate's own address, which backends tend to trust:
 * Dovecot's login_trusted_networks) and fall under limits.trustedNetworks where those hold
 * 127.0.0.1; and a balancer that reports every client as loopback (a TLS terminator before
 * it without PROXY) would make one unthrottled client of all, where refusal is loud.
 * Link-local (without a zone), private and reserved addresses are real clients.
 */
function checkEndpoint(what: string, a: IpAddress | string, p: number): Endpoint | string {
  const addr = typeof a === 'string' ? a : peerOf(a);
  if (typeof addr === 'string') return `${what}: ${addr}`;
  if (addr.range() === 'loopback') return `${what}: a loopback address, the balancer's own host`;
  if (!port(p)) return `${what}: port out of range`;
  return { ip: addr.toString(), port: p };
}

function relayed(version: 1 | 2, source: Endpoint | string, destination: Endpoint | string): ProxyHeader | string {
  if (typeof source === 'string') return source;
  if (typeof destination === 'string') return destination;
  return { kind: 'proxy', version, source, destination };
}

function parseV1(line: string): ProxyHeader | string {
  // The line is already bounded and cut at its CRLF; only printable ASCII may be in it.
  if (!/^[\x20-\x7e]*$/.test(line)) return 'v1 header with control or non-ASCII bytes';
  if (line === 'PROXY UNKNOWN' || line.startsWith('PROXY UNKNOWN ')) return { kind: 'local', version: 1 };
  let parsed: V1ProxyProtocol;
  try {
    parsed = V1ProxyProtocol.parse(`${line}\r\n`);
  } catch {
    return 'malformed v1 header';
  }
  const fields = line.split(' ');
  if (fields.length !== 6 || !V1_PORT.test(fields[4]!) || !V1_PORT.test(fields[5]!)) return 'malformed v1 header';
  const family = parsed.inetProtocol === 'TCP4' ? 4 : parsed.inetProtocol === 'TCP6' ? 6 : 0;
  const { source, destination } = parsed;
  if (!family || net.isIP(source.ipAddress) !== family || net.isIP(destination.ipAddress) !== family) return 'v1 addresses do not match their family';
  // The spec's v1 addresses are hex groups or dotted quads: a zone id is not in that grammar.
  const end = (what: string, peer: { ipAddress: string; port: number }) => checkEndpoint(what, peerAddress(peer.ipAddress, 'refuse'), peer.port);
  return relayed(1, end('v1 source', source), end('v1 destination', destination));
}

function parseV2(header: Buffer): ProxyHeader | string {
  let parsed: V2ProxyProtocol;
  try {
    parsed = V2ProxyProtocol.parse(header);
  } catch {
    return 'malformed v2 header';
  }
  if (parsed.command === Command.LOCAL) return { kind: 'local', version: 2 };
  const a = parsed.proxyAddress;
  // TLVs (the bytes after the addresses, inside the length) are skipped unread, and never
  // forwarded (client-info builds headers without them): the client is its source address
  // and nothing else. No client-certificate identity is taken from PP2_TYPE_SSL
  // (PP2_SUBTYPE_SSL_CN …) whatever its verify field says (Dovecot 2.4.4 fixed believing one
  // whose verify reports failure); logins are the backend's verdict alone.
  if (a instanceof IPv4ProxyAddress || a instanceof IPv6ProxyAddress) {
    if (parsed.transportProtocol !== TransportProtocol.STREAM) return 'v2 header for a non-stream transport';
    const end = (what: string, bytes: number[], p: number) => checkEndpoint(what, ipaddr.fromByteArray(bytes), p);
    return relayed(2, end('v2 source', a.sourceAddress.address, a.sourcePort), end('v2 destination', a.destinationAddress.address, a.destinationPort));
  }
  // AF_UNSPEC: "the receiver must ignore the address information" and use its own.
  if (parsed.addressFamilyType === 0) return { kind: 'local', version: 2 };
  return 'v2 header for an unsupported address family (AF_UNIX)';
}

/** Reads exactly one header from the first bytes of a connection; bytes after it are
 *  returned untouched (the protocol's first command or a TLS ClientHello). */
export class ProxyHeaderReader {
  private buf: Buffer = Buffer.alloc(0);
  private finished = false;

  push(chunk: Buffer): ProxyHeaderStep {
    if (this.finished) return { kind: 'invalid', reason: 'header already read' };
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const step = this.step();
    if (step.kind !== 'more') {
      this.finished = true;
      this.buf = Buffer.alloc(0);
    }
    return step;
  }

  private step(): ProxyHeaderStep {
    const b = this.buf;
    if (b.length === 0) return { kind: 'more' };
    if (isPrefixOf(b, V1_SIGNATURE)) {
      const end = b.indexOf('\r\n', 0, 'latin1');
      if (end < 0 || end + 2 > PROXY_V1_MAX_BYTES) {
        return b.length >= PROXY_V1_MAX_BYTES ? { kind: 'invalid', reason: `v1 header longer than ${PROXY_V1_MAX_BYTES} bytes` } : { kind: 'more' };
      }
      const r = parseV1(b.subarray(0, end).toString('latin1'));
      return typeof r === 'string' ? { kind: 'invalid', reason: r } : { kind: 'done', header: r, rest: b.subarray(end + 2) };
    }
    if (isPrefixOf(b, V2_SIGNATURE)) {
      if (b.length < V2_FIXED_BYTES) return { kind: 'more' };
      if (b[12]! >> 4 !== 2) return { kind: 'invalid', reason: 'unsupported v2 version' };
      const total = V2_FIXED_BYTES + b.readUInt16BE(14);
      if (total > PROXY_V2_MAX_BYTES) return { kind: 'invalid', reason: `v2 header longer than ${PROXY_V2_MAX_BYTES} bytes` };
      if (b.length < total) return { kind: 'more' };
      const r = parseV2(b.subarray(0, total));
      return typeof r === 'string' ? { kind: 'invalid', reason: r } : { kind: 'done', header: r, rest: b.subarray(total) };
    }
    return { kind: 'invalid', reason: 'no PROXY header' };
  }
}

/** Reads the header off a connection (the session's deadline bounds the wait). The socket is
 *  left paused, with the bytes after the header put back for whoever reads next (the protocol,
 *  or the TLS handshake on implicit listeners). Null: the connection ended first. */
export function readProxyHeader(socket: Socket): Promise<Exclude<ProxyHeaderStep, { kind: 'more' }> | null> {
  const reader = new ProxyHeaderReader();
  return new Promise((resolve) => {
    const onData = (chunk: Buffer) => {
      const r = reader.push(chunk);
      if (r.kind !== 'more') done(r);
    };
    const done = (r: Exclude<ProxyHeaderStep, { kind: 'more' }> | null) => {
      socket.off('data', onData).off('end', onEnd).off('close', onEnd);
      socket.pause();
      if (r?.kind === 'done' && r.rest.length) socket.unshift(r.rest);
      resolve(r);
    };
    const onEnd = () => done(null);
    socket.on('data', onData).once('end', onEnd).once('close', onEnd);
  });
}

/** A listener behind a load balancer: the first bytes must be a PROXY header from a trusted
 *  peer. Null (logged): anything else, and the connection is to be cut without a word. */
export async function acceptProxyHeader(socket: Socket, trustedPeer: boolean, log: () => Logger): Promise<ProxyHeader | null> {
  // A stranger is internet noise (info); a trusted balancer without a valid header is a
  // misconfiguration someone must see (warn).
  const refuse = (reason: string, level: 'info' | 'warn' = 'warn') => {
    log()[level]({ event: 'proxy.refused', reason }, 'connection closed: no acceptable PROXY header');
    return null;
  };
  if (!trustedPeer) return refuse('peer not in limits.trustedProxies', 'info');
  const step = await readProxyHeader(socket);
  if (!step) return refuse('connection ended before the header');
  return step.kind === 'invalid' ? refuse(step.reason) : step.header;
}
