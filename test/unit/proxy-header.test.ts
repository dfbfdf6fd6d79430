// Unit tests for the PROXY header reader (inbound) and the identity builders (outbound): every
// input twice, as one chunk and byte by byte; headers we build are read back by our reader.
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { imapIdCommand, peerAddress, peerOf, proxyHeader, xclientCommand, xtext } from '../../src/backend/client-info.js';
import { PROXY_V1_MAX_BYTES, PROXY_V2_MAX_BYTES } from '../../src/bounds.js';
import type { ClientAddress } from '../../src/backend/types.js';
import { sslTlv, v2Header } from '../helpers/proxy-bytes.js';
import { ProxyHeaderReader, type ProxyHeaderStep } from '../../src/server/proxy-header.js';

/** Feeds the input whole and byte by byte; both must give the same verdict, which is returned. */
function read(input: Buffer | string): ProxyHeaderStep {
  const buf = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
  const whole = new ProxyHeaderReader().push(buf);
  const r = new ProxyHeaderReader();
  let bytewise: ProxyHeaderStep = { kind: 'more' };
  for (let i = 0; i < buf.length && bytewise.kind === 'more'; i++) bytewise = r.push(buf.subarray(i, i + 1));
  // Byte by byte the rest arrives after the verdict, so only the verdict is compared.
  const strip = (s: ProxyHeaderStep) => (s.kind === 'done' ? { ...s, rest: undefined } : s);
  expect(strip(bytewise)).toEqual(strip(whole));
  return whole;
}

const v2 = (verCmd: number, famProto: number, body: Buffer) => Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from([verCmd, famProto, body.length >> 8, body.length & 0xff]), body]);
const v4body = Buffer.from([203, 0, 113, 7, 192, 0, 2, 1, 0x9c, 0x40, 0x00, 0x8f]); // 203.0.113.7:40000 -> 192.0.2.1:143

describe('PROXY header reader: v1', () => {
  it('reads TCP4 and TCP6 headers and leaves the bytes after them', () => {
    expect(read('PROXY TCP4 203.0.113.7 192.0.2.1 40000 143\r\na NOOP\r\n')).toEqual({
      kind: 'done',
      header: { kind: 'proxy', version: 1, source: { ip: '203.0.113.7', port: 40000 }, destination: { ip: '192.0.2.1', port: 143 } },
      rest: Buffer.from('a NOOP\r\n'),
    });
    const six = read('PROXY TCP6 2001:db8::7 2001:db8::1 40000 993\r\n');
    expect(six).toMatchObject({ kind: 'done', header: { source: { ip: '2001:db8::7' }, destination: { ip: '2001:db8::1', port: 993 } }, rest: Buffer.alloc(0) });
  });

  it('an IPv4-mapped IPv6 source is the IPv4 address', () => {
    expect(read('PROXY TCP6 ::ffff:203.0.113.7 2001:db8::1 1 2\r\n')).toMatchObject({ header: { source: { ip: '203.0.113.7' } } });
  });

  it('UNKNOWN (with or without addresses) means: use the connection itself', () => {
    expect(read('PROXY UNKNOWN\r\n')).toMatchObject({ kind: 'done', header: { kind: 'local', version: 1 } });
    expect(read('PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\nx')).toMatchObject({ kind: 'done', header: { kind: 'local' }, rest: Buffer.from('x') });
  });

  it.each([
    ['a family that does not match the addresses', 'PROXY TCP4 2001:db8::7 192.0.2.1 1 2\r\n'],
    ['a host name', 'PROXY TCP4 localhost 192.0.2.1 1 2\r\n'],
    ['an address out of range', 'PROXY TCP4 999.0.0.1 192.0.2.1 1 2\r\n'],
    ['a port over 65535', 'PROXY TCP4 203.0.113.7 192.0.2.1 70000 2\r\n'],
    ['a port of 6 digits', 'PROXY TCP4 203.0.113.7 192.0.2.1 000001 2\r\n'],
    ['a missing port', 'PROXY TCP4 203.0.113.7 192.0.2.1 1\r\n'],
    ['an extra field', 'PROXY TCP4 203.0.113.7 192.0.2.1 1 2 3\r\n'],
    ['two spaces', 'PROXY TCP4  203.0.113.7 192.0.2.1 1 2\r\n'],
    ['an unknown protocol', 'PROXY UDP4 203.0.113.7 192.0.2.1 1 2\r\n'],
    ['a control byte', 'PROXY TCP4 203.0.113.7\t192.0.2.1 1 2\r\n'],
    ['a bare LF', 'PROXY TCP4 203.0.113.7 192.0.2.1 1 2\n'.padEnd(120, 'x')],
    ['lower case', 'proxy TCP4 203.0.113.7 192.0.2.1 1 2\r\n'],
  ])('refuses %s', (_what, input) => {
    expect(read(input).kind).toBe('invalid');
  });

  it(`a header of ${PROXY_V1_MAX_BYTES} bytes is read; without CRLF by then it is refused, never buffered on`, () => {
    const head = 'PROXY UNKNOWN ';
    const exact = head + 'x'.repeat(PROXY_V1_MAX_BYTES - head.length - 2) + '\r\n';
    expect(exact.length).toBe(PROXY_V1_MAX_BYTES);
    expect(read(exact).kind).toBe('done');
    expect(read(head + 'x'.repeat(PROXY_V1_MAX_BYTES - head.length - 1) + '\r\n').kind).toBe('invalid');
    const r = new ProxyHeaderReader();
    expect(r.push(Buffer.from(head + 'x'.repeat(PROXY_V1_MAX_BYTES - head.length - 1))).kind).toBe('more');
    expect(r.push(Buffer.from('x')).kind).toBe('invalid');
  });
});

