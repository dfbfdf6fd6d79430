// The policy core: rule order, counting per key kind, failures and blocks, trusted networks,
// the connect-time block check. Memory store on a ManualClock: no waiting on the wall clock.
import { describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import { KeyBuilder } from '../../src/limits/keys.js';
import { Policy } from '../../src/limits/policy.js';
import { MemoryStore } from '../../src/stores/memory.js';

function policyWith(limits: unknown) {
  const cfg = parseConfig({
    listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:1143', tls: 'none', backend: 'b' }],
    backends: { b: { host: '127.0.0.1', port: 143 } },
    limits,
  });
  const clock = new ManualClock();
  const store = new MemoryStore(clock);
  return { policy: new Policy(cfg.limits, store, new KeyBuilder('test-secret'), clock), clock, store };
}

const a = (ip: string, user = 'alice', protocol: 'imap' | 'pop3' | 'smtp' = 'imap') => ({ protocol, ip, user });

describe('policy', () => {
  it('the fourth login from one IP is refused with limit 3 while another IP passes', async () => {
    const { policy } = policyWith({ rules: [{ name: 'ip', key: 'ip', count: 'attempts', limit: 3, window: '1h' }] });
    for (let i = 0; i < 3; i++) expect((await policy.check(a('10.0.0.1'))).kind).toBe('allow');
    const d = await policy.check(a('10.0.0.1'));
    expect(d).toMatchObject({ kind: 'refuse', rule: 'ip', count: 3 });
    if (d.kind === 'refuse') expect(d.retryAfterSec).toBe(3600);
    expect((await policy.check(a('10.0.0.2'))).kind).toBe('allow');
  });

  it('IP rules are checked before user rules whatever the file order', async () => {
    const { policy } = policyWith({
      rules: [
        { name: 'user', key: 'user', count: 'attempts', limit: 1, window: '1h' },
        { name: 'ip', key: 'ip', count: 'attempts', limit: 1, window: '1h' },
      ],
    });
    await policy.check(a('10.0.0.1'));
    expect(await policy.check(a('10.0.0.1'))).toMatchObject({ kind: 'refuse', rule: 'ip' });
  });

  it('user keys are canonical: one counter for one user across IPs', async () => {
    const { policy } = policyWith({ rules: [{ name: 'user', key: 'user', count: 'attempts', limit: 2, window: '1h' }] });
    await policy.check(a('10.0.0.1', 'alice'));
    await policy.check(a('10.0.0.2', 'alice'));
    expect(await policy.check(a('10.0.0.3', 'alice'))).toMatchObject({ kind: 'refuse', rule: 'user' });
    expect((await policy.check(a('10.0.0.3', 'bob'))).kind).toBe('allow');
  });

  it('failures count only when recorded as fail; unavailable backends do not charge the user', async () => {
    const { policy } = policyWith({ rules: [{ name: 'f', key: 'ip', count: 'failures', limit: 2, window: '10m' }] });
    for (let i = 0; i < 5; i++) await policy.record(await policy.check(a('10.0.0.1')), 'ok');
    for (let i = 0; i < 5; i++) await policy.record(await policy.check(a('10.0.0.1')), 'unavailable');
    await policy.record(await policy.check(a('10.0.0.1')), 'fail');
    expect((await policy.check(a('10.0.0.1'))).kind).toBe('allow');
  });

  it('dedupe: a failure is fingerprinted when it is settled, a success never; the same wrong password counts once', async () => {
    const { policy } = policyWith({ rules: [{ name: 'f', key: 'ip', count: 'failures', limit: 2, window: '10m' }] });
    const fingerprint = vi.spyOn(policy.keys, 'fingerprint');
    const tried = (pw: string) => ({ ...a('10.0.0.1'), password: Buffer.from(pw) });
    for (let i = 0; i < 3; i++) await policy.record(await policy.check(tried('right')), 'ok');
    expect(fingerprint).not.toHaveBeenCalled();
    for (let i = 0; i < 3; i++) await policy.record(await policy.check(tried('stale')), 'fail');
    expect(fingerprint).toHaveBeenCalledTimes(3);
    const d = await policy.check(tried('stale'));
    expect(d.kind).toBe('allow');
    await policy.record(d, 'unavailable');
    await policy.record(await policy.check(tried('guess')), 'fail');
    expect(await policy.check(tried('guess'))).toMatchObject({ kind: 'refuse', rule: 'f' });
  });

  it('spray: the password is keyed only for an attempt a password rule applies to, once', async () => {
    const { policy } = policyWith({
      rules: [
        { name: 'spray', key: 'password', count: 'failures', distinct: 'user', limit: 2, window: '1h', protocols: ['smtp'] },
        { name: 'spray-2', key: 'password', count: 'failures', distinct: 'user', limit: 9, window: '1h', protocols: ['smtp'] },
      ],
    });
    const passwordKey = vi.spyOn(policy.keys, 'passwordKey');
    const tried = (user: string, protocol: 'imap' | 'smtp') => ({ ...a('10.0.0.1', user, protocol), password: Buffer.from('Summer2026!') });
    expect((await policy.check(tried('alice', 'imap'))).kind).toBe('allow');
    expect(passwordKey).not.toHaveBeenCalled();
    for (const user of ['alice', 'bob']) await policy.record(await policy.check(tried(user, 'smtp')), 'fail');
    expect(passwordKey).toHaveBeenCalledTimes(2);
    expect(await policy.check(tried('carol', 'smtp'))).toMatchObject({ kind: 'refuse', rule: 'spray' });
  });

  it('block holds from the moment the limit is reached, then lifts', async () => {
    const { policy, clock } = policyWith({ rules: [{ name: 'f', key: 'ip', count: 'failures', limit: 2, window: '10m', block: '30m' }] });
    for (let i = 0; i < 2; i++) await policy.record(await policy.check(a('10.0.0.1')), 'fail');
    clock.advance(11 * 60_000);
    expect(await policy.check(a('10.0.0.1'))).toMatchObject({ kind: 'refuse', blocked: true, retryAfterSec: 19 * 60 });
    clock.advance(19 * 60_000);
    expect((await policy.check(a('10.0.0.1'))).kind).toBe('allow');
  });

  it('trusted networks are never throttled (IPv4-mapped too)', async () => {
    const { policy } = policyWith({ trustedNetworks: ['10.0.0.0/8'], rules: [{ name: 'ip', key: 'ip', count: 'attempts', limit: 1, window: '1h' }] });
    for (let i = 0; i < 5; i++) expect(await policy.check(a('::ffff:10.9.9.9'))).toMatchObject({ kind: 'allow', trusted: true });
    await policy.check(a('11.0.0.1'));
    expect((await policy.check(a('11.0.0.1'))).kind).toBe('refuse');
  });

  it('a rule naming protocols applies only to them; others share one counter across protocols', async () => {
    const { policy } = policyWith({
      rules: [
        { name: 'all', key: 'ip', count: 'attempts', limit: 3, window: '1h' },
        { name: 'smtp-only', key: 'ip', count: 'attempts', limit: 1, window: '1h', protocols: ['smtp'] },
      ],
    });
    await policy.check(a('10.0.0.1', 'alice', 'imap'));
    await policy.check(a('10.0.0.1', 'alice', 'pop3'));
    expect((await policy.check(a('10.0.0.1', 'alice', 'smtp'))).kind).toBe('allow');
    expect(await policy.check(a('10.0.0.1', 'alice', 'smtp'))).toMatchObject({ kind: 'refuse' });
    expect(await policy.check(a('10.0.0.1', 'alice', 'imap'))).toMatchObject({ kind: 'refuse', rule: 'all' });
  });

  it('ip+user keys separate users behind one address', async () => {
    const { policy } = policyWith({ rules: [{ name: 'iu', key: 'ip+user', count: 'attempts', limit: 1, window: '1h' }] });
    await policy.check(a('10.0.0.1', 'alice'));
    expect((await policy.check(a('10.0.0.1', 'bob'))).kind).toBe('allow');
    expect((await policy.check(a('10.0.0.1', 'alice'))).kind).toBe('refuse');
  });

  it('an IP blocked by an ip rule is refused at connect until its block ends on the injected clock', async () => {
    const { policy, clock } = policyWith({ rules: [{ name: 'f', key: 'ip', count: 'failures', limit: 2, window: '10m', block: '30m' }] });
    expect(await policy.connectCheck('imap', '10.0.0.1')).toBeNull();
    for (let i = 0; i < 2; i++) await policy.record(await policy.check(a('10.0.0.1')), 'fail');
    expect(await policy.connectCheck('pop3', '10.0.0.1')).toEqual({ rule: 'f', retryAfterSec: 30 * 60 });
    expect(await policy.connectCheck('imap', '10.0.0.2')).toBeNull();
    clock.advance(30 * 60_000 + 1);
    expect(await policy.connectCheck('imap', '10.0.0.1')).toBeNull();
    expect(policy.hints.size).toBe(0);
  });
});
