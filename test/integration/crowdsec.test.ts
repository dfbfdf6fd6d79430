// CrowdSec with the real parts: Debian's crowdsec 1.4.6 LAPI (test/helpers/crowdsec.ts, its
// own config, database and port), decisions made with its cscli, a real Dovecot behind the
// proxy. Clients come from distinct loopback addresses (127.0.44.x…) so one can be banned and
// another not. The bouncer pulls every 200 ms.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { startCrowdsec, type CrowdsecLapi } from '../helpers/crowdsec.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile } from '../helpers/rig.js';
import type { TestProxy } from '../helpers/proxy.js';
import { until } from '../helpers/until.js';

const rig = dovecotForFile();
let lapi: CrowdsecLapi;
let dir: string;
const TOKEN = 'crowdsec-test-token-0123456789';

beforeAll(async () => {
  lapi = await startCrowdsec();
  dir = mkdtempSync(join(tmpdir(), 'mg-cs-tls-'));
}, 60_000);
// Each test's proxies stop with it: a proxy pulling every 200 ms writes its bouncer's last pull
// into the LAPI's sqlite each time, and idle pullers only load it.
afterEach(async () => {
  for (const p of rig.proxies) await p.stop();
});
afterAll(async () => {
  await lapi?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const config = (crowdsec: Record<string, unknown>) => ({
  listeners: [
    { name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'starttls', backend: 'imap' },
    { name: 'imaps', protocol: 'imap', listen: '127.0.0.1:0', tls: 'implicit', backend: 'imap' },
  ],
  tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), devCertificate: true },
  backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap } },
  admin: { listen: '127.0.0.1:0', token: TOKEN },
  limits: { rules: [{ name: 'ip-failures', key: 'ip', count: 'failures', limit: 5, window: '10m', block: '30m' }] },
  crowdsec: { url: lapi.url, interval: '200ms', ...crowdsec },
});

/** What a client from `ip` hears at connect on the STARTTLS listener: a greeting or a BYE. */
async function greeting(proxy: TestProxy, ip: string): Promise<'welcome' | 'refused'> {
  const c = await RawClient.connect(proxy.port('imap'), { localAddress: ip });
  const text = await c.waitFor(/\r\n/);
  c.close();
  if (/^\* OK /.test(text)) return 'welcome';
  expect(text).toMatch(/^\* BYE /);
  return 'refused';
}

/** Polls until `ip` is `want`, and how long that took (ms). */
async function becomes(proxy: TestProxy, ip: string, want: 'welcome' | 'refused'): Promise<number> {
  const t0 = Date.now();
  const deadline = t0 + 10_000;
  while ((await greeting(proxy, ip)) !== want) {
    if (Date.now() > deadline) throw new Error(`${ip} never ${want}`);
  }
  return Date.now() - t0;
}

const events = (proxy: TestProxy, event: string) => proxy.log.lines.filter((l) => l.event === event && (l.source === 'crowdsec' || l.source === 'crowdsec-machine'));

