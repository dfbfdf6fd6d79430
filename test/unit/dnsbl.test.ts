// DNS blocklist names and answers (groups/dnsbl.ts): the reverse names of RFC 5782 §2.1/§2.4
// and what an answer means. Pure; the lookups themselves are tested against dnsmasq
// (test/integration/dnsbl.test.ts).
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { Dnsbl, classify, reverseName } from '../../src/groups/dnsbl.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { captureLogger } from '../helpers/log-capture.js';

describe('reverseName', () => {
  it('reverses the octets of an IPv4 address', () => {
    expect(reverseName('192.0.2.99', 'bl.example')).toBe('99.2.0.192.bl.example');
    expect(reverseName('127.0.0.2', 'zen.spamhaus.org')).toBe('2.0.0.127.zen.spamhaus.org');
  });

  it('reverses the 32 nibbles of an IPv6 address, zeros written out (RFC 5782 §2.4)', () => {
    expect(reverseName('2001:db8::1', 'bl.example')).toBe('1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.example');
    // RFC 5782's own example.
    expect(reverseName('2001:db8:1:2:3:4:567:89ab', 'ugly.example.com')).toBe('b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com');
    expect(reverseName('2001:DB8::ABCD', 'z')).toBe(reverseName('2001:db8:0:0:0:0:0:abcd', 'z'));
  });

  it('asks for an IPv4-mapped IPv6 address as the IPv4 address', () => {
    expect(reverseName('::ffff:192.0.2.99', 'bl.example')).toBe('99.2.0.192.bl.example');
    expect(reverseName('::ffff:c000:263', 'bl.example')).toBe('99.2.0.192.bl.example');
  });

  it('is null for what is not an address, or not one spelled plainly', () => {
    for (const bad of ['', 'localhost', '192.0.2', '192.0.2.256', '127.1', '0x7f.0.0.1', '010.0.0.1', '2130706433', '2001:db8::1::2', 'fe80::1%eth0', ' 192.0.2.1', '192.0.2.1/32']) {
      expect(reverseName(bad, 'bl.example'), bad).toBeNull();
    }
  });
});

describe('classify', () => {
  it('takes any 127.0.0.0/8 answer for a listing by default', () => {
    expect(classify(['127.0.0.2'])).toBe('listed');
    expect(classify(['127.0.0.11', '127.0.0.4'])).toBe('listed');
  });

  it('takes 127.255.255.0/24 for a refused query, not a listing', () => {
    for (const a of ['127.255.255.252', '127.255.255.254', '127.255.255.255', '127.255.255.0']) expect(classify([a]), a).toBe('refused');
    // RFC 5782 §5: 127.0.0.1 is never a listing; URIBL answers it to resolvers it refuses.
    expect(classify(['127.0.0.1'])).toBe('refused');
    // A real listing next to an error code still lists.
    expect(classify(['127.255.255.254', '127.0.0.2'])).toBe('listed');
  });

  it('takes an answer outside 127.0.0.0/8 (a resolver redirecting NXDOMAIN) and no answer for clean', () => {
    expect(classify(['198.51.100.7'])).toBe('clean');
    expect(classify(['128.0.0.2'])).toBe('clean');
    expect(classify([])).toBe('clean');
  });

  it('with answers, lists only for those', () => {
    expect(classify(['127.0.0.4'], ['127.0.0.4'])).toBe('listed');
    expect(classify(['127.0.0.2', '127.0.0.4'], ['127.0.0.4'])).toBe('listed');
    expect(classify(['127.0.0.2'], ['127.0.0.4', '127.0.0.5'])).toBe('clean');
    expect(classify(['127.255.255.254'], ['127.0.0.4'])).toBe('refused');
  });
});

describe('Dnsbl', () => {
  const deps = () => ({ log: captureLogger().logger, metrics: createMetrics({ defaultMetrics: false }), clock: new ManualClock() });

  it('refuses servers that are not IP:port, naming the option (node:dns takes no host names)', () => {
    expect(() => new Dnsbl({ servers: ['dns.example:53'], timeout: 300, cacheSize: 100 }, deps())).toThrow(
      expect.objectContaining({ code: 'MG_CONFIG_INVALID', message: expect.stringContaining('limits.dnsbl.servers') }),
    );
    new Dnsbl({ servers: ['127.0.0.1:53', '[::1]:5353'], timeout: 300, cacheSize: 100 }, deps()).close();
  });
});
