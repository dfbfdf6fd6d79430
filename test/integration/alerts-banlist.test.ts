// The ban feed's consumers that need no outside program: alert webhooks posted to a local HTTP
// receiver (aggregated per kind within the cooldown, retried after a failure), and the ban
// list of the admin API (only blocks a firewall may enforce). The memory store on a
// ManualClock; blocks made as the admin API and the rules make them.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config/load.js';
import { Integrations } from '../../src/integrations/index.js';
import { KeyBuilder } from '../../src/limits/keys.js';
import { Policy } from '../../src/limits/policy.js';
import { MemoryStore } from '../../src/stores/memory.js';
import { captureLogger } from '../helpers/log-capture.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { until } from '../helpers/until.js';

interface Received {
  body: { kind: string; count: number; more: number; events: { subject?: string; rule?: string }[]; text: string };
  headers: http.IncomingHttpHeaders;
}

let receiver: http.Server;
let url: string;
const received: Received[] = [];
let failNext = 0;

beforeAll(async () => {
  receiver = http.createServer((req, res) => {
    let data = '';
    req.on('data', (c: Buffer) => (data += c.toString()));
    req.on('end', () => {
      if (failNext > 0) {
        failNext--;
        res.writeHead(503).end();
        return;
      }
      received.push({ body: JSON.parse(data), headers: req.headers });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
});
afterAll(() => new Promise<void>((r) => receiver.close(() => r())));

function world() {
  const cfg = parseConfig({
    policyServer: { listen: '127.0.0.1:0' },
    alerts: { webhooks: [{ url, cooldown: '5m', headers: { authorization: 'Bearer hook-token' } }] },
    limits: {
      rules: [
        { name: 'ip-failures', key: 'ip', count: 'failures', limit: 10, window: '10m', block: '30m' },
        { name: 'user-spread', key: 'user', count: 'failures', distinct: 'ip', limit: 5, window: '1h', block: '1h' },
      ],
    },
  });
  const clock = new ManualClock();
  const store = new MemoryStore(clock);
  const policy = new Policy(cfg.limits, store, new KeyBuilder('test-secret-0123456789'), clock);
  const { logger, captured } = captureLogger();
  const integrations = new Integrations(cfg, { store, policy: () => policy, config: () => cfg, clock, log: logger });
  return { cfg, clock, store, policy, integrations, captured };
}

const delivered = (n: number) => until(() => received.length >= n, `${n} webhook posts`, 5_000);

describe('alert webhooks', () => {
  it('a burst of blocks is one message now and one aggregated message when the cooldown ends', async () => {
    received.length = 0;
    const w = world();
    const ipRule = w.policy.rules.find((r) => r.name === 'ip-failures')!;
    for (let i = 1; i <= 13; i++) await w.store.block(w.policy.ruleSpec(ipRule, `192.0.2.${i}`, '').spec.key, 1_800_000);
    await w.integrations.feed.refresh();
    await w.integrations.alerts!.tick();
    await delivered(1);
    expect(received).toHaveLength(1);
    expect(received[0]!.body).toMatchObject({ kind: 'block', count: 1, more: 0 });
    expect(received[0]!.headers.authorization).toBe('Bearer hook-token');
    // Within the cooldown: nothing more is sent.
    w.clock.advance(60_000);
    await w.integrations.alerts!.tick();
    expect(received).toHaveLength(1);
    w.clock.advance(240_000);
    await w.integrations.alerts!.tick();
    await delivered(2);
    expect(received).toHaveLength(2);
    expect(received[1]!.body).toMatchObject({ kind: 'block', count: 12, more: 11 });
    expect(received[1]!.body.events).toHaveLength(10);
    expect(received[1]!.body.text).toMatch(/^mailgate: 12 addresses were blocked by rules: 192\.0\.2\.\d+ rule ip-failures until .* \(and 11 more\)$/);
  });

  it("an account under protection is named by its keyed hash, never in clear; a failed post is retried", async () => {
    received.length = 0;
    const w = world();
    const userRule = w.policy.rules.find((r) => r.name === 'user-spread')!;
    await w.store.block(w.policy.ruleSpec(userRule, '', 'alice@example.org').spec.key, 3_600_000);
    failNext = 1;
    await w.integrations.feed.refresh();
    await w.integrations.alerts!.tick();
    await until(() => w.captured.lines.some((l) => l.event === 'integrations.error'), 'the failed post', 5_000);
    expect(received).toHaveLength(0);
    expect(w.captured.lines.filter((l) => l.event === 'integrations.error')).toHaveLength(1);
    w.clock.advance(1_000);
    await w.integrations.alerts!.tick();
    await delivered(1);
    expect(received[0]!.body).toMatchObject({ kind: 'protection', count: 1 });
    expect(received[0]!.body.events[0]!.subject).toBe(w.policy.keys.userHash('alice@example.org'));
    expect(JSON.stringify(received[0]!.body)).not.toContain('alice');
  });

  it('attack mode on and off are alerts of their own kind', async () => {
    received.length = 0;
    const w = world();
    w.integrations.attackMode(true);
    await w.integrations.alerts!.tick();
    await delivered(1);
    expect(received[0]!.body).toMatchObject({ kind: 'attack-mode', events: [{ state: 'on' }] });
  });
});

describe('alerts on the store and the backends', () => {
  it('a backend that stops answering is one alert, its return another; the store likewise', async () => {
    received.length = 0;
    const backend = http.createServer();
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const port = (backend.address() as AddressInfo).port;
    const cfg = parseConfig({ policyServer: { listen: '127.0.0.1:0' }, backends: { imap: { host: '127.0.0.1', port } }, alerts: { webhooks: [{ url, cooldown: '1s', events: ['backend', 'store'] }] } });
    const clock = new ManualClock();
    // The memory store is always up: a scripted health to play Redis going away.
    const store = new MemoryStore(clock) as MemoryStore & { health: { up: boolean; fallbacks: number; outages: number } };
    store.health = { up: true, fallbacks: 0, outages: 0 };
    const policy = new Policy(cfg.limits, store, new KeyBuilder('test-secret-0123456789'), clock);
    const integrations = new Integrations(cfg, { store, policy: () => policy, config: () => cfg, clock, log: captureLogger().logger });
    await integrations.checkHealth();
    expect(received).toHaveLength(0); // all up from the start: nothing to say
    await new Promise<void>((r) => backend.close(() => r()));
    store.health.up = false;
    await integrations.checkHealth();
    await delivered(2);
    expect(received.map((r) => [r.body.kind, r.body.events[0]])).toEqual(
      expect.arrayContaining([
        ['backend', expect.objectContaining({ state: 'down', subject: 'imap' })],
        ['store', expect.objectContaining({ state: 'down' })],
      ]),
    );
    await integrations.checkHealth(); // still down: no news
    clock.advance(2_000);
    await integrations.alerts!.tick();
    expect(received).toHaveLength(2);
    const again = http.createServer();
    await new Promise<void>((r) => again.listen(port, '127.0.0.1', r));
    await integrations.checkHealth();
    await delivered(3);
    expect(received[2]!.body).toMatchObject({ kind: 'backend', events: [{ state: 'up', subject: 'imap' }] });
    await new Promise<void>((r) => again.close(() => r()));
  });
});

describe('ban list', () => {
  let proxy: TestProxy;
  let base: string;
  beforeAll(async () => {
    proxy = await startTestProxy({
      policyServer: { listen: '127.0.0.1:0' },
      admin: { listen: '127.0.0.1:0' },
      limits: {
        knownGood: { ttl: '30d' },
        rules: [
          { name: 'ip-failures', key: 'ip', count: 'failures', limit: 10, window: '10m', block: '30m' },
          { name: 'pair-failures', key: 'ip+user', count: 'failures', limit: 5, window: '10m', block: '30m' },
        ],
      },
    });
    base = `http://127.0.0.1:${proxy.admin!.port}`;
  });
  afterAll(() => proxy?.stop());

  it('lists address blocks, DROP-style and as JSON, and leaves out pairs and addresses someone logged in from', async () => {
    const block = (q: string) => fetch(`${base}/api/v1/blocks?${q}&for=1h`, { method: 'POST' });
    expect((await block('ip=192.0.2.7')).status).toBe(201);
    expect((await block('ip=2001:db8::1')).status).toBe(201);
    expect((await block('ip=192.0.2.8&user=alice')).status).toBe(201);
    // 198.51.100.9: blocked, but alice logged in from it (a success is what the login records).
    // So did 2001:db8:1::5 (an IPv6 client: its key is its /64).
    const policyUrl = `http://127.0.0.1:${proxy.policyServer!.port}/dovecot`;
    for (const remote of ['198.51.100.9', '2001:db8:1::5']) {
      const login = { login: 'alice', remote, protocol: 'imap', session_id: `s-${remote}` };
      await fetch(`${policyUrl}?command=allow`, { method: 'POST', body: JSON.stringify(login) });
      await fetch(`${policyUrl}?command=report`, { method: 'POST', body: JSON.stringify({ ...login, success: true, policy_reject: false }) });
      expect((await block(`ip=${remote}`)).status).toBe(201);
    }
    const text = await (await fetch(`${base}/api/v1/banlist.txt`)).text();
    const lines = text.trim().split('\n');
    expect(lines[0]).toMatch(/^; mailgate ban list, .*, 2 entries$/);
    expect(lines.slice(1).map((l) => l.split(' ; ')[0]).sort()).toEqual(['192.0.2.7', '2001:db8::/64']);
    expect(lines[1]).toMatch(/ ; ip-failures until \d{4}-/);
    const json = (await (await fetch(`${base}/api/v1/banlist.json`)).json()) as { bans: { cidr: string; rule: string }[] };
    expect(json.bans.map((b) => b.cidr).sort()).toEqual(['192.0.2.7', '2001:db8::/64']);
  });
});
