// Worker mode (`workers: 2`, the memory store) walked with the compiled CLI in front of a real
// Dovecot: two processes accept on one port, and what is one thing stays one thing: a failures
// limit, perIp, the login counters in /metrics, admin blocks and attack mode, a reload (all
// workers or none), a drain on SIGTERM; a killed worker is replaced; stdout stays whole JSON
// lines, also from two loggers writing into a pipe kept full. Then the shipped config
// (`workers: auto`) as `npm start` runs it.
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { ImapFlow } from 'imapflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { buildCli, spawnProxy, type BuiltCli, type RunningProxy } from '../helpers/cli.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile } from '../helpers/rig.js';
import { until } from '../helpers/until.js';

const TOKEN = 'workers-walk-token-0123456789';
const rig = dovecotForFile();
let built: BuiltCli;
let proxy: RunningProxy;
let configPath: string;

const config = (extra: { workers?: number; limits?: string[] } = {}) =>
  [
    `workers: ${extra.workers ?? 2}`,
    'listeners:',
    '  - {name: imap, protocol: imap, listen: "127.0.0.1:0", tls: none, backend: imap}',
    `backends: {imap: {host: 127.0.0.1, port: ${rig.dovecot.ports.imap}}}`,
    'admin: {listen: "127.0.0.1:0"}',
    'timeouts: {shutdown: 1s}',
    'log: {level: debug}',
    'limits:',
    '  connections: {perIp: 20, total: 1000}',
    ...(extra.limits ?? []),
    '  rules:',
    '    - {name: user-failures, key: user, count: failures, limit: 4, window: 1h, block: 1h}',
    '    - {name: ip-failures, key: ip, count: failures, limit: 50, window: 10m, block: 30m}',
  ].join('\n');

beforeAll(async () => {
  built = buildCli();
  configPath = built.writeConfig('workers.yaml', config());
  proxy = await spawnProxy(built.cli, configPath, { MAILGATE_ADMIN_TOKEN: TOKEN });
}, 120_000);
afterAll(async () => {
  await proxy?.signal('SIGKILL');
  built?.remove();
});

type Line = Record<string, unknown>;
const lines = (pred: (l: Line) => boolean) => proxy.lines().filter(pred);
/** The workers that wrote lines matching pred. */
const workersOf = (pred: (l: Line) => boolean) => new Set(lines(pred).map((l) => l.worker));
const attemptsFrom = (prefix: string) => (l: Line) => l.event === 'auth.attempt' && typeof l.ip === 'string' && l.ip.startsWith(prefix);

async function login(ip: string, user: string, pass: string): Promise<'ok' | 'fail' | 'limited'> {
  const c = await RawClient.connect(proxy.ports.imap!, { localAddress: ip });
  await c.waitFor(/\r\n/);
  c.write(`t LOGIN ${user} ${pass}\r\n`);
  const text = await c.waitFor(/^t (OK|NO)/m);
  c.close();
  return /^t OK/m.test(text) ? 'ok' : /UNAVAILABLE\] Too many/.test(text) ? 'limited' : 'fail';
}

