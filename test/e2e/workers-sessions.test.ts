// Sessions and kick in worker mode (issue 20), with the compiled CLI (`workers: 2`, a real
// redis-server) in front of a real Dovecot: the primary's GET /api/v1/sessions lists the
// spliced sessions of both workers; `mailgate admin kick` ends a user's sessions in whichever
// worker holds them; a kick made on another instance (in-process, same Redis) reaches the
// workers through the primary's `<keyPrefix>kick` subscriber.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { SessionView } from '../../src/server/live-sessions.js';
import { buildCli, spawnProxy, workersConfig, type BuiltCli, type RunningProxy } from '../helpers/cli.js';
import type { RawClient } from '../helpers/raw-client.js';
import { imapSession, subscribersOf } from '../helpers/sessions.js';
import { dovecotForFile, redisForFile } from '../helpers/rig.js';
import { until } from '../helpers/until.js';

const TOKEN = 'workers-sessions-token-0123456789';
const SECRET = 'workers-sessions-secret-0123456789';
const PREFIX = 'wk:';
const store = redisForFile();
const rig = dovecotForFile();
/** The worker mode under test: the Redis store (its kick channel), no rules. */
const redisWorkers = () =>
  workersConfig(rig.dovecot.ports.imap, {
    store: { type: 'redis', redis: { url: store.redis.url, keyPrefix: PREFIX } },
    limits: { keySecret: SECRET, rules: [] },
  });
let built: BuiltCli | undefined;
let proxy: RunningProxy;

beforeAll(async () => {
  built = buildCli();
  proxy = await spawnProxy(built.cli, built.writeConfig('sessions.yaml', stringify(redisWorkers())), { MAILGATE_ADMIN_TOKEN: TOKEN });
}, 120_000);
afterAll(async () => {
  await proxy?.signal('SIGKILL');
  built?.remove();
});

const session = (ip: string, user: string) => imapSession(proxy.ports.imap!, ip, user);

async function listed(): Promise<{ total: number; sessions: SessionView[] }> {
  const res = await fetch(`http://127.0.0.1:${proxy.admin}/api/v1/sessions`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as { total: number; sessions: SessionView[] };
}

const kickedBy = (pred: (l: Record<string, unknown>) => boolean) => proxy.lines().filter((l) => l.event === 'session.kicked' && pred(l));

describe('workers: 2, sessions and kick', () => {
  it('lists the sessions of both workers; `mailgate admin kick --user` ends alice\'s in each, bob\'s stays', async () => {
    const bob = await session('127.0.40.1', 'bob');
    const alice: RawClient[] = [];
    // The kernel spreads connections over the workers: log in until both hold one of alice's.
    for (let i = 0; i < 40; i++) {
      alice.push(await session(`127.0.41.${i + 1}`, 'alice'));
      if (new Set((await listed()).sessions.filter((s) => s.user === 'alice').map((s) => s.worker)).size === 2) break;
    }
    const list = await listed();
    expect(list.total).toBe(alice.length + 1);
    expect(new Set(list.sessions.map((s) => s.worker))).toEqual(new Set([1, 2]));
    expect(new Set(list.sessions.map((s) => s.pid)).size).toBe(2);
    for (const s of list.sessions) expect([s.protocol, s.listener, s.tls, s.bytesIn]).toEqual(['imap', 'imap', null, 'b NOOP\r\n'.length]);
    expect(list.sessions.find((s) => s.user === 'bob')?.ip).toBe('127.0.40.1');

    const out = built!.run(['admin', 'kick', '--user', 'alice', '--url', `http://127.0.0.1:${proxy.admin}`], { MAILGATE_ADMIN_TOKEN: TOKEN });
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({ user: 'alice', ended: alice.length, announced: true });
    for (const c of alice) await c.waitClosed();
    bob.write('c NOOP\r\n');
    await bob.waitFor(/^c OK/m);
    // Log lines reach stdout in batches (flushed within a second).
    await until(() => kickedBy((l) => l.user === 'alice').length >= alice.length, 'the workers log their kicks');
    expect(new Set(kickedBy((l) => l.user === 'alice').map((l) => l.worker))).toEqual(new Set([1, 2]));
    const after = await listed();
    expect(after.sessions.map((s) => s.user)).toEqual(['bob']);
    const metrics = await (await fetch(`http://127.0.0.1:${proxy.admin}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    expect(metrics).toMatch(new RegExp(`^mailgate_sessions_kicked_total ${alice.length}$`, 'm'));
    bob.close();
  });

  it('a kick by address made on another instance on the same Redis ends the session in its worker', async () => {
    const other = await rig.proxy({
      listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap' }],
      backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap } },
      store: { type: 'redis', redis: { url: store.redis.url, keyPrefix: PREFIX } },
      admin: { listen: '127.0.0.1:0', token: TOKEN },
      limits: { keySecret: SECRET, rules: [] },
    });
    expect(await subscribersOf(store.redis.url, `${PREFIX}kick`, 2)).toBe(2); // the primary's and the other instance's; no worker subscribes
    const bob = await session('127.0.42.1', 'bob');
    const alice = await session('127.0.42.2', 'alice');
    const res = await fetch(`http://127.0.0.1:${other.admin!.port}/api/v1/sessions/kick?ip=127.0.42.1`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(await res.json()).toEqual({ ip: '127.0.42.1', ended: 0, announced: true });
    await bob.waitClosed();
    alice.write('c NOOP\r\n');
    await alice.waitFor(/^c OK/m);
    await until(() => kickedBy((l) => l.ip === '127.0.42.1').length > 0, 'the worker logs its kick');
    expect(kickedBy((l) => l.ip === '127.0.42.1').map((l) => l.user)).toEqual(['bob']);
    alice.close();
  });
});
