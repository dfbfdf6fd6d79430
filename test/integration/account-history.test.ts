// Login history and telling the user (issue 20) against a real Dovecot: alice's logins are
// kept per (network, protocol, result) with counts; her password is changed in Dovecot's
// passwd file, and the old one tried again raises the retired-password webhook (a local HTTP
// receiver) and one "* OK [ALERT]" before the tagged OK of her next IMAP login. History in a
// real Redis too, with its TTL and without the user name in any key, and on one server written
// by the login's settle script (two scripts a login).
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { adminMain } from '../../src/admin/client.js';
import type { TestProxy } from '../helpers/proxy.js';
import { hookReceiverForFile, imapLoginReply, setPassword as setPasswordIn } from '../helpers/accounts.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile, redisForFile } from '../helpers/rig.js';
import { until } from '../helpers/until.js';

const store = redisForFile();
const rig = dovecotForFile();
const TOKEN = 'history-admin-token-0123456789';
const WORDING = 'Someone tried an old password of this account';

const hook = hookReceiverForFile();
const hooks = hook.posts;

const setPassword = (user: string, pass: string) => setPasswordIn(rig.dovecot, user, pass);
const login = (p: TestProxy, ip: string, user: string, pass: string) => imapLoginReply(p.port('imap'), ip, user, pass);

type Row = { network: string; protocol: string; result: string; client?: string; count: number; first: string; last: string };
async function history(p: TestProxy, user: string): Promise<{ userHash: string; entries: Row[] }> {
  const res = await fetch(`http://127.0.0.1:${p.admin!.port}/api/v1/history?user=${user}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as { userHash: string; entries: Row[] };
}
const row = (rows: Row[], result: string) => rows.find((r) => r.result === result);

function config(extra: Record<string, unknown> = {}) {
  return {
    listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap' }],
    backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap } },
    admin: { listen: '127.0.0.1:0', token: TOKEN },
    limits: { keySecret: 'history-key-secret-0123456789', rules: [] },
    ...extra,
  };
}

describe('login history and the retired-password alert (memory store)', () => {
  afterAll(() => setPassword('alice', 'alice-pass'));

  it('an old password after a change: webhook, then one [ALERT] before the tagged OK', async () => {
    const p = await rig.proxy(
      config({
        alerts: { webhooks: [{ url: hook.url, events: ['retired-password', 'new-network'], cooldown: '1s' }] },
        notify: { retiredPassword: true, newNetwork: true, imapAlert: WORDING },
      }),
    );
    await setPassword('alice', 'pass-A');
    expect(await login(p, '127.0.71.5', 'alice', 'pass-A')).toMatch(/^a OK/m);
    await waitRow(p, 'ok', 1);
    const h = await history(p, 'alice');
    expect(h.entries).toMatchObject([{ network: '127.0.71.0/24', protocol: 'imap', result: 'ok', count: 1 }]);
    expect(h.userHash).not.toContain('alice');

    await setPassword('alice', 'pass-B');
    expect(await login(p, '127.0.71.6', 'alice', 'pass-B')).toMatch(/^a OK/m);
    await waitRow(p, 'ok', 2);
    expect(hooks.filter((x) => x.kind === 'new-network')).toEqual([]); // the same /24

    // Someone else, elsewhere, with the retired password: twice, one row counting both.
    for (const ip of ['127.0.72.9', '127.0.72.10']) expect(await login(p, ip, 'alice', 'pass-A')).toMatch(/^a NO/m);
    await until(() => hooks.some((x) => x.kind === 'retired-password'), 'the retired-password webhook', 10_000);
    const event = hooks.find((x) => x.kind === 'retired-password')!.events[0]!;
    expect(event).toMatchObject({ kind: 'retired-password', network: '127.0.72.0/24', protocol: 'imap', subject: h.userHash });
    await waitRow(p, 'fail', 2);
    expect(row((await history(p, 'alice')).entries, 'fail')).toMatchObject({ network: '127.0.72.0/24', count: 2 });

    // alice's next login shows the alert once, before her tagged OK; the one after does not.
    const first = await login(p, '127.0.71.5', 'alice', 'pass-B');
    expect(first).toMatch(new RegExp(`^\\* OK \\[ALERT\\] ${WORDING}\\r\\na OK`, 'm'));
    const second = await login(p, '127.0.71.5', 'alice', 'pass-B');
    expect(second).toMatch(/^a OK/m);
    expect(second).not.toContain('[ALERT]');
    // A wrong password that never succeeded is no retired one.
    const before = hooks.filter((x) => x.kind === 'retired-password').length;
    expect(await login(p, '127.0.72.11', 'alice', 'never-used')).toMatch(/^a NO/m);
    await waitRow(p, 'fail', 3);
    expect(hooks.filter((x) => x.kind === 'retired-password').length).toBe(before);
    expect(await login(p, '127.0.71.5', 'alice', 'pass-B')).not.toContain('[ALERT]');

    // A success from another network is a new-network event.
    expect(await login(p, '127.0.73.1', 'alice', 'pass-B')).toMatch(/^a OK/m);
    await until(() => hooks.some((x) => x.kind === 'new-network'), 'the new-network webhook', 10_000);
    expect(hooks.find((x) => x.kind === 'new-network')!.events[0]).toMatchObject({ network: '127.0.73.0/24', subject: h.userHash });

    // The CLI prints the same history.
    let printed = '';
    const code = await adminMain(['history', '--user', 'alice', '--url', `http://127.0.0.1:${p.admin!.port}`, '--token', TOKEN], (s) => (printed += s));
    expect(code).toBe(0);
    expect(JSON.parse(printed).entries.map((r: Row) => `${r.network} ${r.result}`).sort()).toEqual(['127.0.71.0/24 ok', '127.0.72.0/24 fail', '127.0.73.0/24 ok']);
  });

  it('without notify: no ALERT and no event, history still kept', async () => {
    hooks.length = 0;
    await setPassword('bob', 'bob-A');
    const p = await rig.proxy(config({ alerts: { webhooks: [{ url: hook.url, cooldown: '1s' }] } }));
    expect(await login(p, '127.0.74.1', 'bob', 'bob-A')).toMatch(/^a OK/m);
    await setPassword('bob', 'bob-B');
    expect(await login(p, '127.0.74.1', 'bob', 'bob-B')).toMatch(/^a OK/m);
    await waitRow(p, 'ok', 2, 'bob');
    expect(await login(p, '127.0.75.1', 'bob', 'bob-A')).toMatch(/^a NO/m);
    await waitRow(p, 'fail', 1, 'bob');
    expect(await login(p, '127.0.74.1', 'bob', 'bob-B')).not.toContain('[ALERT]');
    expect(hooks.filter((x) => x.kind === 'retired-password' || x.kind === 'new-network')).toEqual([]);
    await setPassword('bob', 'bob-pass');
  });
});

