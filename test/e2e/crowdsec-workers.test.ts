// CrowdSec in worker mode, with the compiled CLI, a real Dovecot and Debian's crowdsec 1.4.6
// LAPI: the primary alone pulls (the LAPI keeps one stream position per bouncer key) and
// relays the decisions, so every worker refuses a banned client, a replacement worker too;
// the key and the machine's password come from the environment.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { buildCli, spawnProxy, type BuiltCli, type RunningProxy } from '../helpers/cli.js';
import { startCrowdsec, type CrowdsecLapi } from '../helpers/crowdsec.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile } from '../helpers/rig.js';
import { until } from '../helpers/until.js';

const TOKEN = 'crowdsec-workers-token-0123456789';
const rig = dovecotForFile();
let lapi: CrowdsecLapi;
let built: BuiltCli;
let proxy: RunningProxy;

beforeAll(async () => {
  lapi = await startCrowdsec();
  built = buildCli();
  const config = stringify({
    workers: 2,
    listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap' }],
    backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap } },
    admin: { listen: '127.0.0.1:0' },
    timeouts: { shutdown: '1s' },
    limits: { rules: [{ name: 'ip-failures', key: 'ip', count: 'failures', limit: 5, window: '10m', block: '30m' }] },
    // The bouncer key and the machine's password from the environment.
    crowdsec: { url: lapi.url, interval: '200ms', machine: { login: lapi.machine.login } },
  });
  proxy = await spawnProxy(built.cli, built.writeConfig('crowdsec.yaml', config), {
    MAILGATE_ADMIN_TOKEN: TOKEN,
    MAILGATE_CROWDSEC_BOUNCER_KEY: lapi.bouncerKey,
    MAILGATE_CROWDSEC_MACHINE_PASSWORD: lapi.machine.password,
  });
}, 120_000);
afterAll(async () => {
  await proxy?.signal('SIGKILL');
  built?.remove();
  await lapi?.stop();
});

async function greeting(ip: string): Promise<'welcome' | 'refused'> {
  const c = await RawClient.connect(proxy.ports.imap!, { localAddress: ip });
  const text = await c.waitFor(/\r\n/);
  c.close();
  return /^\* OK /.test(text) ? 'welcome' : 'refused';
}

/** `n` connections in a row from `ip` once every worker answers `want` (the primary relays a
 *  change to each worker in turn, so one may hear it a moment after the other), or the last
 *  `n` when 10 s pass without that. */
async function all(ip: string, want: 'welcome' | 'refused', n = 16): Promise<string[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const got: string[] = [];
    for (let i = 0; i < n; i++) got.push(await greeting(ip));
    if (got.every((g) => g === want) || Date.now() > deadline) return got;
  }
}

const refusedBy = (ip: string) => new Set(proxy.lines().filter((l) => l.event === 'session.refused' && l.reason === 'crowdsec' && l.ip === ip).map((l) => l.worker));

describe('CrowdSec with workers: 2', () => {
  it('a cscli decision is refused by every worker; deleted, every worker lets the client in', async () => {
    await lapi.cscli('decisions', 'add', '--ip', '127.0.60.1', '--duration', '1h');
    expect(await all('127.0.60.1', 'refused')).toEqual(Array(16).fill('refused'));
    await until(() => refusedBy('127.0.60.1').size === 2, 'refusals from both workers');
    expect(await greeting('127.0.60.2')).toBe('welcome');
    await lapi.cscli('decisions', 'delete', '--ip', '127.0.60.1');
    expect(await all('127.0.60.1', 'welcome')).toEqual(Array(16).fill('welcome'));
  });

  it('a replacement worker gets the full set before its first client', async () => {
    await lapi.cscli('decisions', 'add', '--range', '127.0.61.0/24', '--duration', '1h');
    await all('127.0.61.1', 'refused', 1);
    const victim = proxy.lines().filter((l) => l.event === 'worker.start' && l.worker === 1).at(-1)!;
    process.kill(victim.pid as number, 'SIGKILL');
    const replaced = await proxy.waitForLog((l) => l.event === 'worker.start' && l.worker === 1 && l.pid !== victim.pid);
    const since = proxy.lines().indexOf(replaced);
    const got: string[] = [];
    for (let i = 0; i < 24; i++) got.push(await greeting(`127.0.61.${i + 2}`));
    expect(got).toEqual(Array(24).fill('refused'));
    await until(() => proxy.lines().slice(since).some((l) => l.event === 'session.refused' && l.reason === 'crowdsec' && l.worker === 1), 'the replacement refusing');
    await lapi.cscli('decisions', 'delete', '--range', '127.0.61.0/24');
  });

  it("the primary's machine sends an admin block to CrowdSec, and its unblock", async () => {
    const api = (path: string, method: string) => fetch(`http://127.0.0.1:${proxy.admin}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` } });
    expect((await api('/api/v1/blocks?ip=127.0.62.1&for=1h', 'POST')).status).toBe(201);
    const sent = async () => (await lapi.decisions()).some((d) => d.origin === 'mailgate' && d.value === '127.0.62.1' && d.scenario === 'mailgate/ip-failures');
    for (let i = 0; !(await sent()); i++) if (i > 100) throw new Error('the block never reached CrowdSec');
    expect((await api('/api/v1/blocks/127.0.62.1', 'DELETE')).status).toBe(200);
    for (let i = 0; await sent(); i++) if (i > 100) throw new Error('the unblock never reached CrowdSec');
    expect(proxy.lines().filter((l) => l.event === 'integrations.error')).toEqual([]);
  });
});
