// The admin endpoint against a live proxy and a real Dovecot: token handling, limits and
// blocks (find, lift, log in again), metrics, health, readiness, and reload.
import { beforeAll, describe, expect, it } from 'vitest';
import { adminMain } from '../../src/admin/client.js';
import { parseConfig } from '../../src/config/load.js';
import type { TestProxy } from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile } from '../helpers/rig.js';

const TOKEN = 'admin-token-for-tests-0123';
const rig = dovecotForFile();
let proxy: TestProxy;

function config(limit = 2, extra: Record<string, unknown> = {}) {
  return {
    listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap' }],
    backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap } },
    admin: { listen: '127.0.0.1:0', token: TOKEN },
    limits: {
      rules: [
        { name: 'ip-failures', key: 'ip', count: 'failures', limit, window: '10m', block: '30m' },
        { name: 'user-logins', key: 'user', count: 'attempts', limit: 100, window: '1h' },
      ],
    },
    ...extra,
  };
}

beforeAll(async () => {
  proxy = await rig.proxy(config());
});

function api(path: string, init: RequestInit & { token?: string | null } = {}) {
  const token = init.token === undefined ? TOKEN : init.token;
  return fetch(`http://127.0.0.1:${proxy.admin!.port}${path}`, { ...init, headers: token ? { authorization: `Bearer ${token}` } : {} });
}

async function login(ip: string, pass: string, tag = 't'): Promise<string> {
  const c = await RawClient.connect(proxy.port('imap'), { localAddress: ip });
  await c.waitFor(/\r\n/);
  c.write(`${tag} LOGIN alice ${pass}\r\n`);
  const text = await c.waitFor(new RegExp(`^(${tag} (OK|NO)|\\* BYE)`, 'm')); // a blocked IP gets BYE at connect
  c.close();
  return text;
}

describe('admin endpoint', () => {
  it('health needs no token; the API and metrics refuse a missing or wrong one with a problem body', async () => {
    expect((await api('/healthz', { token: null })).status).toBe(200);
    for (const token of [null, 'wrong-token-wrong-token']) {
      const r = await api('/api/v1/blocks', { token });
      expect(r.status).toBe(401);
      expect(r.headers.get('content-type')).toBe('application/problem+json');
      expect(await r.json()).toMatchObject({ status: 401, title: 'Unauthorized' });
      expect((await api('/metrics', { token })).status).toBe(401);
    }
    expect(proxy.log.raw.join('\n')).not.toContain(TOKEN);
  });

  it('the 3 a.m. case: find the blocked IP, lift it, and the user logs in', async () => {
    expect(await login('127.0.20.1', 'wrong-a', 'a')).toMatch(/a NO \[AUTHENTICATIONFAILED\]/);
    expect(await login('127.0.20.1', 'wrong-b', 'b')).toMatch(/b NO \[AUTHENTICATIONFAILED\]/);
    expect(await login('127.0.20.1', 'alice-pass', 'c')).toMatch(/UNAVAILABLE\] Too many login attempts/);

    const blocks = (await (await api('/api/v1/blocks')).json()) as { blocks: Record<string, unknown>[] };
    expect(blocks.blocks).toEqual([expect.objectContaining({ rule: 'ip-failures', key: 'ip', ip: '127.0.20.1', count: 2, userHash: null })]);

    const limits = (await (await api('/api/v1/limits?ip=127.0.20.1&user=Alice')).json()) as { limits: Record<string, unknown>[] };
    expect(limits.limits).toEqual([
      expect.objectContaining({ rule: 'ip-failures', value: 2, limit: 2, remaining: 0, blocked: true }),
      expect.objectContaining({ rule: 'user-logins', value: 2, limit: 100, remaining: 98, blocked: false }),
    ]);

    const lifted = await api('/api/v1/blocks/127.0.20.1', { method: 'DELETE' });
    expect(lifted.status).toBe(200);
    expect(await lifted.json()).toEqual({ reset: ['ip-failures'] });
    expect((await (await api('/api/v1/blocks')).json()) as unknown).toEqual({ blocks: [] });
    expect(await login('127.0.20.1', 'alice-pass', 'd')).toMatch(/d OK/);
  });

  it('DELETE /api/v1/limits resets a user; bad queries get 400 problems', async () => {
    const r = await api('/api/v1/limits?user=alice', { method: 'DELETE' });
    expect(await r.json()).toEqual({ reset: ['user-logins'] });
    const after = (await (await api('/api/v1/limits?user=alice')).json()) as { limits: { value: number }[] };
    expect(after.limits[0]!.value).toBe(0);
    expect((await api('/api/v1/limits')).status).toBe(400);
    const bad = await api('/api/v1/limits?ip=not-an-ip');
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ detail: 'ip: expected an IPv4 or IPv6 address' });
    expect((await api('/api/v1/nothing')).status).toBe(404);
  });

  it('/metrics shows logins by outcome, refusals by rule, connections and backend latency', async () => {
    const text = await (await api('/metrics')).text();
    expect(text).toMatch(/^mailgate_login_attempts_total\{protocol="imap",outcome="fail"\} 2$/m);
    expect(text).toMatch(/^mailgate_connections_refused_total\{listener="imap",reason="blocked"\} 1$/m);
    expect(text).toMatch(/^mailgate_login_attempts_total\{protocol="imap",outcome="ok"\} 1$/m);
    expect(text).toMatch(/^mailgate_refusals_total\{rule="ip-failures"\} 1$/m);
    expect(text).toMatch(/^mailgate_backend_login_seconds_count\{backend="imap",result="fail"\} 2$/m);
    expect(text).toMatch(/^mailgate_connections\{listener="imap",state="preauth"\} 0$/m);
    expect(text).toMatch(/^mailgate_store_up 1$/m);
    expect(text).not.toMatch(/alice|127\.0\.20\.1/);
  });

  it('block by hand: POST /api/v1/blocks and `mailgate admin block`; refused at connect, listed, lifted by unblock', async () => {
    const ip = '127.0.20.7';
    expect(await login(ip, 'alice-pass', 'a')).toMatch(/^a OK/m);
    const r = await api(`/api/v1/blocks?ip=${ip}&for=2h`, { method: 'POST' });
    expect(r.status).toBe(201);
    expect(await r.json()).toEqual({ blocked: ['ip-failures'], seconds: 7200 });
    expect(await login(ip, 'alice-pass', 'b')).toMatch(/^\* BYE \[UNAVAILABLE\] Too many login attempts; try again in (71\d\d|7200) seconds/m);
    const listed = (await (await api('/api/v1/blocks')).json()) as { blocks: Record<string, unknown>[] };
    expect(listed.blocks).toContainEqual(expect.objectContaining({ rule: 'ip-failures', ip, count: 0 }));

    // The CLI, on a user: every rule keyed on users (here user-logins), from any address.
    const printed: string[] = [];
    const code = await adminMain(['block', 'alice', '--for', '10m', '--url', `http://127.0.0.1:${proxy.admin!.port}`, '--token', TOKEN], (t) => printed.push(t));
    expect(code).toBe(0);
    expect(JSON.parse(printed.join(''))).toEqual({ blocked: ['user-logins'], seconds: 600 });
    expect(await login('127.0.20.8', 'alice-pass', 'c')).toMatch(/^c NO \[UNAVAILABLE\] /m);

    // Bad requests are problems, not blocks.
    expect((await api(`/api/v1/blocks?ip=${ip}`, { method: 'POST' })).status).toBe(400);
    expect((await api(`/api/v1/blocks?ip=${ip}&for=soon`, { method: 'POST' })).status).toBe(400);
    expect((await api(`/api/v1/blocks?ip=${ip}&for=90d`, { method: 'POST' })).status).toBe(400);
    const noRule = await api(`/api/v1/blocks?ip=${ip}&for=1h&rule=user-logins`, { method: 'POST' });
    expect(noRule.status).toBe(409);
    expect(await noRule.json()).toMatchObject({ detail: 'no rule user-logins keyed on ip' });

    expect((await api(`/api/v1/blocks/${ip}`, { method: 'DELETE' })).status).toBe(200);
    expect((await api('/api/v1/blocks/alice', { method: 'DELETE' })).status).toBe(200);
    expect(await login(ip, 'alice-pass', 'd')).toMatch(/^d OK/m);
  });

  it('/readyz checks listeners, store and backends', async () => {
    const r = await api('/readyz', { token: null });
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ ready: true, checks: { listeners: true, store: true, backends: true } });
  });
});