describe('login history in Redis', () => {
  it('is kept under the user slot with its TTL, and read back by the admin API', async () => {
    const prefix = 'hist:';
    const p = await rig.proxy(config({ store: { type: 'redis', redis: { url: store.redis.url, keyPrefix: prefix, timeout: '500ms' } }, history: { keep: '7d', maxEntries: 10 } }));
    expect(await login(p, '127.0.76.1', 'alice', 'alice-pass')).toMatch(/^a OK/m);
    for (let i = 0; i < 3; i++) expect(await login(p, '127.0.76.2', 'alice', 'wrong')).toMatch(/^a NO/m);
    await waitRow(p, 'fail', 3);
    // A client that says its name in ID (RFC 2971) is a row of its own.
    const c = await RawClient.connect(p.port('imap'), { localAddress: '127.0.76.3' });
    await c.waitFor(/\r\n/);
    c.write('i ID ("name" "Test Mail" "version" "1.0")\r\na LOGIN alice alice-pass\r\n');
    await c.waitFor(/^a OK/m);
    c.close();
    await until(async () => (await history(p, 'alice')).entries.length === 3, 'the named client\'s row', 10_000);
    const h = await history(p, 'alice');
    expect(h.entries.map((r) => [r.network, r.result, r.client, r.count])).toEqual([
      ['127.0.76.0/24', 'ok', 'Test Mail', 1],
      ['127.0.76.0/24', 'fail', undefined, 3],
      ['127.0.76.0/24', 'ok', undefined, 1],
    ]);
    const redis = new Redis(store.redis.url);
    try {
      const keys = await redis.keys(`${prefix}*lh:*`);
      expect(keys).toEqual([`${prefix}{u:${h.userHash}}lh:${h.userHash}`]);
      const ttl = await redis.pttl(keys[0]!);
      expect(ttl).toBeGreaterThan(7 * 86_400_000 - 60_000);
      expect(ttl).toBeLessThanOrEqual(7 * 86_400_000);
      expect((await redis.keys(`${prefix}*`)).join(' ')).not.toContain('alice');
    } finally {
      redis.disconnect();
    }
  });
});

describe('login history on one Redis server', () => {
  it('a login is two scripts, one hit and one settle, the settle writing the history row before the answer', async () => {
    const prefix = 'scripts:';
    const rules = [
      { name: 'ip-logins', key: 'ip', count: 'attempts', limit: 100, window: '1h' },
      { name: 'ip-failures', key: 'ip', count: 'failures', limit: 100, window: '1h' },
      { name: 'user-failures', key: 'user', count: 'failures', limit: 100, window: '1h' },
    ];
    const p = await rig.proxy({
      ...config({ store: { type: 'redis', redis: { url: store.redis.url, keyPrefix: prefix, timeout: '500ms' } } }),
      limits: { keySecret: 'history-key-secret-0123456789', knownGood: { ttl: '1d' }, rules },
    });
    // The first login loads the scripts (EVAL after a NOSCRIPT).
    expect(await login(p, '127.0.77.1', 'alice', 'alice-pass')).toMatch(/^a OK/m);
    await waitRow(p, 'ok', 1);
    const admin = new Redis(store.redis.url);
    const monitor = await admin.monitor();
    const seen: string[] = [];
    monitor.on('monitor', (_t: string, args: string[], source: string) => source !== 'lua' && seen.push(`${args[0]!.toLowerCase()} ${args[1] ?? ''}`));
    try {
      for (let i = 0; i < 3; i++) {
        expect(await login(p, '127.0.77.1', 'alice', 'alice-pass')).toMatch(/^a OK/m);
        // Written with the settle, before the answer: there as soon as the client has it.
        expect(row((await history(p, 'alice')).entries, 'ok')?.count).toBe(2 + i);
      }
      for (let i = 0; i < 3; i++) expect(await login(p, '127.0.78.1', 'alice', 'wrong')).toMatch(/^a NO/m);
      await waitRow(p, 'fail', 3);
      // MONITOR is asynchronous but in order: once our marker shows, every script before it has.
      await admin.echo('done');
      await until(() => seen.includes('echo done'), 'MONITOR to show the marker', 10_000);
      expect(seen.filter((c) => c.startsWith('eval'))).toHaveLength(12);
    } finally {
      monitor.disconnect();
      admin.disconnect();
    }
  });
});

/** The history row of `result` reaches `count` (history is written after the login's answer). */
async function waitRow(p: TestProxy, result: string, count: number, user = 'alice'): Promise<void> {
  await until(async () => (row((await history(p, user)).entries, result)?.count ?? 0) >= count, `${count} ${result} in ${user}'s history`, 10_000);
}