async function metricsText(): Promise<string> {
  return (await fetch(`http://127.0.0.1:${proxy.admin}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
}
const metric = (text: string, series: string) => Number(new RegExp(`^${series.replace(/[{}"=,]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);

describe('workers: 2 with the memory store', () => {
  it('two worker processes listen on the one port and both take logins', async () => {
    const started = lines((l) => l.event === 'worker.start');
    expect(started.map((l) => l.worker).sort()).toEqual([1, 2]);
    expect(new Set(started.map((l) => l.pid)).size).toBe(2);
    const bound = lines((l) => l.event === 'listener.start');
    expect(bound).toHaveLength(2);
    expect(new Set(bound.map((l) => l.port))).toEqual(new Set([proxy.ports.imap]));
    // The kernel spreads connections by their address and port: 24 logins miss one of two
    // workers with odds of 2^-23.
    for (let i = 1; i <= 24; i++) expect(await login(`127.0.80.${i}`, 'alice', 'alice-pass')).toBe('ok');
    await until(() => workersOf(attemptsFrom('127.0.80.')).size === 2, 'auth.attempt lines from both workers');
  });

  it('a failures limit of 4 holds across workers: 40 racing wrong guesses, exactly 4 reach Dovecot', async () => {
    const mark = await rig.dovecot.logMark();
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => login(`127.0.81.${i + 1}`, 'bob', `wrong-${i}`)));
    expect(results.filter((r) => r === 'fail')).toHaveLength(4);
    expect(results.filter((r) => r === 'limited')).toHaveLength(36);
    expect((await rig.dovecot.settledLog(mark)).match(/Password mismatch/g)).toHaveLength(4);
    await until(() => workersOf(attemptsFrom('127.0.81.')).size === 2, 'both workers decided some');
  });

  it('perIp 20 holds across workers: 25 connections from one address, exactly 5 turned away', async () => {
    const clients = await Promise.all(Array.from({ length: 25 }, () => RawClient.connect(proxy.ports.imap!, { localAddress: '127.0.82.1' })));
    const first = await Promise.all(clients.map((c) => c.waitFor(/\r\n/)));
    expect(first.filter((t) => t.startsWith('* OK'))).toHaveLength(20);
    expect(first.filter((t) => t === '* BYE [UNAVAILABLE] Too many connections; try again later.\r\n')).toHaveLength(5);
    clients.forEach((c) => c.close());
    await until(() => lines((l) => l.event === 'session.refused' && l.reason === 'limits.connections.perIp').length === 5, 'five perIp refusals logged');
  });

  it('/metrics is served once, by the primary, with the login counters summed over the workers', async () => {
    const before = await metricsText();
    const series = 'mailgate_login_attempts_total{protocol="imap",outcome="ok"}';
    for (let i = 1; i <= 24; i++) expect(await login(`127.0.83.${i}`, 'alice', 'alice-pass')).toBe('ok');
    await until(() => workersOf(attemptsFrom('127.0.83.')).size === 2, 'logins on both workers');
    const after = await metricsText();
    expect(metric(after, series) - metric(before, series)).toBe(24);
    expect(metric(after, 'mailgate_workers')).toBe(2);
    expect(metric(after, 'mailgate_store_up')).toBe(1); // min over the processes, not a sum
    expect(lines((l) => l.event === 'admin.start').map((l) => l.worker)).toEqual([0]);
  });

  it('admin actions in the primary reach every worker: a block by hand refuses at connect everywhere, attack mode forced on refuses in both', async () => {
    const api = (path: string, method = 'POST') => fetch(`http://127.0.0.1:${proxy.admin}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` } });
    expect((await api('/api/v1/blocks?ip=127.0.88.1&for=1h')).status).toBe(201);
    for (let i = 0; i < 24; i++) {
      const c = await RawClient.connect(proxy.ports.imap!, { localAddress: '127.0.88.1' });
      expect(await c.waitClosed()).toMatch(/^\* BYE \[UNAVAILABLE\] Too many login attempts/);
    }
    await until(() => workersOf((l) => l.event === 'session.refused' && l.reason === 'ip-failures').size === 2, 'both workers refusing at connect');
    expect((await api('/api/v1/blocks/127.0.88.1', 'DELETE')).status).toBe(200);
    expect(await login('127.0.88.1', 'alice', 'alice-pass')).toBe('ok');

    expect((await api('/api/v1/attack-mode?mode=on')).status).toBe(200);
    for (let i = 1; i <= 24; i++) expect(await login(`127.0.89.${i}`, 'alice', 'alice-pass')).toBe('limited');
    await until(() => workersOf((l) => attemptsFrom('127.0.89.')(l) && l.rule === 'attack-mode').size === 2, 'attack mode in both workers');
    expect((await api('/api/v1/attack-mode?mode=auto')).status).toBe(200);
    expect(await login('127.0.89.30', 'alice', 'alice-pass')).toBe('ok');
  });

  it('SIGHUP reaches every worker; a restart-only key is named; an invalid file changes nothing anywhere', async () => {
    writeFileSync(configPath, config({ workers: 3, limits: ['  deniedNetworks: [127.0.90.0/24]'] }));
    proxy.child.kill('SIGHUP');
    await proxy.waitForLog((l) => l.event === 'config.reload' && l.msg === 'configuration reloaded');
    expect(lines((l) => l.event === 'config.reload' && Array.isArray(l.restartNeeded))).toEqual([expect.objectContaining({ worker: 0, restartNeeded: ['workers'] })]);
    const denied = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const c = await RawClient.connect(proxy.ports.imap!, { localAddress: '127.0.90.1' });
        expect(await c.waitClosed()).toBe('* BYE Access denied.\r\n');
      }
    };
    await denied(24);
    const deniedBy = () => workersOf((l) => l.event === 'session.refused' && l.reason === 'limits.deniedNetworks');
    await until(() => deniedBy().size === 2, 'both workers applying the new deniedNetworks');

    const reloads = () => lines((l) => l.msg === 'worker configuration reloaded').length;
    expect(reloads()).toBe(2);
    writeFileSync(configPath, readFileSync(configPath, 'utf8').replace('limit: 4', 'limit: lots'));
    proxy.child.kill('SIGHUP');
    const refused = await proxy.waitForLog((l) => l.event === 'config.reload' && typeof l.error === 'string');
    expect(refused).toMatchObject({ worker: 0 });
    expect(refused.error).toMatch(/limits\.rules\.0\.limit/);
    await denied(8); // still the reloaded config in every worker
    expect(reloads()).toBe(2);
    expect(metric(await metricsText(), 'mailgate_config_reloads_total{result="invalid"}')).toBe(1);
  });

  it('every stdout line is one JSON object under load from both workers', async () => {
    writeFileSync(configPath, config());
    proxy.child.kill('SIGHUP');
    await until(() => lines((l) => l.msg === 'configuration reloaded').length === 2, 'the second reload');
    const before = proxy.lines().length;
    // Not read meanwhile, stdout's pipe fills: a write then waits for room, and one longer than
    // PIPE_BUF would go in parts that another process's writes can come between.
    proxy.child.stdout!.pause();
    for (let batch = 0; batch < 12; batch++) {
      await Promise.all(Array.from({ length: 50 }, (_, i) => login(`127.0.84.${(batch * 50 + i) % 250 + 1}`, `nobody-${batch}-${i}-${'x'.repeat(200)}`, 'guess')));
    }
    proxy.child.stdout!.resume();
    // Each worker flushes its buffered lines on its own timer: wait for all of the load's.
    await until(() => lines((l) => l.event === 'session.close').length >= 600 && proxy.lines().length - before > 1500, 'the load\'s lines');
    expect(proxy.badLines()).toEqual([]);
    expect(workersOf((l) => l.event === 'session.close')).toEqual(new Set([1, 2]));
  });

  it('kill -9 of one worker: logins go on, the primary logs it and starts a replacement in its slot', async () => {
    const victim = lines((l) => l.event === 'worker.start' && l.worker === 1).at(-1)!;
    process.kill(victim.pid as number, 'SIGKILL');
    const exit = await proxy.waitForLog((l) => l.event === 'worker.exit');
    expect(exit).toMatchObject({ worker: 0, slot: 1, pid: victim.pid, signal: 'SIGKILL', restartInMs: 500 });
    for (let i = 1; i <= 8; i++) expect(await login(`127.0.85.${i}`, 'alice', 'alice-pass')).toBe('ok');
    const replaced = await proxy.waitForLog((l) => l.event === 'worker.start' && l.worker === 1 && l.pid !== victim.pid);
    const since = proxy.lines().indexOf(replaced);
    for (let i = 1; i <= 24; i++) expect(await login(`127.0.86.${i}`, 'alice', 'alice-pass')).toBe('ok');
    await until(() => proxy.lines().slice(since).some((l) => attemptsFrom('127.0.86.')(l) && l.worker === 1), 'the replacement taking logins');
    const m = await metricsText();
    expect(metric(m, 'mailgate_workers')).toBe(2);
    expect(metric(m, 'mailgate_worker_restarts_total')).toBe(1);
  });

  it('SIGTERM: every worker says goodbye to its clients and stops, then the primary exits 0', async () => {
    const clients = await Promise.all(Array.from({ length: 8 }, (_, i) => RawClient.connect(proxy.ports.imap!, { localAddress: `127.0.87.${i + 1}` })));
    await Promise.all(clients.map((c) => c.waitFor(/\r\n/)));
    const code = await proxy.signal('SIGTERM');
    for (const c of clients) expect(await c.waitClosed()).toMatch(/\* BYE Server shutting down\.\r\n$/);
    expect(code).toBe(0);
    expect(workersOf((l) => l.event === 'worker.stop')).toEqual(new Set([1, 2]));
    expect(lines((l) => l.event === 'proxy.stop').map((l) => l.worker)).toEqual([0]);
  });
});

