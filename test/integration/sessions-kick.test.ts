// Live sessions and kick (issue 20): two in-process mailgate instances on one real
// redis-server in front of a real Dovecot. GET /api/v1/sessions lists an instance's spliced
// sessions with their bytes; POST /api/v1/sessions/kick on instance B ends the user's (or the
// address's) sessions on A too (the `<keyPrefix>kick` channel), and only theirs.
import { describe, expect, it } from 'vitest';
import { adminMain } from '../../src/admin/client.js';
import type { SessionView } from '../../src/server/live-sessions.js';
import type { TestProxy } from '../helpers/proxy.js';
import type { RawClient } from '../helpers/raw-client.js';
import { imapSession, subscribersOf } from '../helpers/sessions.js';
import { dovecotForFile, redisForFile } from '../helpers/rig.js';
import { until } from '../helpers/until.js';

// Redis first, so the instances (on the Dovecot rig) stop before it does.
const store = redisForFile();
const rig = dovecotForFile();
const TOKEN = 'kick-admin-token-0123456789';

/** An instance on the Redis under `prefix`; `admin: false`: no admin endpoint (it still hears
 *  the others' kicks). */
async function instance(prefix: string, admin = true): Promise<TestProxy> {
  return rig.proxy({
    listeners: [
      { name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap' },
      { name: 'imaps', protocol: 'imap', listen: '127.0.0.1:0', tls: 'implicit', backend: 'imap' },
    ],
    tls: { cert: rig.dovecot.cert.certPath, key: rig.dovecot.cert.keyPath },
    backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap } },
    store: { type: 'redis', redis: { url: store.redis.url, keyPrefix: prefix, timeout: '500ms' } },
    ...(admin ? { admin: { listen: '127.0.0.1:0', token: TOKEN } } : {}),
    limits: { keySecret: 'kick-key-secret-0123456789', rules: [] },
  });
}

/** Two instances whose kick subscribers both listen (as Redis itself counts them). */
async function pair(prefix: string, adminOnA = true): Promise<[TestProxy, TestProxy]> {
  const both = await Promise.all([instance(prefix, adminOnA), instance(prefix)]);
  expect(await subscribersOf(store.redis.url, `${prefix}kick`, 2)).toBe(2);
  return both;
}

const session = (p: TestProxy, ip: string, user: string, listener = 'imap') => imapSession(p.port(listener), ip, user, listener === 'imaps');

async function api(p: TestProxy, method: string, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${p.admin!.port}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function stillServed(c: RawClient, tag: string): Promise<void> {
  c.write(`${tag} NOOP\r\n`);
  await c.waitFor(new RegExp(`^${tag} OK`, 'm'));
}

describe('sessions and kick across two instances on one Redis', () => {
  it('GET /api/v1/sessions lists the spliced sessions of the instance with their bytes', async () => {
    const [a] = await pair('list:');
    const alice = await session(a, '127.0.30.1', 'alice');
    const bob = await session(a, '127.0.30.2', 'bob', 'imaps');
    const { status, body } = await api(a, 'GET', '/api/v1/sessions');
    expect(status).toBe(200);
    expect(body.total).toBe(2);
    const list = body.sessions as SessionView[];
    expect(list.map((s) => [s.user, s.ip, s.protocol, s.listener, s.tls])).toEqual([
      ['alice', '127.0.30.1', 'imap', 'imap', null],
      ['bob', '127.0.30.2', 'imap', 'imaps', 'TLSv1.3'],
    ]);
    for (const s of list) {
      expect(s.bytesIn).toBe('b NOOP\r\n'.length);
      expect(s.bytesOut).toBeGreaterThan(0);
      expect(Date.now() - Date.parse(s.since)).toBeLessThan(60_000);
    }
    // Unauthenticated: no list.
    expect((await fetch(`http://127.0.0.1:${a.admin!.port}/api/v1/sessions`)).status).toBe(401);
    alice.close();
    await until(() => a.sessions.list().total === 1, 'the closed session leaves the list');
    expect(a.sessions.list().sessions[0]!.user).toBe('bob');
    bob.close();
  });

  it('a kick of alice made on instance B closes her session on A (no admin endpoint) and on B; bob stays', async () => {
    const [a, b] = await pair('user:', false);
    const aliceA = await session(a, '127.0.31.1', 'alice');
    const aliceB = await session(b, '127.0.31.2', 'alice');
    const bobA = await session(a, '127.0.31.3', 'bob');
    const { status, body } = await api(b, 'POST', '/api/v1/sessions/kick?user=alice');
    expect(status).toBe(200);
    expect(body).toEqual({ user: 'alice', ended: 1, announced: true });
    await aliceB.waitClosed();
    await aliceA.waitClosed();
    await stillServed(bobA, 'c');
    expect(a.sessions.list().sessions.map((s) => s.user)).toEqual(['bob']);
    // Each instance logs and counts what it ended.
    for (const p of [a, b]) {
      expect(p.log.lines.filter((l) => l.event === 'session.kicked').map((l) => l.user)).toEqual(['alice']);
      expect(await p.metrics.registry.getSingleMetricAsString('mailgate_sessions_kicked_total')).toMatch(/^mailgate_sessions_kicked_total 1$/m);
      expect(p.log.lines.find((l) => l.event === 'splice.end' && l.endedBy === 'kicked')).toBeDefined();
    }
    expect(JSON.stringify(a.log.lines)).not.toContain('alice-pass');
    bobA.close();
  });

  it('a kick by address through `mailgate admin kick --ip` ends only that address\'s sessions, wherever they are', async () => {
    const [a, b] = await pair('ip:');
    const bob = await session(a, '127.0.32.1', 'bob');
    const alice = await session(a, '127.0.32.2', 'alice');
    const printed: string[] = [];
    const code = await adminMain(['kick', '--ip', '127.0.32.1', '--url', `http://127.0.0.1:${b.admin!.port}`, '--token', TOKEN], (t) => printed.push(t));
    expect(code).toBe(0);
    expect(JSON.parse(printed.join(''))).toEqual({ ip: '127.0.32.1', ended: 0, announced: true });
    await bob.waitClosed();
    await stillServed(alice, 'c');
    expect(a.log.lines.filter((l) => l.event === 'session.kicked').map((l) => [l.user, l.ip])).toEqual([['bob', '127.0.32.1']]);
    alice.close();
  });

  it('with the memory store a kick ends the sessions of this instance and announces nothing', async () => {
    const solo = await rig.proxy({
      listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap' }],
      backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap } },
      admin: { listen: '127.0.0.1:0', token: TOKEN },
    });
    const alice = await session(solo, '127.0.33.1', 'alice');
    expect((await api(solo, 'POST', '/api/v1/sessions/kick?user=alice')).body).toEqual({ user: 'alice', ended: 1, announced: false });
    await alice.waitClosed();
  });

  it('a kick names one user or one address, as logins name them', async () => {
    const [a] = await pair('bad:');
    expect((await api(a, 'POST', '/api/v1/sessions/kick')).status).toBe(400);
    expect((await api(a, 'POST', '/api/v1/sessions/kick?user=alice&ip=127.0.0.1')).status).toBe(400);
    expect((await api(a, 'POST', '/api/v1/sessions/kick?ip=not-an-ip')).status).toBe(400);
    expect((await api(a, 'GET', '/api/v1/sessions/kick?user=alice')).status).toBe(405);
    const printed: string[] = [];
    expect(await adminMain(['kick', '--url', `http://127.0.0.1:${a.admin!.port}`], (t) => printed.push(t))).toBe(2);
  });
});
