// Backend pools against two real Dovecots: a stopped server is skipped and logins keep
// working; sticky users stay on one server; with every server down the client gets the
// temporary failure and is not charged; the health check brings a server back.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { BackendPools } from '../../src/backend/pool.js';
import { createLogger } from '../../src/logging/logger.js';
import type { DovecotInstance } from '../helpers/dovecot.js';
import { freePort } from '../helpers/ports.js';
import type { TestProxy } from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotsForFile } from '../helpers/rig.js';

// 16 users: the chance that rendezvous hashing puts them all on one of two servers is 2^-15.
const USERS = Array.from({ length: 16 }, (_, i) => ({ user: `user${i}`, pass: `user${i}-pass` }));
const rig = dovecotsForFile([{ users: USERS }, { users: USERS }]);

async function proxyWith(servers: string[], extra: Record<string, unknown> = {}, rules: unknown[] = []): Promise<TestProxy> {
  return rig.proxy({
    listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'pool' }],
    backends: { pool: { servers, connectTimeout: '2s', ...extra } },
    limits: { rules },
  });
}

async function login(p: TestProxy, user: string, ip = '127.0.80.1'): Promise<string> {
  const c = await RawClient.connect(p.port('imap'), { localAddress: ip });
  await c.waitFor(/\r\n/);
  c.write(`t LOGIN ${user} ${user}-pass\r\n`);
  const text = await c.waitFor(/^t (OK|NO)/m);
  c.close();
  return /^t OK/m.test(text) ? 'ok' : /UNAVAILABLE\] Too many/.test(text) ? 'limited' : /UNAVAILABLE/.test(text) ? 'unavailable' : 'fail';
}

const loginsIn = (d: DovecotInstance, user: string) => (d.readLog().match(new RegExp(`imap-login: (?:Info: )?Login: user=<${user}>`, 'g')) ?? []).length;

describe('backend pools', () => {
  it('sticky: user sends each user to one server, and the users spread over both', async () => {
    const [a, b] = rig.dovecots as [DovecotInstance, DovecotInstance];
    const p = await proxyWith([`127.0.0.1:${a.ports.imap}`, `127.0.0.1:${b.ports.imap}`], { sticky: 'user' });
    for (const u of USERS) for (let i = 0; i < 3; i++) expect(await login(p, u.user)).toBe('ok');
    await Promise.all([a.settledLog(), b.settledLog()]);
    const placement = USERS.map((u) => [loginsIn(a, u.user), loginsIn(b, u.user)]);
    for (const [ina, inb] of placement) expect([ina, inb].sort()).toEqual([0, 3]);
    expect(placement.some(([ina]) => ina === 3)).toBe(true);
    expect(placement.some(([, inb]) => inb === 3)).toBe(true);
  });

  it('with one of two servers down, logins keep working; with all down, a temporary failure that is not charged', async () => {
    const [, b] = rig.dovecots as [DovecotInstance, DovecotInstance];
    const dead = await freePort(); // nothing listens here
    const p = await proxyWith([`127.0.0.1:${dead}`, `127.0.0.1:${b.ports.imap}`], {}, [
      { name: 'ip-failures', key: 'ip', count: 'failures', limit: 1, window: '10m' },
    ]);
    for (let i = 0; i < 4; i++) expect(await login(p, 'user0', '127.0.81.1')).toBe('ok');
    expect(p.log.lines.filter((l) => l.event === 'backend.down')).toHaveLength(1);

    const allDead = await proxyWith([`127.0.0.1:${dead}`, `127.0.0.1:${await freePort()}`], {}, [
      { name: 'ip-failures', key: 'ip', count: 'failures', limit: 1, window: '10m' },
    ]);
    for (let i = 0; i < 3; i++) expect(await login(allDead, 'user0', '127.0.81.2')).toBe('unavailable');
    expect(allDead.log.lines.filter((l) => l.outcome === 'backend-error')).toHaveLength(3);
  });
});

describe('BackendPools health', () => {
  it('a server marked down is tried last, and the health check brings it back', async () => {
    const [a] = rig.dovecots as [DovecotInstance];
    const port = await freePort();
    const cfg = parseConfig({
      listeners: [{ name: 'i', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'pool' }],
      backends: { pool: { servers: [`127.0.0.1:${port}`, `127.0.0.1:${a.ports.imap}`] } },
    });
    const pools = new BackendPools(() => cfg.backends, createLogger('silent'));
    await pools.check();
    expect(pools.healthy({ host: '127.0.0.1', port })).toBe(false);
    expect(pools.candidates('pool', 'x').map((s) => s.port)).toEqual([a.ports.imap, port]);
    const srv = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => srv.listen(port, '127.0.0.1', () => r()));
    await pools.check();
    expect(pools.healthy({ host: '127.0.0.1', port })).toBe(true);
    srv.close();
  });
});