describe('stdout shared by two processes', () => {
  // Two processes log through mailgate's logger into one pipe that a slow reader drains 512
  // bytes at a time, so writers keep finding it nearly full: a write longer than PIPE_BUF then
  // goes in parts, and the other process's lines land between them (sonic-boom's defaults did,
  // 16 of 8,000 lines here). Written at most PIPE_BUF at once, each write is atomic.
  const writer = `const { createLogger } = await import(process.argv[2]);
const log = createLogger('info', undefined, Number(process.argv[3]));
const pad = 'w'.repeat(200 + Number(process.argv[3]) * 37);
for (let i = 0; i < 4000; i++) {
  log.info({ event: 'auth.attempt', n: i, pad }, 'line');
  if (i % 100 === 0) await new Promise((r) => setImmediate(r));
}`;
  const reader = `import fs from 'node:fs';
const buf = Buffer.alloc(512);
const out = fs.openSync(process.argv[2], 'w');
const nap = new Int32Array(new SharedArrayBuffer(4));
for (let n = 1; ; n++) {
  const got = fs.readSync(0, buf, 0, 512, null);
  if (got === 0) break;
  fs.writeSync(out, buf, 0, got);
  if (n % 4 === 0) Atomics.wait(nap, 0, 0, 1);
}`;

  it('no line of one process is ever split by the other\'s, even when the pipe is full', async () => {
    const w = built.writeConfig('log-writer.mjs', writer);
    const r = built.writeConfig('log-reader.mjs', reader);
    const out = join(built.dir, 'log-lines.txt');
    const logger = join(dirname(built.cli), 'logging/logger.js');
    const node = process.execPath;
    await promisify(execFile)('sh', ['-c', `("${node}" ${w} ${logger} 1 & "${node}" ${w} ${logger} 2 & wait) | "${node}" ${r} ${out}`]);
    const got = readFileSync(out, 'utf8').split('\n').filter(Boolean);
    const bad = got.filter((l) => {
      try {
        JSON.parse(l);
        return false;
      } catch {
        return true;
      }
    });
    expect(bad).toEqual([]);
    expect(got).toHaveLength(8000);
  });
});