describe('PROXY header reader: v2', () => {
  it('reads an INET STREAM header; TLVs inside the length are skipped, bytes after it are kept', () => {
    const tlv = Buffer.from([0x05, 0x00, 0x02, 0xab, 0xcd]); // PP2_TYPE_UNIQUE_ID
    expect(read(Buffer.concat([v2(0x21, 0x11, Buffer.concat([v4body, tlv])), Buffer.from('CAPA\r\n')]))).toEqual({
      kind: 'done',
      header: { kind: 'proxy', version: 2, source: { ip: '203.0.113.7', port: 40000 }, destination: { ip: '192.0.2.1', port: 143 } },
      rest: Buffer.from('CAPA\r\n'),
    });
  });

  it('reads an INET6 header', () => {
    const src = [0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 7];
    const dst = [0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 1];
    expect(read(v2(0x21, 0x21, Buffer.from([...src, ...dst, 0x9c, 0x40, 0x03, 0xe1])))).toMatchObject({
      kind: 'done',
      header: { kind: 'proxy', source: { ip: '2001:db8::7', port: 40000 }, destination: { ip: '2001:db8::1', port: 993 } },
    });
  });

  it('LOCAL (a health check) and AF_UNSPEC mean: use the connection itself', () => {
    expect(read(v2(0x20, 0x00, Buffer.alloc(0)))).toMatchObject({ kind: 'done', header: { kind: 'local', version: 2 } });
    expect(read(v2(0x20, 0x11, v4body))).toMatchObject({ kind: 'done', header: { kind: 'local' } });
    expect(read(v2(0x21, 0x00, Buffer.alloc(0)))).toMatchObject({ kind: 'done', header: { kind: 'local' } });
  });

  it.each([
    ['version 1 in the binary form', v2(0x11, 0x11, v4body)],
    ['an unknown command', v2(0x22, 0x11, v4body)],
    ['a datagram transport', v2(0x21, 0x12, v4body)],
    ['AF_UNIX', v2(0x21, 0x31, Buffer.alloc(216))],
    ['an unknown family', v2(0x21, 0x41, v4body)],
    ['a length shorter than the addresses', v2(0x21, 0x11, v4body.subarray(0, 8))],
  ])('refuses %s', (_what, input) => {
    expect(read(input).kind).toBe('invalid');
  });

  it(`a length up to ${PROXY_V2_MAX_BYTES - 16} is read; one more is refused from the fixed part alone`, () => {
    const max = Buffer.concat([v4body, Buffer.from([0x04, 0x00, PROXY_V2_MAX_BYTES - 16 - 12 - 3]), Buffer.alloc(PROXY_V2_MAX_BYTES - 16 - 12 - 3)]);
    expect(read(v2(0x21, 0x11, max)).kind).toBe('done');
    const over = v2(0x21, 0x11, Buffer.concat([max, Buffer.from([0])]));
    expect(new ProxyHeaderReader().push(over.subarray(0, 16))).toEqual({ kind: 'invalid', reason: expect.stringContaining('longer') });
  });
});

const v2Of = (src: string, dst: string, tlvs?: Buffer) => v2Header(src, 40000, dst, 143, tlvs);