describe('reload', () => {
  it('a raised limit applies to new logins while an open IMAP session keeps working', async () => {
    const session = await RawClient.connect(proxy.port('imap'), { localAddress: '127.0.21.9' });
    await session.waitFor(/\r\n/);
    session.write('s LOGIN alice alice-pass\r\n');
    await session.waitFor(/s OK/);

    for (const tag of ['a', 'b']) await login('127.0.21.1', `wrong-${tag}`, tag);
    expect(await login('127.0.21.1', 'alice-pass', 'c')).toMatch(/UNAVAILABLE\] Too many login attempts/);
    await api('/api/v1/blocks/127.0.21.1', { method: 'DELETE' });

    const port = proxy.port('imap');
    await proxy.reload(parseConfig({ ...config(5), listeners: [{ name: 'imap', protocol: 'imap', listen: `127.0.0.1:${port}`, tls: 'none', backend: 'imap' }] }));
    for (const tag of ['d', 'e', 'f', 'g']) expect(await login('127.0.21.1', `wrong-${tag}`, tag)).toMatch(/NO \[AUTHENTICATIONFAILED\]/);
    expect(await login('127.0.21.1', 'alice-pass', 'h')).toMatch(/h OK/);

    session.write('n NOOP\r\n');
    await session.waitFor(/n OK/); // the spliced session survived the reload
    session.close();
  });
  it('without limits.keySecret a reload keeps hashing user names alike: user counters survive it', async () => {
    const before = (await (await api('/api/v1/limits?ip=127.0.22.1&user=alice')).json()) as { limits: { rule: string; value: number }[] };
    const count = before.limits.find((l) => l.rule === 'user-logins')!.value;
    expect(count).toBeGreaterThan(0); // alice logged in above
    const port = proxy.port('imap');
    await proxy.reload(parseConfig({ ...config(5), listeners: [{ name: 'imap', protocol: 'imap', listen: `127.0.0.1:${port}`, tls: 'none', backend: 'imap' }] }));
    const after = (await (await api('/api/v1/limits?ip=127.0.22.1&user=alice')).json()) as { limits: { rule: string; value: number }[] };
    expect(after.limits.find((l) => l.rule === 'user-logins')!.value).toBe(count);
  });
});