describe('the shipped config/mailgate.yaml (workers: auto)', () => {
  it('starts one worker per core with every listener, serves a STARTTLS login, stops on SIGTERM', async () => {
    const shipped = parse(readFileSync('config/mailgate.yaml', 'utf8')) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(shipped.workers).toBeUndefined(); // the default: auto
    const { dovecot } = rig;
    // Only what cannot run here is rewritten: ports, backends, the certificate's place.
    for (const l of shipped.listeners) l.listen = '127.0.0.1:0';
    shipped.backends.imap = { ...shipped.backends.imap, port: dovecot.ports.imap };
    shipped.backends.pop3.port = dovecot.ports.pop3;
    shipped.backends.submission.port = dovecot.ports.submission;
    shipped.tls = { ...shipped.tls, cert: `${built.dir}/dev/cert.pem`, key: `${built.dir}/dev/key.pem` };
    shipped.admin.listen = '127.0.0.1:0';
    const p = await spawnProxy(built.cli, built.writeConfig('shipped.yaml', stringify(shipped)));
    try {
      const cores = os.availableParallelism();
      const starts = p.lines().filter((l) => l.event === 'worker.start');
      expect(starts).toHaveLength(cores > 1 ? cores : 0);
      const names = shipped.listeners.map((l: { name: string }) => l.name);
      expect(Object.keys(p.ports).sort()).toEqual([...names].sort());
      expect(p.lines().filter((l) => l.event === 'listener.start')).toHaveLength(names.length * Math.max(1, starts.length));
      const client = new ImapFlow({ host: '127.0.0.1', port: p.ports.imap!, secure: false, doSTARTTLS: true, tls: { rejectUnauthorized: false }, auth: { user: 'alice', pass: 'alice-pass' }, logger: false } as ConstructorParameters<typeof ImapFlow>[0]);
      await client.connect();
      await client.logout();
    } finally {
      expect(await p.signal('SIGTERM')).toBe(0);
    }
  });
});