describe("PROXY header reader: addresses are the client's network address", () => {
  // What each source becomes, whole and byte by byte; the destination is a plain address.
  it.each([
    ['IPv4-mapped IPv6 is the IPv4 client', '::ffff:203.0.113.7', '203.0.113.7'],
    ['IPv4-mapped in hex and upper case', '::FFFF:CB00:7107', '203.0.113.7'],
    ['IPv6 in any spelling is compressed, lower case', '2001:DB8:0:0:0:0:0:07', '2001:db8::7'],
    ['link-local without a zone is a client on the balancer\'s link', 'fe80::1', 'fe80::1'],
    ['unique local', 'fd00::7', 'fd00::7'],
  ])('v1: %s', (_what, src, ip) => {
    expect(read(`PROXY TCP6 ${src} 2001:db8::1 40000 143\r\nx`)).toEqual({
      kind: 'done',
      header: { kind: 'proxy', version: 1, source: { ip, port: 40000 }, destination: { ip: '2001:db8::1', port: 143 } },
      rest: Buffer.from('x'),
    });
  });

  it.each(['10.1.2.3', '100.64.0.1', '169.254.1.1', '240.0.0.1'])('v1: private, shared, link-local and reserved IPv4 %s are clients', (src) => {
    expect(read(`PROXY TCP4 ${src} 192.0.2.1 1 2\r\n`)).toMatchObject({ kind: 'done', header: { source: { ip: src } } });
  });

  it.each([
    ['a zone id', 'TCP6 fe80::1%eth0 2001:db8::1', /^v1 source: an address with a zone id/],
    ['a zone id Node accepts and ipaddr.js cannot parse', 'TCP6 fe80::1%eth-0.1 2001:db8::1', /^v1 source: an address with a zone id/],
    ['a zone id on IPv4-mapped loopback', 'TCP6 ::ffff:127.0.0.1%lo 2001:db8::1', /^v1 source: an address with a zone id/],
    ['a zone id on the destination', 'TCP6 2001:db8::7 fe80::1%1', /^v1 destination: an address with a zone id/],
    ['IPv4 loopback', 'TCP4 127.0.0.1 192.0.2.1', /^v1 source: a loopback address/],
    ['IPv4 loopback beyond .1', 'TCP4 127.9.8.7 192.0.2.1', /^v1 source: a loopback address/],
    ['IPv6 loopback', 'TCP6 ::1 2001:db8::1', /^v1 source: a loopback address/],
    ['IPv4-mapped loopback', 'TCP6 ::ffff:127.0.0.1 2001:db8::1', /^v1 source: a loopback address/],
    ['a loopback destination', 'TCP4 203.0.113.7 127.0.0.1', /^v1 destination: a loopback address/],
    ['0.0.0.0', 'TCP4 0.0.0.0 192.0.2.1', /^v1 source: an unspecified address/],
    ['"this network" 0.0.0.0/8', 'TCP4 0.1.2.3 192.0.2.1', /^v1 source: an unspecified address/],
    ['::', 'TCP6 :: 2001:db8::1', /^v1 source: an unspecified address/],
    ['IPv4-mapped 0.0.0.0', 'TCP6 ::ffff:0.0.0.0 2001:db8::1', /^v1 source: an unspecified address/],
    ['an unspecified destination', 'TCP4 203.0.113.7 0.0.0.0', /^v1 destination: an unspecified address/],
    ['broadcast', 'TCP4 255.255.255.255 192.0.2.1', /^v1 source: a broadcast address/],
    ['IPv4 multicast', 'TCP4 224.0.0.1 192.0.2.1', /^v1 source: a multicast address/],
    ['IPv6 multicast', 'TCP6 ff02::1 2001:db8::1', /^v1 source: a multicast address/],
    ['IPv4-mapped multicast', 'TCP6 ::ffff:239.1.2.3 2001:db8::1', /^v1 source: a multicast address/],
    ['IPv4-compatible "::a.b.c.d" (ipaddr.js would read 127.0.0.1)', 'TCP6 ::127.0.0.1 2001:db8::1', /^v1 source: an IPv4-compatible/],
    ['IPv4-compatible in hex', 'TCP6 ::7f00:1 2001:db8::1', /^v1 source: an IPv4-compatible/],
    ['IPv4-compatible written out', 'TCP6 0:0:0:0:0:0:203.0.113.7 2001:db8::1', /^v1 source: an IPv4-compatible/],
    ['"127.1" (ipaddr.js would read 127.0.0.1)', 'TCP4 127.1 192.0.2.1', /^v1 addresses do not match their family$/],
    ['a 32-bit number', 'TCP4 2130706433 192.0.2.1', /^v1 addresses do not match their family$/],
    ['hex octets', 'TCP4 0x7f.0.0.1 192.0.2.1', /^v1 addresses do not match their family$/],
    ['octal-looking octets', 'TCP4 010.0.0.1 192.0.2.1', /^v1 addresses do not match their family$/],
  ])('v1: refuses %s', (_what, addresses, reason) => {
    const r = read(`PROXY ${addresses} 40000 143\r\n`);
    expect(r).toMatchObject({ kind: 'invalid', reason: expect.stringMatching(reason) });
  });

  it('v2: IPv4-mapped IPv6 bytes are the IPv4 client; link-local bytes are kept', () => {
    expect(read(v2Of('::ffff:203.0.113.7', '::ffff:192.0.2.1'))).toMatchObject({ kind: 'done', header: { source: { ip: '203.0.113.7' }, destination: { ip: '192.0.2.1' } } });
    expect(read(v2Of('fe80::1', '2001:db8::1'))).toMatchObject({ kind: 'done', header: { source: { ip: 'fe80::1' } } });
  });

  it.each([
    ['0.0.0.0', '192.0.2.1', /^v2 source: an unspecified/],
    ['255.255.255.255', '192.0.2.1', /^v2 source: a broadcast/],
    ['224.0.0.1', '192.0.2.1', /^v2 source: a multicast/],
    ['127.0.0.1', '192.0.2.1', /^v2 source: a loopback/],
    ['203.0.113.7', '127.0.0.1', /^v2 destination: a loopback/],
    ['::', '2001:db8::1', /^v2 source: an unspecified/],
    ['::1', '2001:db8::1', /^v2 source: a loopback/],
    ['::ffff:127.0.0.1', '2001:db8::1', /^v2 source: a loopback/],
    ['ff02::1', '2001:db8::1', /^v2 source: a multicast/],
    ['::7f00:1', '2001:db8::1', /^v2 source: an IPv4-compatible/],
  ])('v2: refuses %s -> %s', (src, dst, reason) => {
    expect(read(v2Of(src, dst))).toMatchObject({ kind: 'invalid', reason: expect.stringMatching(reason) });
  });
});

