// The counter key grammar both ways: client keys (address grouping), user hashes, rule keys
// built by KeyBuilder.ruleKey and read back by parseKey. Pure.
import fc from 'fast-check';
import ipaddr from 'ipaddr.js';
import { describe, expect, it } from 'vitest';
import { clientKey, KeyBuilder, parseKey } from '../../src/limits/keys.js';

describe('client keys', () => {
  it('normalises IPv4-mapped IPv6 and groups IPv6 by prefix', () => {
    expect(clientKey('::ffff:10.1.2.3', 64)).toBe('10.1.2.3');
    expect(clientKey('2001:db8:1:2:aaaa::1', 64)).toBe(clientKey('2001:db8:1:2:bbbb::9', 64));
    expect(clientKey('2001:db8:1:2::1', 64)).not.toBe(clientKey('2001:db8:1:3::1', 64));
    expect(clientKey('2001:db8:1:2::1', 48)).toBe(clientKey('2001:db8:1:3::1', 48));
  });

  it('a plain IPv4 address is its own key, as ipaddr.js reads it; other spellings are parsed, never taken as they are', () => {
    fc.assert(
      fc.property(fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)), fc.constantFrom('', '0', '00'), (octets, pad) => {
        const plain = octets.join('.');
        expect(clientKey(plain, 64)).toBe(ipaddr.process(plain).toString());
        const padded = octets.map((o) => pad + o).join('.');
        if (ipaddr.isValid(padded)) expect(clientKey(padded, 64)).toBe(ipaddr.process(padded).toString());
      }),
    );
    expect(clientKey('127.000.000.001', 64)).toBe('127.0.0.1');
    expect(clientKey('10.1.2.3', 64, 24)).toBe('10.1.2.0/24');
  });

  it('an IPv4 network (ipv4Prefix) is masked as the ipaddr.js path masks it, mapped spellings too', () => {
    // The ipaddr.js path clientKey had before its IPv4 fast path.
    const reference = (address: string, bits: number) => {
      const a = ipaddr.process(address);
      if (a.kind() !== 'ipv4' || bits === 32) return a.kind() === 'ipv4' ? a.toString() : null;
      const bytes = a.toByteArray();
      for (let bit = bits; bit < 32; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
      return `${ipaddr.fromByteArray(bytes).toString()}/${bits}`;
    };
    fc.assert(
      fc.property(fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)), fc.nat(32), fc.constantFrom('', '::ffff:', '::FFFF:', '0'), (octets, bits, pre) => {
        const address = pre + octets.join('.');
        if (ipaddr.isValid(address)) expect(clientKey(address, 64, bits)).toBe(reference(address, bits));
      }),
      { numRuns: 3000 },
    );
    expect(clientKey('255.255.255.255', 64, 1)).toBe('128.0.0.0/1');
    expect(clientKey('255.255.255.255', 64, 0)).toBe('0.0.0.0/0');
    expect(clientKey('::ffff:10.1.2.3', 64, 24)).toBe('10.1.2.0/24');
  });

  it('user hashes are keyed and stable, past the memo\'s bound too', () => {
    const k = new KeyBuilder('s1');
    const first = k.userHash('alice');
    for (let i = 0; i < 10_001; i++) k.userHash(`u${i}`);
    expect(k.userHash('alice')).toBe(first);
    expect(new KeyBuilder('s2').userHash('alice')).not.toBe(first);
    // Long made-up names are hashed each time, never kept.
    const long = 'x'.repeat(4096);
    expect(k.userHash(long)).toBe(k.userHash(long));
    expect((k as unknown as { hashes: Map<string, string> }).hashes.has(long)).toBe(false);
  });
});

describe('rule keys read back', () => {
  const keys = new KeyBuilder('test-secret');
  const clients = [
    ['IPv4', clientKey('192.0.2.7', 64)],
    ['IPv4-mapped IPv6', clientKey('::ffff:192.0.2.7', 64)],
    ['IPv6', clientKey('2001:db8::1', 128)],
    ['prefixed IPv6', clientKey('2001:db8:1:2:aaaa::1', 64)],
    ['prefixed IPv6, all zeros but the prefix', clientKey('2001:db8::', 48)],
  ] as const;

  it.each(clients)('ip, user and ip+user keys of a %s client give back their parts', (_, client) => {
    const hash = keys.userHash('alice@example.org');
    expect(parseKey(keys.ruleKey({ name: 'ip-failures', key: 'ip' }, client, ''))).toEqual({ rule: 'ip-failures', kind: 'ip', ip: client });
    expect(parseKey(keys.ruleKey({ name: 'user.v2', key: 'user' }, client, 'alice@example.org'))).toEqual({ rule: 'user.v2', kind: 'user', userHash: hash });
    expect(parseKey(keys.ruleKey({ name: 'i_u-1', key: 'ip+user' }, client, 'alice@example.org'))).toEqual({ rule: 'i_u-1', kind: 'ip+user', ip: client, userHash: hash });
  });

  it('round-trips any rule name, address, prefix and user', () => {
    const address = fc.oneof(
      fc.ipV4(),
      fc.ipV6(),
      fc.ipV4().map((v4) => `::ffff:${v4}`),
    );
    fc.assert(
      fc.property(
        fc.stringMatching(/^[A-Za-z0-9_.-]{1,64}$/),
        fc.constantFrom('ip', 'user', 'ip+user'),
        address,
        fc.integer({ min: 1, max: 128 }),
        fc.string({ minLength: 1, maxLength: 40 }),
        (name, kind, ip, prefix, user) => {
          const client = clientKey(ip, prefix);
          const parsed = parseKey(keys.ruleKey({ name, key: kind }, client, user));
          expect(parsed).toMatchObject({ rule: name, kind });
          if (kind !== 'user') expect(parsed!.ip).toBe(client);
          if (kind !== 'ip') expect(parsed!.userHash).toBe(keys.userHash(user));
        },
      ),
    );
  });

  it('keys that are not rule keys parse to null', () => {
    for (const key of ['kg:10.0.0.1:abc', 'r:name', 'r:name:x:10.0.0.1', 'r::ip:10.0.0.1', '']) expect(parseKey(key)).toBeNull();
  });
});
