// Faults in the shared store: a real redis-server stalled with SIGSTOP (connections open, no
// answers: the hard case, since nothing tells the client it is gone) and killed, mid-run,
// under a stream of IMAP, POP3 and SMTP logins against a real Dovecot. Every login is
// answered while Redis is still down, as store.redis.onError says (local, allow, deny);
// the fallback is logged once per outage, and recovery is automatic.
//
// Already covered elsewhere: Redis killed between logins for each onError
// (integration/redis-proxy.test.ts), the wrapper's deadline with a fake store
// (unit/resilient-store.test.ts), two CLI processes on one killed Redis (e2e/redis.test.ts).
import { describe, expect, it } from 'vitest';
import { LOGIN_OK, loginOnce, PROTOS, proxyConfig, TEMP_FAIL, type Proto } from '../helpers/hostile.js';
import { until } from '../helpers/until.js';
import type { TestProxy } from '../helpers/proxy.js';
import { dovecotForFile, redisForFile } from '../helpers/rig.js';

// Redis first, so the proxies (on the Dovecot rig) stop before it does; its stop() wakes a
// server a failed test left paused.
const store = redisForFile();
const rig = dovecotForFile();

async function instance(onError: string, prefix: string, limit: number): Promise<TestProxy> {
  return rig.proxy({
    ...proxyConfig(rig.dovecot, { limits: { keySecret: 'hostile-redis-secret-0123', rules: [{ name: 'ip-logins', key: 'ip', count: 'attempts', limit, window: '1h' }] } }),
    store: { type: 'redis', redis: { url: store.redis.url, keyPrefix: prefix, timeout: '250ms', onError } },
  });
}

const outcome = (proto: Proto, text: string) => (LOGIN_OK[proto].test(text) ? 'ok' : TEMP_FAIL[proto].test(text) ? 'temp' : `other: ${text}`);

describe('Redis stalled (SIGSTOP) and killed mid-run', () => {
  it('onError local: a stream of logins on every protocol is answered throughout; fallback once per outage; recovery', async () => {
    const p = await instance('local', 'stall-local:', 1000);
    try {
      let stop = false;
      const results: string[] = [];
      // Six clients logging in over and over, two per protocol.
      const workers = Array.from({ length: 6 }, async (_, i) => {
        const proto = PROTOS[i % 3]!;
        while (!stop) results.push(outcome(proto, await loginOnce(proto, p.port(`${proto}-plain`), 'alice', 'alice-pass', { localAddress: `127.0.48.${1 + i}` })));
      });
      const phase = async (n: number) => {
        const target = results.length + n;
        await until(() => results.length >= target, `${n} more logins`, 30_000);
      };
      await phase(6);
      store.redis.pause();
      await phase(12); // all answered while Redis is frozen
      const stalled = p.log.lines.filter((l) => l.event === 'store.fallback');
      expect(stalled).toHaveLength(1);
      expect(String(stalled[0]!.error)).toMatch(/250 ms|timed out|timeout/i);
      store.redis.resume();
      await until(() => p.log.lines.some((l) => l.event === 'store.recovered'), 'recovery after SIGCONT', 30_000);
      await phase(6);
      await store.redis.kill();
      await phase(12); // all answered while Redis is gone
      await store.redis.restart();
      await until(() => p.log.lines.filter((l) => l.event === 'store.recovered').length === 2, 'recovery after restart', 30_000);
      await phase(6);
      stop = true;
      await Promise.all(workers);
      expect(results.filter((r) => r !== 'ok')).toEqual([]);
      expect(p.log.lines.filter((l) => l.event === 'store.fallback')).toHaveLength(2);
    } finally {
      store.redis.resume();
      await p.stop();
    }
  }, 90_000);

  it('onError deny and allow while Redis is frozen: temporary failure, or no limit; never a hang', async () => {
    const deny = await instance('deny', 'stall-deny:', 1000);
    const allow = await instance('allow', 'stall-allow:', 2);
    try {
      for (const proto of PROTOS) expect(outcome(proto, await loginOnce(proto, deny.port(`${proto}-plain`), 'bob', 'bob-pass', { localAddress: '127.0.48.20' }))).toBe('ok');
      store.redis.pause();
      for (const proto of PROTOS) {
        expect(outcome(proto, await loginOnce(proto, deny.port(`${proto}-plain`), 'bob', 'bob-pass', { localAddress: '127.0.48.20' }))).toBe('temp');
        // limit 2 on the IP, yet three logins per protocol pass: limits are off while it lasts.
        for (let i = 0; i < 3; i++) expect(outcome(proto, await loginOnce(proto, allow.port(`${proto}-plain`), 'bob', 'bob-pass', { localAddress: '127.0.48.21' }))).toBe('ok');
      }
      store.redis.resume();
      // Limits apply again as soon as Redis answers (a fresh IP: a fresh counter).
      const after: string[] = [];
      for (let i = 0; i < 4; i++) after.push(outcome('imap', await loginOnce('imap', allow.port('imap-plain'), 'bob', 'bob-pass', { localAddress: '127.0.48.22' })));
      expect(after).toEqual(['ok', 'ok', 'temp', 'temp']);
      for (const p of [deny, allow]) expect(p.log.lines.filter((l) => l.event === 'store.fallback')).toHaveLength(1);
    } finally {
      store.redis.resume();
      await deny.stop();
      await allow.stop();
    }
  }, 60_000);
});
