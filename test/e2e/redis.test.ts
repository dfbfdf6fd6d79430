// Counters shared in Redis, walked as an operator would: two mailgate processes on
// one redis-server refuse the fifth login from an IP with limit 4 whichever instance it hits;
// killing Redis hangs no login; `redis-cli --scan` shows only keys with TTLs, no user names.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, spawnProxy, type BuiltCli, type RunningProxy } from '../helpers/cli.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile, redisForFile } from '../helpers/rig.js';

const store = redisForFile();
const rig = dovecotForFile();
let built: BuiltCli;
let a: RunningProxy;
let b: RunningProxy;

beforeAll(async () => {
  built = buildCli();
  const { dovecot } = rig;
  const { redis } = store;
  const config = built.writeConfig('redis.yaml', [
    'listeners:',
    '  - {name: imap, protocol: imap, listen: "127.0.0.1:0", tls: none, backend: imap}',
    `backends: {imap: {host: 127.0.0.1, port: ${dovecot.ports.imap}}}`,
    `store: {type: redis, redis: {url: "${redis.url}", timeout: 250ms, onError: deny}}`,
    'limits:',
    '  rules:',
    '    - {name: ip-logins, key: ip, count: attempts, limit: 4, window: 1h}',
    '    - {name: user-fails, key: user, count: failures, limit: 50, window: 1h, block: 1h}',
  ].join('\n'));
  const env = { MAILGATE_KEY_SECRET: 'walk-secret-0123456789' };
  [a, b] = await Promise.all([spawnProxy(built.cli, config, env), spawnProxy(built.cli, config, env)]);
}, 120_000);
afterAll(async () => {
  await Promise.all([a?.signal('SIGTERM'), b?.signal('SIGTERM')]);
  built?.remove();
});

async function login(p: RunningProxy, ip: string, pass = 'alice-pass'): Promise<string> {
  const c = await RawClient.connect(p.ports.imap!, { localAddress: ip });
  await c.waitFor(/\r\n/);
  c.write(`t LOGIN Alice ${pass}\r\n`);
  const text = await c.waitFor(/^t (OK|NO)/m);
  c.close();
  return /^t OK/m.test(text) ? 'ok' : /UNAVAILABLE\] Too many/.test(text) ? 'limited' : 'fail';
}

describe('two mailgate processes, one Redis', () => {
  it('refuse the fifth login from an IP with limit 4, whichever instance the logins hit', async () => {
    const results = [];
    for (const p of [a, b, a, b, a, b]) results.push(await login(p, '127.0.17.1'));
    expect(results).toEqual(['ok', 'ok', 'ok', 'ok', 'limited', 'limited']);
    expect(await login(b, '127.0.17.2', 'wrong')).toBe('fail');
  });

  it('redis-cli --scan: every key has a TTL and none holds a user name', () => {
    const cli = (...args: string[]) => execFileSync('redis-cli', ['-p', String(store.redis.port), ...args], { encoding: 'utf8' });
    const keys = cli('--scan').split('\n').filter(Boolean);
    expect(keys.length).toBeGreaterThanOrEqual(3);
    // Rule counters (r:), and what every success leaves: the address's users (se:, user hashes
    // in a HyperLogLog); with known-good pairs and hints on, kg: and h: (user hashes) too. Each
    // under its subject's hash tag: the address's ({i:…}) or the user hash's ({u:…}).
    expect(keys.some((k) => k.startsWith('mailgate:{i:127.0.17.1}r:'))).toBe(true);
    expect(keys.some((k) => /^mailgate:\{u:[\w-]{22}\}r:user-fails:u:[\w-]{22}/.test(k))).toBe(true);
    for (const k of keys) {
      // Counters, successes, known-good pairs, hints, and the login history's keys (lh/lp/la);
      // the nodes list: its index and each instance's record (stores/node-registry.ts).
      expect(k).toMatch(/^mailgate:\{[iu]:[^{}]+\}(r|se|kg|h|lh|lp|la):|^mailgate:\{nodes\}(:[0-9a-f]{16})?$/);
      expect(k.toLowerCase()).not.toContain('alice');
      expect(Number(cli('PTTL', k).trim())).toBeGreaterThan(0);
    }
  });

  it('killing Redis hangs no login: onError deny answers with the temporary failure', async () => {
    await store.redis.kill();
    expect(await login(a, '127.0.17.3')).toBe('limited');
    expect(await login(b, '127.0.17.4')).toBe('limited');
    await a.waitForLog((l) => l.event === 'store.fallback');
  });
});