describe('PROXY header reader: v2 TLVs say nothing about who the client is', () => {
  it('an SSL TLV with a client-certificate CN whose verify failed changes nothing (nor does a verified one)', () => {
    const plain = read(v2Of('203.0.113.7', '192.0.2.1'));
    for (const verify of [1, 0x7fffffff, 0]) {
      const withTlv = read(Buffer.concat([v2Of('203.0.113.7', '192.0.2.1', sslTlv(verify, 'admin@example.org')), Buffer.from('a1 CAPABILITY\r\n')]));
      expect(withTlv).toEqual({ ...plain, rest: Buffer.from('a1 CAPABILITY\r\n') });
      expect(withTlv.kind === 'done' && Object.keys(withTlv.header)).toEqual(['kind', 'version', 'source', 'destination']);
      expect(JSON.stringify(withTlv)).not.toContain('admin');
    }
  });

  it('TLVs are never forwarded: the header mailgate sends on carries the addresses alone', () => {
    const r = read(v2Of('203.0.113.7', '192.0.2.1', sslTlv(1, 'admin@example.org')));
    if (r.kind !== 'done' || r.header.kind !== 'proxy') throw new Error('header not read');
    const { source, destination } = r.header;
    const out = proxyHeader('v2', { ip: source.ip, port: source.port, localIp: destination.ip, localPort: destination.port, sessionId: 'abc' });
    expect(out.length).toBe(16 + 12);
    expect(out.readUInt16BE(14)).toBe(12);
  });
});

describe('PROXY header reader: no header', () => {
  it.each(['a1 CAPABILITY\r\n', 'CAPA\r\n', 'EHLO x\r\n', '\x16\x03\x01\x02\x00'])('refuses %j at the first byte that cannot start one', (input) => {
    const r = new ProxyHeaderReader();
    expect(r.push(Buffer.from(input.slice(0, 1), 'latin1'))).toMatchObject({ kind: 'invalid' });
  });

  it('waits while the bytes could still be either signature', () => {
    const r = new ProxyHeaderReader();
    expect(r.push(Buffer.from('\r\n\r\n\0'))).toEqual({ kind: 'more' });
    expect(new ProxyHeaderReader().push(Buffer.from('PROX'))).toEqual({ kind: 'more' });
  });
});

