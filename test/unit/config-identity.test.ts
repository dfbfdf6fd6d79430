// Unit tests for the client-identity config keys: listener proxyProtocol, limits.trustedProxies,
// backend proxyProtocol / forwardClientInfo, their defaults and cross-field rules; and the
// address helpers behind them. Pure.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { canonicalIp, cidrMatcher, isPlainIpv4 } from '../../src/config/address.js';
import { parseConfig } from '../../src/config/load.js';
import { MailgateError } from '../../src/errors.js';

type Doc = Record<string, unknown>;
const base = (listener: Doc = {}, backend: Doc = {}, limits: Doc = {}): Doc => ({
  listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:1143', tls: 'none', backend: 'b', ...listener }],
  backends: { b: { host: '127.0.0.1', port: 143, ...backend } },
  limits,
});

function configError(doc: unknown): string {
  try {
    parseConfig(doc);
  } catch (err) {
    expect(err).toBeInstanceOf(MailgateError);
    return (err as Error).message;
  }
  throw new Error('parseConfig accepted an invalid config');
}

describe('config: client identity', () => {
  it('defaults: no PROXY header in or out, forwarding where the backend offers it (auto), no trusted proxies', () => {
    const cfg = parseConfig(base());
    expect(cfg.listeners[0]!.proxyProtocol).toBe(false);
    expect(cfg.limits.trustedProxies).toEqual([]);
    expect(cfg.backends.b!.proxyProtocol).toBeUndefined();
    expect(cfg.backends.b!.forwardClientInfo).toBe('auto');
  });

  it('accepts a PROXY listener with trusted proxies and both ways out', () => {
    const cfg = parseConfig(base({ proxyProtocol: true }, { proxyProtocol: 'v2' }, { trustedProxies: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.1'] }));
    expect(cfg.listeners[0]!.proxyProtocol).toBe(true);
    expect(cfg.backends.b!.proxyProtocol).toBe('v2');
    expect(parseConfig(base({}, { forwardClientInfo: true })).backends.b!.forwardClientInfo).toBe(true);
    expect(parseConfig(base({}, { forwardClientInfo: false })).backends.b!.forwardClientInfo).toBe(false);
    // auto beside a PROXY header sends nothing more; false beside it is as plain.
    expect(parseConfig(base({}, { proxyProtocol: 'v1' })).backends.b!.forwardClientInfo).toBe('auto');
    expect(parseConfig(base({}, { proxyProtocol: 'v1', forwardClientInfo: false })).backends.b!.proxyProtocol).toBe('v1');
  });

  it('a PROXY listener without trusted proxies is an error that names both keys', () => {
    expect(configError(base({ proxyProtocol: true }))).toMatch(/listeners\.0\.proxyProtocol.*limits\.trustedProxies/s);
  });

  it('refuses bad CIDRs, unknown versions and both ways out at once', () => {
    expect(configError(base({}, {}, { trustedProxies: ['10.0.0.0/33'] }))).toMatch(/limits\.trustedProxies\.0/);
    expect(configError(base({}, { proxyProtocol: 'v3' }))).toMatch(/backends\.b\.proxyProtocol/);
    expect(configError(base({}, { proxyProtocol: 'v1', forwardClientInfo: true }))).toMatch(/backends\.b\.forwardClientInfo/);
    expect(configError(base({}, { forwardClientInfo: 'yes' }))).toMatch(/backends\.b\.forwardClientInfo/);
  });
});

describe('address helpers', () => {
  it('canonicalIp: one spelling; IPv4-mapped IPv6 is IPv4; junk is null', () => {
    expect(canonicalIp('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(canonicalIp('2001:0db8:0000::0001')).toBe('2001:db8::1');
    expect(canonicalIp('192.0.2.1')).toBe('192.0.2.1');
    expect(canonicalIp('example.org')).toBeNull();
    expect(canonicalIp(undefined)).toBeNull();
  });

  // The slow path canonicalIp had before its IPv4 fast path: every answer must stay this one.
  const reference = (x: string | undefined) => (!x || !ipaddr.isValid(x) ? null : ipaddr.process(x).toString());

  it('canonicalIp: the IPv4 fast path answers as ipaddr.js does, and only for text it can', () => {
    const table = [
      '1.2.3.4', '0.0.0.0', '255.255.255.255', '127.0.1.4', '10.0.0.10', '01.2.3.4', '1.2.3.04', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.256',
      '1000.1.1.1', '0x7f.1.1.1', '127.1', '2130706433', '1.2.3.4 ', ' 1.2.3.4', '1..2.3', '1.2.3.', '.1.2.3', '', '::ffff:1.2.3.4',
      '::FFFF:1.2.3.4', '::ffff:01.2.3.4', '::ffff:256.1.1.1', '::ffff:1.2.3', '::ffff:', '::ffff:7f00:1', '::1.2.3.4', '::1', '::',
      '2001:db8::1', 'fe80::1%eth0', '1.2.3.4%eth0', '١.٢.٣.٤', '1.2.3.4\n', 'example.org',
    ];
    for (const x of table) expect([x, canonicalIp(x)]).toEqual([x, reference(x)]);
    expect(isPlainIpv4('1.2.3.4')).toBe(true);
    for (const x of ['01.2.3.4', '0x7f.1.1.1', '127.1', '1.2.3.4 ', '256.1.1.1', '']) expect([x, isPlainIpv4(x)]).toEqual([x, false]);
  });

  it('canonicalIp: fast and slow paths agree on random dotted text', () => {
    const part = fc.oneof(fc.integer({ min: 0, max: 300 }).map(String), fc.stringMatching(/^[0-9x]{0,4}$/));
    const text = fc.tuple(fc.constantFrom('', '::ffff:', '::'), fc.array(part, { minLength: 1, maxLength: 5 })).map(([pre, parts]) => pre + parts.join('.'));
    fc.assert(fc.property(text, (x) => canonicalIp(x) === reference(x)), { numRuns: 2000 });
  });

  it('cidrMatcher: ranges, single addresses and IPv4-mapped forms on either side', () => {
    const m = cidrMatcher(['10.0.0.0/8', '2001:db8::/32', '192.0.2.1', '::ffff:198.51.100.0/120']);
    expect(m('10.1.2.3')).toBe(true);
    expect(m('::ffff:10.1.2.3')).toBe(true);
    expect(m('2001:db8:1::1')).toBe(true);
    expect(m('192.0.2.1')).toBe(true);
    expect(m('198.51.100.77')).toBe(true);
    expect(m('192.0.2.2')).toBe(false);
    expect(m('11.0.0.1')).toBe(false);
    expect(m(undefined)).toBe(false);
    expect(m('junk')).toBe(false);
    expect(cidrMatcher([])('10.0.0.1')).toBe(false);
  });

  it('cidrMatcher: an IPv4 socket address is matched as ipaddr.js matches it', () => {
    // "::FFFF:a.b.c.d" is the same address, but only the lower-case spellings sockets give take
    // the fast path: the upper-case one is answered by ipaddr.js.
    const octets = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
    const range = fc.oneof(fc.tuple(octets, fc.nat(32)).map(([a, bits]) => `${a}/${bits}`), octets, fc.tuple(octets, fc.integer({ min: 96, max: 128 })).map(([a, bits]) => `::ffff:${a}/${bits}`), fc.constant('2001:db8::/32'));
    fc.assert(
      fc.property(fc.array(range, { minLength: 1, maxLength: 4 }), octets, (list, address) => {
        const m = cidrMatcher(list);
        const inside = list.find((r) => !r.includes(':') && r.includes('/'));
        for (const x of [address, inside?.split('/')[0] ?? address]) {
          expect(m(x)).toBe(m(`::FFFF:${x}`));
          expect(m(`::ffff:${x}`)).toBe(m(`::FFFF:${x}`));
        }
      }),
      { numRuns: 2000 },
    );
    expect(cidrMatcher(['0.0.0.0/0'])('255.255.255.255')).toBe(true);
    expect(cidrMatcher(['128.0.0.0/1'])('200.1.1.1')).toBe(true);
    expect(cidrMatcher(['128.0.0.0/1'])('127.255.255.255')).toBe(false);
  });
});
