// nftables in worker mode, with the compiled CLI, a real Dovecot and Debian's nft in a network
// namespace the test makes: the primary mirrors blocks made in any worker (its store, over
// IPC) and lifted by the admin API; SIGTERM leaves the elements to time out on their own.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { buildCli, spawnProxy, workersConfig, type BuiltCli, type RunningProxy } from '../helpers/cli.js';
import { netnsForFile } from '../helpers/netns.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile } from '../helpers/rig.js';

const TOKEN = 'nftables-workers-token-0123456789';
const net = netnsForFile();
const rig = dovecotForFile();
let built: BuiltCli;
let proxy: RunningProxy;

beforeAll(async () => {
  built = buildCli();
  const config = stringify(
    workersConfig(rig.dovecot.ports.imap, {
      limits: { rules: [{ name: 'ip-failures', key: 'ip', count: 'failures', limit: 2, window: '10m', block: '30m' }] },
      firewall: { nftables: { nft: net.ns.nft }, interval: '200ms' },
    }),
  );
  proxy = await spawnProxy(built.cli, built.writeConfig('nftables.yaml', config), { MAILGATE_ADMIN_TOKEN: TOKEN });
}, 120_000);
afterAll(async () => {
  await proxy?.signal('SIGKILL');
  built?.remove();
});

/** One IMAP login from `ip`: its tagged answer, or the goodbye of a blocked address. */
async function login(ip: string, pass: string): Promise<string> {
  const c = await RawClient.connect(proxy.ports.imap!, { localAddress: ip });
  await c.waitFor(/\r\n/);
  c.write(`a LOGIN alice ${pass}\r\n`);
  const text = await c.waitFor(/^(a (OK|NO)|\* BYE)/m);
  c.close();
  return /^a OK/m.test(text) ? 'ok' : /^\* BYE/m.test(text) ? 'refused' : 'fail';
}

const addrs = async () => (await net.ns.elements('inet', 'mailgate', 'blocked4')).map((e) => e.addr).sort();
const eventually = (check: () => Promise<void>) => vi.waitFor(check, { timeout: 10_000, interval: 50 });

describe('nftables with workers: 2', () => {
  it("the primary mirrors the workers' blocks, and the admin API's unblock; SIGTERM leaves the elements", async () => {
    for (const ip of ['127.0.97.1', '127.0.97.2']) {
      // Each connection goes to either worker: the block is the primary's store's.
      expect([await login(ip, 'x1'), await login(ip, 'x2'), await login(ip, 'alice-pass')]).toEqual(['fail', 'fail', 'refused']);
    }
    await eventually(async () => expect(await addrs()).toEqual(['127.0.97.1', '127.0.97.2']));
    const lifted = await fetch(`http://127.0.0.1:${proxy.admin!}/api/v1/blocks/127.0.97.1`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(lifted.status).toBe(200);
    await eventually(async () => expect(await addrs()).toEqual(['127.0.97.2']));
    expect(await login('127.0.97.1', 'alice-pass')).toBe('ok');
    expect(await proxy.signal('SIGTERM')).toBe(0);
    expect(await addrs()).toEqual(['127.0.97.2']);
    expect(proxy.lines().filter((l) => l.event === 'integrations.error')).toEqual([]);
  });
});
