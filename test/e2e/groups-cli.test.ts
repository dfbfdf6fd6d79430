// A `together` group fed by a file, as the compiled CLI runs it (worker mode, real Dovecot):
// two addresses of the group spend one budget, and a change to the file is honoured after
// SIGHUP in every worker. Clients arrive through a PROXY-protocol listener as public
// test-network addresses.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, spawnProxy, type BuiltCli, type RunningProxy } from '../helpers/cli.js';
import { proxiedImapLogin } from '../helpers/imap-login.js';
import { dovecotForFile } from '../helpers/rig.js';

const rig = dovecotForFile();
let built: BuiltCli;
let proxy: RunningProxy;
const listFile = join(mkdtempSync(join(tmpdir(), 'mg-tor-')), 'tor-exits.txt');

beforeAll(async () => {
  built = buildCli();
  writeFileSync(listFile, '# Tor exits (test)\n203.0.113.1\n203.0.113.2\n');
  const path = built.writeConfig(
    'groups.yaml',
    [
      'workers: 2',
      'listeners:',
      '  - {name: imap, protocol: imap, listen: "127.0.0.1:0", tls: none, backend: imap, proxyProtocol: true}',
      `backends: {imap: {host: 127.0.0.1, port: ${rig.dovecot.ports.imap}}}`,
      'admin: {listen: "127.0.0.1:0"}',
      'limits:',
      '  trustedProxies: [127.0.0.0/8]',
      '  groups:',
      `    - {name: tor, file: ${JSON.stringify(listFile)}, together: true}`,
      '  rules:',
      '    - {name: ip-failures, key: ip, count: failures, limit: 2, window: 10m, block: 30m}',
    ].join('\n'),
  );
  proxy = await spawnProxy(built.cli, path);
}, 120_000);
afterAll(async () => {
  await proxy?.signal('SIGKILL');
  built?.remove();
});

const login = (ip: string, pass: string) => proxiedImapLogin(proxy.ports.imap!, ip, 'alice', pass);

describe('a together group from a file', () => {
  it('makes two exits one client, and takes in a third after SIGHUP', async () => {
    expect(await login('203.0.113.1', 'wrong1')).toBe('fail');
    expect(await login('203.0.113.2', 'wrong2')).toBe('fail');
    // The group's budget is spent: either exit, even with the right password.
    expect(await login('203.0.113.1', 'alice-pass')).toBe('limited');
    expect(await login('203.0.113.2', 'alice-pass')).toBe('limited');
    // Not in the group yet: its own budget.
    expect(await login('203.0.113.3', 'alice-pass')).toBe('ok');
    writeFileSync(listFile, '# Tor exits (test)\n203.0.113.1\n203.0.113.2\n203.0.113.3\n');
    const reloads = proxy.lines().filter((l) => l.event === 'config.reload').length;
    proxy.child.kill('SIGHUP');
    await proxy.waitForLog((l) => l.event === 'config.reload' && l.worker === 0 && proxy.lines().filter((x) => x.event === 'config.reload').indexOf(l) >= reloads);
    expect(await login('203.0.113.3', 'alice-pass')).toBe('limited');
    expect(await login('203.0.113.9', 'alice-pass')).toBe('ok');
    // Each worker read the file again.
    const loaded = proxy.lines().filter((l) => l.event === 'groups.loaded' && l.entries === 3);
    expect(new Set(loaded.map((l) => l.worker)).size).toBeGreaterThanOrEqual(2);
    // The operator's view (the primary read the file too).
    const groups = built.run(['admin', 'groups', '--url', `http://127.0.0.1:${proxy.admin}`]);
    expect(groups.code).toBe(0);
    expect(JSON.parse(groups.stdout)).toMatchObject({ groups: [{ name: 'tor', source: 'file', together: true, size: 3, path: listFile }] });
  });
});