const client: ClientAddress = { ip: '203.0.113.7', port: 40000, localIp: '192.0.2.1', localPort: 143, sessionId: 'abc123XYZ' };
const client6: ClientAddress = { ...client, ip: '2001:db8::7', localIp: '2001:db8::1' };

describe('PROXY header out', () => {
  it('v1 and v2 headers read back as the same client', () => {
    for (const version of ['v1', 'v2'] as const) {
      for (const c of [client, client6]) {
        expect(read(proxyHeader(version, c))).toMatchObject({
          kind: 'done',
          header: { kind: 'proxy', version: version === 'v1' ? 1 : 2, source: { ip: c.ip, port: c.port }, destination: { ip: c.localIp, port: c.localPort } },
          rest: Buffer.alloc(0),
        });
      }
    }
    expect(proxyHeader('v1', client).toString()).toBe('PROXY TCP4 203.0.113.7 192.0.2.1 40000 143\r\n');
  });

  it('an IPv4 client on an IPv6 address is sent as TCP6 with the IPv4-mapped form', () => {
    const mixed = { ...client, localIp: '2001:db8::1' };
    expect(proxyHeader('v1', mixed).toString()).toMatch(/^PROXY TCP6 ::ffff:cb00:7107 2001:db8::1 40000 143\r\n$/);
    expect(read(proxyHeader('v2', mixed))).toMatchObject({ header: { source: { ip: '203.0.113.7' }, destination: { ip: '2001:db8::1' } } });
  });

  it('without a client (probes): v1 UNKNOWN, v2 LOCAL', () => {
    expect(proxyHeader('v1', null).toString()).toBe('PROXY UNKNOWN\r\n');
    expect(read(proxyHeader('v2', null))).toMatchObject({ kind: 'done', header: { kind: 'local', version: 2 } });
  });

  it("a zone id in this host's socket address (Node adds one to link-local peers) is not sent: the backend cannot use it", () => {
    const linkLocal = { ...client, ip: 'fe80::1%eth0', localIp: 'fe80::2%eth0' };
    expect(proxyHeader('v1', linkLocal).toString()).toBe('PROXY TCP6 fe80::1 fe80::2 40000 143\r\n');
    expect(read(proxyHeader('v2', linkLocal))).toMatchObject({ header: { source: { ip: 'fe80::1' }, destination: { ip: 'fe80::2' } } });
    expect(imapIdCommand('t', linkLocal)).toContain('"x-originating-ip" "fe80::1" ');
    expect(xclientCommand(linkLocal, ['ADDR', 'DESTADDR'], 'smtp')).toBe('XCLIENT ADDR=IPV6:fe80::1 DESTADDR=IPV6:fe80::2\r\n');
    expect(xclientCommand(linkLocal, null, 'pop3')).toBe('XCLIENT ADDR=fe80::1 PORT=40000\r\n');
  });

  // Spellings ipaddr.js reads as 127.0.0.1 (mailgate's own address in the tests) or as no
  // client at all: none reaches a backend line.
  it.each(['127.1', '2130706433', '0x7f.0.0.1', '0177.0.0.1', '::127.0.0.1', '::7f00:1', '0.0.0.0', '::', '::ffff:0.0.0.0', '255.255.255.255', '224.0.0.1', 'ff02::1', 'fe80::1%'])(
    'never forwards the odd address %j',
    (ip) => {
      const c = { ...client, ip };
      for (const build of [() => proxyHeader('v1', c), () => proxyHeader('v2', c), () => imapIdCommand('t', c), () => xclientCommand(c, ['ADDR'], 'smtp'), () => xclientCommand(c, null, 'pop3')]) {
        expect(build).toThrow(/cannot forward the client: client address is (not an IP address|an? )/);
      }
      expect(() => imapIdCommand('t', { ...client, localIp: ip })).toThrow(/cannot forward the client: local address/);
    },
  );

  it('an IPv4 socket address (a.b.c.d, ::ffff:a.b.c.d) is judged as ipaddr.js judges it, without its parser', () => {
    const show = (a: ReturnType<typeof peerAddress>) => (typeof a === 'string' ? a : `${a.kind()} ${a.toString()}`);
    const octet = fc.oneof(fc.nat(255), fc.constantFrom(0, 223, 224, 239, 240, 255));
    fc.assert(
      fc.property(fc.tuple(octet, octet, octet, octet), fc.constantFrom('', '::ffff:'), fc.constantFrom('strip', 'refuse') as fc.Arbitrary<'strip' | 'refuse'>, (octets, pre, zone) => {
        const text = pre + octets.join('.');
        expect(show(peerAddress(text, zone))).toBe(show(peerOf(ipaddr.parse(text))));
      }),
      { numRuns: 3000 },
    );
    for (const odd of ['0.1.2.3', '255.255.255.255', '239.255.255.255', '::ffff:224.0.0.1']) expect(typeof peerAddress(odd, 'strip')).toBe('string');
    expect(show(peerAddress('255.255.255.254', 'strip'))).toBe('ipv4 255.255.255.254');
  });

  it('refuses to build from anything that is not an address, a port or a plain session id', () => {
    for (const bad of [{ ip: '6.6.6.6\r\nx' }, { ip: 'localhost' }, { port: 70000 }, { localPort: -1 }, { sessionId: 'a b' }, { sessionId: '' }, { sessionId: 'x'.repeat(65) }]) {
      const c = { ...client, ...bad };
      expect(() => proxyHeader('v1', c)).toThrow(/cannot forward/);
      expect(() => imapIdCommand('t', c)).toThrow(/cannot forward/);
      expect(() => xclientCommand(c, null, 'pop3')).toThrow(/cannot forward/);
    }
  });
});

