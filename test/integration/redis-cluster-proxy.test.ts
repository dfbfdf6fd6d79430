// Two mailgate instances on a real Redis Cluster (3 primaries + 3 replicas) in front of a real
// Dovecot: one limit across both with keys on every primary (the "done when"), racing
// wrong guesses that never reach the backend past the limit when address and user live on
// different primaries, a blocked address turned away without a script, and an unblock through
// one instance's admin API honoured by the other at once.
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { KeyBuilder } from '../../src/limits/keys.js';
import { onPrimary, primaryOf, scriptCalls } from '../helpers/cluster-store.js';
import { imapLogin } from '../helpers/imap-login.js';
import type { TestProxy } from '../helpers/proxy.js';
import { dovecotForFile, redisClusterForFile } from '../helpers/rig.js';

// The cluster first, so the instances (on the Dovecot rig) stop before it does.
const rc = redisClusterForFile(3, 1);
const rig = dovecotForFile();
const SECRET = 'cluster-proxy-secret-0123456789';
const TOKEN = 'cluster-admin-token-0123456789';
const keys = new KeyBuilder(SECRET);

async function instances(prefix: string, limits: Record<string, unknown>): Promise<[TestProxy, TestProxy]> {
  const one = () =>
    rig.proxy({
      listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap' }],
      backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap } },
      admin: { listen: '127.0.0.1:0', token: TOKEN },
      store: { type: 'redis', redis: { cluster: rc.cluster.nodes, keyPrefix: prefix, timeout: '1s' } },
      limits: { keySecret: SECRET, ...limits },
    });
  return [await one(), await one()];
}

/** Loopback addresses whose ip keys land on the given primary. */
const addressesOn = (port: number, n: number, net: string) =>
  onPrimary(rc.cluster, (function* () {
    for (let i = 1; i < 250; i++) yield `${net}.${i}`;
  })(), (ip) => keys.ruleKey({ name: 'x', key: 'ip' }, ip, ''), port, n);

describe('two instances on a 3-primary cluster', () => {
  it('refuse the fifth login from an IP with limit 4, whichever instance it hits, with keys on every primary', async () => {
    const [a, b] = await instances('done:', { rules: [{ name: 'ip-logins', key: 'ip', count: 'attempts', limit: 4, window: '1h' }] });
    const primaries = (await rc.cluster.topology()).filter((t) => t.primary).map((t) => t.port);
    expect(primaries).toHaveLength(3);
    const [first, ...others] = await Promise.all(primaries.map(async (p) => (await addressesOn(p, 1, '127.0.30'))[0]!));
    const results = [];
    for (const p of [a, b, a, b, a, b]) results.push(await imapLogin(p, first!, 'alice', 'alice-pass'));
    expect(results).toEqual(['ok', 'ok', 'ok', 'ok', 'limited', 'limited']);
    for (const ip of others) expect(await imapLogin(b, ip, 'alice', 'alice-pass')).toBe('ok');
    for (const p of [a, b]) expect(p.log.lines.some((l) => l.event === 'store.fallback')).toBe(false);
    // Every primary holds some of the instances' keys.
    for (const port of primaries) {
      const node = new Redis({ port, host: '127.0.0.1' });
      const [, found] = await node.scan('0', 'MATCH', 'done:*', 'COUNT', 1000);
      node.disconnect();
      expect(found.length).toBeGreaterThan(0);
    }
  });

  it('60 racing wrong guesses over both against a pair limit of 5, address and user on different primaries: exactly 5 reach Dovecot', async () => {
    const userAt = await primaryOf(rc.cluster, keys.ruleKey({ name: 'x', key: 'user' }, '', 'bob'));
    const other = (await rc.cluster.topology()).find((t) => t.primary && t.port !== userAt)!.port;
    const [ip] = await addressesOn(other, 1, '127.0.31');
    const [a, b] = await instances('race:', {
      rules: [
        { name: 'ip-failures', key: 'ip', count: 'failures', limit: 100, window: '10m' },
        { name: 'pair-failures', key: 'ip+user', count: 'failures', limit: 5, window: '15m' },
        { name: 'user-logins', key: 'user', count: 'attempts', limit: 1000, window: '1h' },
      ],
    });
    const mark = await rig.dovecot.logMark();
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => imapLogin(i % 2 ? a : b, ip!, 'bob', `wrong-${i}`)));
    expect(results.filter((r) => r === 'fail')).toHaveLength(5);
    expect(results.filter((r) => r === 'limited')).toHaveLength(55);
    expect((await rig.dovecot.settledLog(mark)).match(/Password mismatch/g)).toHaveLength(5);
  });

  it('a blocked address is turned away without a script; an unblock through one instance\'s admin API reaches the other at once', async () => {
    const [a, b] = await instances('l1:', {
      knownGood: { ttl: '30d' },
      passwordHint: { ttl: '30d' },
      rules: [{ name: 'ip-failures', key: 'ip', count: 'failures', limit: 2, window: '10m', block: '30m' }],
    });
    const ip = '127.0.32.1';
    expect([await imapLogin(b, ip, 'alice', 'wrong-1'), await imapLogin(b, ip, 'alice', 'wrong-2')]).toEqual(['fail', 'fail']);
    // The first refusal at connect asks Redis (with the address's successes); the rest do not.
    expect(await imapLogin(b, ip, 'alice', 'alice-pass')).toBe('limited');
    // Five refusals in a row without a script. A subscriber that misses its PING deadline on a
    // loaded machine empties the cache (it trusts nothing until resubscribed), so one window
    // may ask Redis once; a cache that is not used fails every window.
    const scripted: number[] = [];
    for (let window = 0; window < 3 && scripted.at(-1) !== 0; window++) {
      const before = await scriptCalls(rc.cluster);
      for (let i = 0; i < 5; i++) expect(await imapLogin(b, ip, 'alice', 'alice-pass')).toBe('limited');
      scripted.push((await scriptCalls(rc.cluster)) - before);
    }
    expect(scripted.at(-1)).toBe(0);

    const lifted = await fetch(`http://127.0.0.1:${a.admin!.port}/api/v1/blocks/${ip}`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(await lifted.json()).toEqual({ reset: ['ip-failures'] });
    // The channel carries it to b within moments (pub/sub is asynchronous): bounded, no sleep.
    let verdict = await imapLogin(b, ip, 'alice', 'alice-pass');
    for (let i = 0; i < 50 && verdict === 'limited'; i++) {
      await new Promise((r) => setTimeout(r, 20));
      verdict = await imapLogin(b, ip, 'alice', 'alice-pass');
    }
    expect(verdict).toBe('ok');
  });
});
