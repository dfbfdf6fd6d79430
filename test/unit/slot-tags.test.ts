// Where Redis Cluster puts each key (keys.ts' slotTag): every key of one subject shares one
// hash tag, the exemptions live with the user's rules, the successes with the address's; and
// the slot helper the cluster tests choose subjects with, checked against the spec's vectors.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { clientKey, KeyBuilder, slotTag } from '../../src/limits/keys.js';
import { crc16, keySlot } from '../helpers/redis.js';

const keys = new KeyBuilder('slot-tag-secret-0123456789');
const rule = (name: string, key: 'ip' | 'user' | 'ip+user' | 'password') => ({ name, key });

describe('slotTag', () => {
  it('puts an address\'s ip rules and its successes under {i:<client>}', () => {
    const client = clientKey('2001:db8:1:2::7', 64);
    expect(slotTag(keys.ruleKey(rule('ip-logins', 'ip'), client, 'alice'))).toBe(`{i:${client}}`);
    expect(slotTag(keys.ruleKey(rule('ip-failures', 'ip'), client, 'alice'))).toBe(`{i:${client}}`);
    expect(slotTag(keys.successesKey(client))).toBe(`{i:${client}}`);
    // A wide rule's network is a subject of its own.
    expect(slotTag(keys.ruleKey(rule('net', 'ip'), '192.0.2.0/24', 'alice'))).toBe('{i:192.0.2.0/24}');
  });

  it('puts user rules, ip+user rules, known-good pairs and the hint under {u:<user hash>}', () => {
    const u = `{u:${keys.userHash('alice')}}`;
    expect(slotTag(keys.ruleKey(rule('user-logins', 'user'), '192.0.2.1', 'alice'))).toBe(u);
    expect(slotTag(keys.ruleKey(rule('pair', 'ip+user'), '192.0.2.1', 'alice'))).toBe(u);
    expect(slotTag(keys.ruleKey(rule('pair', 'ip+user'), clientKey('2001:db8::1', 64), 'alice'))).toBe(u);
    expect(slotTag(keys.knownGoodKey('192.0.2.0/24', 'alice'))).toBe(u);
    expect(slotTag(keys.knownGoodKey(clientKey('2001:db8::1', 64), 'alice'))).toBe(u);
    expect(slotTag(keys.hintKey('alice'))).toBe(u);
    expect(slotTag(keys.ruleKey(rule('user-logins', 'user'), '192.0.2.1', 'bob'))).not.toBe(u);
  });

  it('puts a sprayed password\'s rule under {p:<key>}', () => {
    const pw = keys.passwordKey(Buffer.from('Summer2026!'));
    expect(slotTag(keys.ruleKey(rule('spray', 'password'), '192.0.2.1', 'alice', pw))).toBe(`{p:${pw}}`);
  });

  it('gives any other key a tag of its own, never an empty one and never a brace inside', () => {
    expect(slotTag('k-abc')).toBe('{k:k-abc}');
    expect(slotTag('')).toBe('{k:}');
    expect(slotTag('a{b}c')).toBe('{k:abc}');
    fc.assert(fc.property(fc.string(), (key) => /^\{[iupk]:[^{}]*\}$/.test(slotTag(key))));
  });

  it('every key of one attempt\'s subject shares one tag, whatever the address and user', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), fc.string({ minLength: 1, maxLength: 30 }), (ip, user) => {
        const client = clientKey(ip, 64);
        const ipTags = new Set([slotTag(keys.ruleKey(rule('a', 'ip'), client, user)), slotTag(keys.ruleKey(rule('b', 'ip'), client, user)), slotTag(keys.successesKey(client))]);
        const userTags = new Set([
          slotTag(keys.ruleKey(rule('c', 'user'), client, user)),
          slotTag(keys.ruleKey(rule('d', 'ip+user'), client, user)),
          slotTag(keys.knownGoodKey(client, user)),
          slotTag(keys.hintKey(user)),
        ]);
        expect(ipTags.size).toBe(1);
        expect(userTags.size).toBe(1);
      }),
    );
  });
});

describe('keySlot (test helper)', () => {
  it('matches the Redis Cluster spec: CRC16("123456789") = 0x31C3, hash tags, {mg} in slot 8503', () => {
    expect(crc16('123456789')).toBe(0x31c3);
    expect(keySlot('123456789')).toBe(0x31c3 % 16_384);
    expect(keySlot('mailgate:{mg}r:x:ip:1.2.3.4')).toBe(8503);
    expect(keySlot('{user1000}.following')).toBe(keySlot('{user1000}.followers'));
    // An empty tag hashes the whole key; only the first {...} counts.
    expect(keySlot('foo{}{bar}')).toBe(crc16('foo{}{bar}') % 16_384);
    expect(keySlot('foo{{bar}}zap')).toBe(crc16('{bar') % 16_384);
  });
});