describe('IMAP ID and XCLIENT out', () => {
  it('IMAP ID carries the x-* fields as quoted strings', () => {
    expect(imapIdCommand('mg1', client)).toBe(
      'mg1 ID ("x-originating-ip" "203.0.113.7" "x-originating-port" "40000" "x-connected-ip" "192.0.2.1" "x-connected-port" "143" "x-session-id" "abc123XYZ")\r\n',
    );
  });

  it('xtext (RFC 3461 §4) encodes "+", "=", space, controls and 8-bit bytes', () => {
    expect(xtext('a+b=c d\r\n\u00e9~!')).toBe('a+2Bb+3Dc+20d+0D+0A+C3+A9~!');
  });

  it('SMTP XCLIENT sends what the server lists, IPv6 with the IPV6: prefix; POP3 sends ADDR and PORT only', () => {
    expect(xclientCommand(client, ['ADDR', 'PORT', 'PROTO', 'HELO', 'LOGIN', 'SESSION', 'TTL'], 'smtp')).toBe('XCLIENT ADDR=203.0.113.7 PORT=40000 SESSION=abc123XYZ\r\n');
    expect(xclientCommand(client6, ['NAME', 'ADDR', 'PORT', 'DESTADDR', 'DESTPORT'], 'smtp')).toBe('XCLIENT ADDR=IPV6:2001:db8::7 PORT=40000 DESTADDR=IPV6:2001:db8::1 DESTPORT=143\r\n');
    expect(xclientCommand(client, ['ADDR'], 'smtp')).toBe('XCLIENT ADDR=203.0.113.7\r\n');
    expect(xclientCommand(client6, null, 'pop3')).toBe('XCLIENT ADDR=2001:db8::7 PORT=40000\r\n');
    expect(() => xclientCommand(client, ['NAME', 'HELO'], 'smtp')).toThrow(/ADDR/);
  });

  it("SMTP XCLIENT carries the client's EHLO name as HELO (xtext) only where listed; a name a line cannot hold is refused", () => {
    const listed = ['ADDR', 'PORT', 'PROTO', 'HELO', 'LOGIN', 'SESSION', 'TTL'];
    expect(xclientCommand(client, listed, 'smtp', 'pc+1=[x]')).toBe('XCLIENT ADDR=203.0.113.7 PORT=40000 SESSION=abc123XYZ HELO=pc+2B1+3D[x]\r\n');
    expect(xclientCommand(client, ['ADDR', 'PORT'], 'smtp', 'pc.example')).toBe('XCLIENT ADDR=203.0.113.7 PORT=40000\r\n');
    expect(xclientCommand(client, null, 'pop3', 'pc.example')).toBe('XCLIENT ADDR=203.0.113.7 PORT=40000\r\n');
    for (const bad of ['', 'a b', 'a\r\nRSET', 'h'.repeat(256), '\u00e9']) expect(() => xclientCommand(client, listed, 'smtp', bad)).toThrow(/cannot forward/);
  });
});