describe('CrowdSec bouncer against a real LAPI', () => {
  it('cscli decisions add: refused at connect within an interval (another client is not); delete: allowed again', async () => {
    const proxy = await rig.proxy(config({ bouncerKey: await lapi.newBouncer() }));
    expect(await greeting(proxy, '127.0.44.1')).toBe('welcome');
    await lapi.cscli('decisions', 'add', '--ip', '127.0.44.1', '--duration', '1h', '--reason', 'test ban');
    // One 200 ms interval, a pull, and the polling's own connections.
    expect(await becomes(proxy, '127.0.44.1', 'refused')).toBeLessThan(1_500);
    expect(await greeting(proxy, '127.0.44.2')).toBe('welcome');
    const refused = proxy.log.lines.find((l) => l.event === 'session.refused' && l.reason === 'crowdsec');
    expect(refused).toMatchObject({ origin: 'cscli', scenario: 'test ban', ip: '127.0.44.1' });
    expect(refused!.retryAfterSec).toBeGreaterThan(3500);
    expect(await proxy.metrics.registry.metrics()).toMatch(/mailgate_connections_refused_total\{listener="imap",reason="crowdsec"\} [1-9]/);

    await lapi.cscli('decisions', 'delete', '--ip', '127.0.44.1');
    expect(await becomes(proxy, '127.0.44.1', 'welcome')).toBeLessThan(1_500);
  });

  it('a range decision refuses every address in it; on implicit TLS the client is cut before any handshake', async () => {
    const proxy = await rig.proxy(config({ bouncerKey: await lapi.newBouncer() }));
    await lapi.cscli('decisions', 'add', '--range', '127.0.45.0/24', '--duration', '1h');
    await becomes(proxy, '127.0.45.9', 'refused');
    expect(await greeting(proxy, '127.0.45.200')).toBe('refused');
    expect(await greeting(proxy, '127.0.46.9')).toBe('welcome');

    // Implicit TLS: a plain TCP close, nothing said, no ClientHello answered.
    const c = await RawClient.connect(proxy.port('imaps'), { localAddress: '127.0.45.10' });
    c.write('\x16\x03\x01\x00\x05hello'); // the start of a ClientHello: no ServerHello comes back
    await c.waitClosed();
    expect(c.received).toBe('');
    expect(proxy.log.lines.find((l) => l.event === 'session.refused' && l.listener === 'imaps')).toMatchObject({ reason: 'crowdsec', ip: '127.0.45.10' });
    expect(await proxy.metrics.registry.metrics()).not.toMatch(/^mailgate_tls_handshake\w*\{listener="imaps"/m);
    await lapi.cscli('decisions', 'delete', '--range', '127.0.45.0/24');
    await becomes(proxy, '127.0.45.9', 'welcome');
  });

  it('trustedNetworks are never refused for CrowdSec, nor is a captcha decision', async () => {
    const proxy = await rig.proxy({ ...config({ bouncerKey: await lapi.newBouncer() }), limits: { trustedNetworks: ['127.0.53.0/24'] } });
    await lapi.cscli('decisions', 'add', '--ip', '127.0.56.1', '--type', 'captcha', '--duration', '1h');
    await lapi.cscli('decisions', 'add', '--range', '127.0.53.0/23', '--duration', '1h');
    await becomes(proxy, '127.0.52.200', 'refused'); // in the decision, not trusted: pulled
    expect(await greeting(proxy, '127.0.53.1')).toBe('welcome');
    expect(await greeting(proxy, '127.0.56.1')).toBe('welcome'); // a mail client cannot solve one
    await lapi.cscli('decisions', 'delete', '--range', '127.0.53.0/23');
    await lapi.cscli('decisions', 'delete', '--ip', '127.0.56.1');
  });

  it('a reload that changes crowdsec says it takes effect after a restart', async () => {
    const cfg = config({ bouncerKey: await lapi.newBouncer() });
    const proxy = await rig.proxy(cfg);
    await proxy.reload(parseConfig({ ...cfg, crowdsec: { ...cfg.crowdsec, interval: '1s' } }));
    expect(proxy.log.lines.filter((l) => l.event === 'config.reload').map((l) => l.msg)).toContain('crowdsec changed: it takes effect after a restart');
  });

  it('scopes and origins filter what is enforced', async () => {
    const proxy = await rig.proxy(config({ bouncerKey: await lapi.newBouncer(), scopes: ['ip'], origins: ['cscli-import'] }));
    await lapi.cscli('decisions', 'add', '--range', '127.0.47.0/24', '--duration', '1h');
    await lapi.cscli('decisions', 'add', '--ip', '127.0.48.1', '--duration', '1h');
    // Last, one that passes both filters: once it is enforced, the pulls have seen the others.
    // (1.4.6 writes origin cscli-import whatever the file says.)
    const list = join(dir, 'list.json');
    writeFileSync(list, JSON.stringify([{ duration: '1h', origin: 'my-list', reason: 'listed', scope: 'ip', type: 'ban', value: '127.0.48.2' }]));
    await lapi.cscli('decisions', 'import', '-i', list);
    await becomes(proxy, '127.0.48.2', 'refused');
    expect(await greeting(proxy, '127.0.48.1')).toBe('welcome'); // origin cscli
    expect(await greeting(proxy, '127.0.47.1')).toBe('welcome'); // scope range
    await lapi.cscli('decisions', 'delete', '--range', '127.0.47.0/24');
    for (const ip of ['127.0.48.1', '127.0.48.2']) await lapi.cscli('decisions', 'delete', '--ip', ip);
  });

  it('the LAPI down: decisions kept (onError keep), logged once; back: logged once, and deletes are seen again', async () => {
    const proxy = await rig.proxy(config({ bouncerKey: await lapi.newBouncer() }));
    await lapi.cscli('decisions', 'add', '--ip', '127.0.49.1', '--duration', '1h');
    await becomes(proxy, '127.0.49.1', 'refused');
    await lapi.kill();
    await until(() => events(proxy, 'integrations.error').length > 0, 'integrations.error');
    expect(await greeting(proxy, '127.0.49.1')).toBe('refused');
    expect(await greeting(proxy, '127.0.49.2')).toBe('welcome');
    await lapi.start();
    await until(() => events(proxy, 'integrations.recovered').length > 0, 'integrations.recovered');
    expect(await greeting(proxy, '127.0.49.1')).toBe('refused'); // the full list again
    await lapi.cscli('decisions', 'delete', '--ip', '127.0.49.1');
    await becomes(proxy, '127.0.49.1', 'welcome');
    expect(events(proxy, 'integrations.error')).toHaveLength(1);
    expect(events(proxy, 'integrations.recovered')).toHaveLength(1);
  }, 60_000);

  it('onError open: while the LAPI is down nobody is refused for CrowdSec', async () => {
    const proxy = await rig.proxy(config({ bouncerKey: await lapi.newBouncer(), onError: 'open' }));
    await lapi.cscli('decisions', 'add', '--ip', '127.0.50.1', '--duration', '1h');
    await becomes(proxy, '127.0.50.1', 'refused');
    await lapi.kill();
    await becomes(proxy, '127.0.50.1', 'welcome');
    await lapi.start();
    await becomes(proxy, '127.0.50.1', 'refused');
    await lapi.cscli('decisions', 'delete', '--ip', '127.0.50.1');
  }, 60_000);
});

describe("mailgate's blocks reach CrowdSec (a machine pushing alerts)", () => {
  const api = (proxy: TestProxy, path: string, method: string) => fetch(`http://127.0.0.1:${proxy.admin!.port}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` } });

  it('a block by hand shows in cscli decisions list -a as origin mailgate; the unblock deletes it', async () => {
    const proxy = await rig.proxy(config({ bouncerKey: await lapi.newBouncer(), machine: lapi.machine }));
    expect((await api(proxy, '/api/v1/blocks?ip=127.0.51.1&for=1h', 'POST')).status).toBe(201);
    let found: Awaited<ReturnType<CrowdsecLapi['decisions']>> = [];
    const mine = async () => (found = (await lapi.decisions()).filter((d) => d.origin === 'mailgate'));
    for (let i = 0; (await mine()).length === 0; i++) if (i > 100) throw new Error('no mailgate decision in CrowdSec');
    expect(found).toEqual([expect.objectContaining({ scope: 'Ip', value: '127.0.51.1', scenario: 'mailgate/ip-failures', duration: expect.stringMatching(/^(59m|1h0m0)/) })]);
    // The bouncer skips origin mailgate: once a later decision is enforced (a pull after the
    // block's), the address is still refused by mailgate's own block, not as a CrowdSec one.
    await lapi.cscli('decisions', 'add', '--ip', '127.0.51.9', '--duration', '1h');
    await becomes(proxy, '127.0.51.9', 'refused');
    expect(await greeting(proxy, '127.0.51.1')).toBe('refused');
    expect(proxy.log.lines.filter((l) => l.event === 'session.refused' && l.ip === '127.0.51.1').map((l) => l.reason)).toEqual(['ip-failures']);
    await lapi.cscli('decisions', 'delete', '--ip', '127.0.51.9');

    expect((await api(proxy, '/api/v1/blocks/127.0.51.1', 'DELETE')).status).toBe(200);
    for (let i = 0; (await mine()).length > 0; i++) if (i > 100) throw new Error('the mailgate decision stayed in CrowdSec');
    expect(await greeting(proxy, '127.0.51.1')).toBe('welcome');
    expect(await proxy.metrics.registry.metrics()).toMatch(/mailgate_crowdsec_signals_total\{action="delete",result="ok"\} 1/);
  });

  it('a block CrowdSec already has from mailgate (a restart, another instance) is not sent twice', async () => {
    const first = await rig.proxy(config({ machine: lapi.machine }));
    // cscli decisions list shows one decision per value; cscli alerts list shows every one.
    const count = async () => {
      const alerts = JSON.parse(await lapi.cscli('alerts', 'list', '-a', '-o', 'json')) as { decisions: { origin: string; value: string; duration: string }[] | null }[] | null;
      return (alerts ?? []).flatMap((a) => a.decisions ?? []).filter((d) => d.origin === 'mailgate' && d.value === '127.0.55.1' && !d.duration.startsWith('-')).length;
    };
    expect((await api(first, '/api/v1/blocks?ip=127.0.55.1&for=1h', 'POST')).status).toBe(201);
    for (let i = 0; (await count()) === 0; i++) if (i > 100) throw new Error('never sent');
    // A second mailgate (a restart of the first looks the same: its first read lists the block).
    const second = await rig.proxy(config({ machine: lapi.machine }));
    expect((await api(second, '/api/v1/blocks?ip=127.0.55.1&for=1h', 'POST')).status).toBe(201);
    expect((await api(second, '/api/v1/blocks?ip=127.0.55.2&for=1h', 'POST')).status).toBe(201);
    // Its later block was sent, so the first had been weighed by then.
    for (let i = 0; !(await lapi.decisions()).some((d) => d.value === '127.0.55.2'); i++) if (i > 100) throw new Error('second block never sent');
    expect(await count()).toBe(1);
    for (const p of [first, second]) for (const ip of ['127.0.55.1', '127.0.55.2']) await api(p, `/api/v1/blocks/${ip}`, 'DELETE');
  });

  it('the LAPI down: a block waits and is sent when it is back (a new login, the old token refused); logged once each', async () => {
    const proxy = await rig.proxy(config({ machine: lapi.machine }));
    expect((await api(proxy, '/api/v1/blocks?ip=127.0.52.1&for=1h', 'POST')).status).toBe(201);
    const sent = async (ip: string) => (await lapi.decisions()).some((d) => d.origin === 'mailgate' && d.value === ip);
    for (let i = 0; !(await sent('127.0.52.1')); i++) if (i > 100) throw new Error('first block never sent');
    await lapi.kill();
    expect((await api(proxy, '/api/v1/blocks?ip=127.0.52.2&for=1h', 'POST')).status).toBe(201);
    await until(() => events(proxy, 'integrations.error').length > 0, 'integrations.error');
    await lapi.start();
    for (let i = 0; !(await sent('127.0.52.2')); i++) if (i > 100) throw new Error('the waiting block never sent');
    expect(events(proxy, 'integrations.error')).toHaveLength(1);
    expect(events(proxy, 'integrations.recovered')).toHaveLength(1);
    for (const ip of ['127.0.52.1', '127.0.52.2']) expect((await api(proxy, `/api/v1/blocks/${ip}`, 'DELETE')).status).toBe(200);
    for (let i = 0; (await sent('127.0.52.1')) || (await sent('127.0.52.2')); i++) if (i > 100) throw new Error('not deleted');
  }, 60_000);
});
