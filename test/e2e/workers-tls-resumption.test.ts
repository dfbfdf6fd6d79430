// TLS session resumption in worker mode (issue 22), with the compiled CLI in front of a real
// Dovecot: `workers: 2` behind one port, so a client that reconnects lands on either worker.
// A session from one worker resumes on both (TLS 1.3 and 1.2, implicit TLS and STARTTLS), also
// on a worker restarted after a kill, and after a reload; a short tls.ticketRotation set by a
// reload voids the old session on every worker, and the new keys hold on both.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { buildCli, spawnProxy, workersConfig, type BuiltCli, type RunningProxy } from '../helpers/cli.js';
import { dovecotForFile } from '../helpers/rig.js';
import { certFor } from '../helpers/tls.js';
import { resumableLogin, type ResumeOptions, type ResumeResult } from '../helpers/tls-resume.js';
import { until } from '../helpers/until.js';

const rig = dovecotForFile();
let built: BuiltCli;
let proxy: RunningProxy;
let configPath: string;
let cert: { certPath: string; keyPath: string };

const config = (tlsExtra: Record<string, unknown> = {}) =>
  stringify(
    workersConfig(rig.dovecot.ports.imap, {
      listeners: [
        { name: 'imaps', protocol: 'imap', listen: '127.0.0.1:0', tls: 'implicit', backend: 'imap' },
        { name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'starttls', backend: 'imap' },
      ],
      tls: { cert: cert.certPath, key: cert.keyPath, ...tlsExtra },
      limits: { connections: { perIp: 50, total: 1000 } },
    }),
  );

beforeAll(async () => {
  built = buildCli();
  cert = await certFor(built.dir, ['mail.example.org']);
  configPath = built.writeConfig('resume.yaml', config());
  proxy = await spawnProxy(built.cli, configPath);
}, 120_000);
afterAll(async () => {
  await proxy?.signal('SIGKILL');
  built?.remove();
});

const portOf = (mode: ResumeOptions['mode']) => proxy.ports[mode === 'implicit' ? 'imaps' : 'imap']!;
let nextHost = 10;

/** One login from an address of its own (127.0.x.y), by which its log lines are found. */
async function loginOn(opts: ResumeOptions): Promise<ResumeResult & { ip: string }> {
  const n = nextHost++;
  const ip = `127.0.${1 + Math.floor(n / 250)}.${1 + (n % 250)}`;
  return { ...(await resumableLogin(portOf(opts.mode), { ...opts, localAddress: ip })), ip };
}

/** The worker that served a login (its auth.attempt line), once the line is out (log lines
 *  are written in batches). */
const workerOf = (ip: string) => proxy.lines().find((l) => l.event === 'auth.attempt' && l.ip === ip)?.worker as number | undefined;
async function workersOf(ips: string[]): Promise<Set<number>> {
  await until(() => ips.every((ip) => workerOf(ip) !== undefined), 'the logins\' log lines');
  return new Set(ips.map((ip) => workerOf(ip)!));
}

/** Reconnects with `session` `times` times, and again until both workers served one (at most
 *  40 in all): every one must have resumed and logged in. */
async function resumesOnBoth(opts: ResumeOptions & { session: Buffer }, times = 10): Promise<void> {
  const ips: string[] = [];
  const reused: boolean[] = [];
  const round = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const r = await loginOn(opts);
      expect(r.login).toMatch(/^a OK /m);
      reused.push(r.reused);
      ips.push(r.ip);
    }
  };
  await round(times);
  while ((await workersOf(ips)).size < 2 && ips.length < 40) await round(4);
  expect(await workersOf(ips)).toEqual(new Set([1, 2]));
  expect(reused).toEqual(reused.map(() => true));
}

describe('workers: 2', () => {
  it.each([
    ['implicit', 'TLSv1.3'],
    ['implicit', 'TLSv1.2'],
    ['starttls', 'TLSv1.3'],
    ['starttls', 'TLSv1.2'],
  ] as const)('%s %s: a session from one worker resumes on both, every time', async (mode, maxVersion) => {
    const first = await loginOn({ mode, maxVersion });
    expect(first).toMatchObject({ reused: false, protocol: maxVersion });
    await resumesOnBoth({ mode, maxVersion, session: first.session! });
  });

  it('a worker restarted after a kill gets the keys before its first client', async () => {
    const first = await loginOn({ mode: 'implicit' });
    const victim = proxy.lines().filter((l) => l.event === 'worker.start' && l.worker === 1).at(-1)!;
    process.kill(victim.pid as number, 'SIGKILL');
    await proxy.waitForLog((l) => l.event === 'worker.start' && l.worker === 1 && l.pid !== victim.pid);
    await resumesOnBoth({ mode: 'implicit', session: first.session! }, 4);
  });

  it('a reload keeps the keys; a short ticketRotation it sets voids the old session everywhere, and the new keys hold on both workers', async () => {
    const first = await loginOn({ mode: 'implicit' });
    const reloaded = () => proxy.lines().filter((l) => l.event === 'config.reload' && l.msg === 'configuration reloaded').length;
    const reload = async (text: string) => {
      const before = reloaded();
      built.writeConfig('resume.yaml', text);
      proxy.child.kill('SIGHUP');
      await until(() => reloaded() > before, 'the reload');
    };
    // The reload starts the 2s interval from now: the session has two seconds left.
    await reload(config({ ticketRotation: '2s' }));
    expect((await loginOn({ mode: 'implicit', session: first.session! })).reused).toBe(true);
    // Poll for the rotation (each worker): the old session stops resuming on both.
    const voidFrom: string[] = [];
    await until(async () => {
      const r = await loginOn({ mode: 'implicit', session: first.session! });
      if (!r.reused) voidFrom.push(r.ip);
      return new Set(voidFrom.map(workerOf).filter((w) => w !== undefined)).size === 2;
    }, 'the rotation on both workers');
    // Back to 12h (the keys drawn last stay), then a fresh session resumes on both.
    await reload(config());
    const fresh = await loginOn({ mode: 'implicit' });
    await resumesOnBoth({ mode: 'implicit', session: fresh.session! });
  });

  it('no log line holds a key', async () => {
    // The keys are 48 random bytes sent as base64: no log line carries a field of that shape.
    const b64 = /^[A-Za-z0-9+/]{64}$/;
    for (const l of proxy.lines()) for (const v of Object.values(l)) expect(typeof v === 'string' && b64.test(v)).toBe(false);
    expect(proxy.badLines()).toEqual([]);
  });
});
