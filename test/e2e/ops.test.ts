// Operating mailgate, walked as an operator would with the compiled CLI in front of a real
// Dovecot: find and lift a block with `mailgate admin`, read /metrics, raise a limit with
// SIGHUP without dropping an open IMAP session, survive a broken file, stop with SIGTERM.
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, spawnProxy, type BuiltCli, type RunningProxy } from '../helpers/cli.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile } from '../helpers/rig.js';

const TOKEN = 'ops-walk-token-0123456789';
const rig = dovecotForFile();
let built: BuiltCli;
let proxy: RunningProxy;
let configPath: string;

const config = (limit: number, listen = '127.0.0.1:0') =>
  [
    'listeners:',
    `  - {name: imap, protocol: imap, listen: "${listen}", tls: none, backend: imap}`,
    `backends: {imap: {host: 127.0.0.1, port: ${rig.dovecot.ports.imap}}}`,
    'admin: {listen: "127.0.0.1:0"}',
    'timeouts: {shutdown: 1s}',
    'limits:',
    '  rules:',
    `    - {name: ip-failures, key: ip, count: failures, limit: ${limit}, window: 10m, block: 30m}`,
  ].join('\n');

beforeAll(async () => {
  built = buildCli();
  configPath = built.writeConfig('ops.yaml', config(2));
  proxy = await spawnProxy(built.cli, configPath, { MAILGATE_ADMIN_TOKEN: TOKEN });
}, 120_000);
afterAll(async () => {
  await proxy?.signal('SIGKILL');
  built?.remove();
});

async function login(ip: string, pass: string, tag: string): Promise<string> {
  const c = await RawClient.connect(proxy.ports.imap!, { localAddress: ip });
  await c.waitFor(/\r\n/);
  c.write(`${tag} LOGIN alice ${pass}\r\n`);
  const text = await c.waitFor(new RegExp(`^(${tag} (OK|NO)|\\* BYE)`, 'm')); // a blocked IP gets BYE at connect
  c.close();
  return text;
}

const admin = (...args: string[]) => built.run(['admin', ...args, '--url', `http://127.0.0.1:${proxy.admin}`], { MAILGATE_ADMIN_TOKEN: TOKEN });

describe('operating mailgate', () => {
  it('an operator finds a blocked IP with `mailgate admin blocks`, lifts it, and the user logs in', async () => {
    await login('127.0.15.1', 'wrong-a', 'a');
    await login('127.0.15.1', 'wrong-b', 'b');
    expect(await login('127.0.15.1', 'alice-pass', 'c')).toMatch(/UNAVAILABLE\] Too many login attempts/);
    const blocks = admin('blocks');
    expect(blocks.code).toBe(0);
    expect(JSON.parse(blocks.stdout).blocks).toEqual([expect.objectContaining({ rule: 'ip-failures', ip: '127.0.15.1', count: 2 })]);
    const unblock = admin('unblock', '127.0.15.1');
    expect(unblock.code).toBe(0);
    expect(await login('127.0.15.1', 'alice-pass', 'd')).toMatch(/d OK/);
    expect(admin('limits', '--ip', '127.0.15.1').stdout).toMatch(/"value": 0/);
    // Without the token the API says no, and the CLI exits 1.
    expect(built.run(['admin', 'blocks', '--url', `http://127.0.0.1:${proxy.admin}`], { MAILGATE_ADMIN_TOKEN: '' }).code).toBe(1);
    expect(admin('frobnicate').code).toBe(2);
  });

  it('/metrics shows login counts by outcome', async () => {
    const text = await (await fetch(`http://127.0.0.1:${proxy.admin}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    expect(text).toMatch(/^mailgate_login_attempts_total\{protocol="imap",outcome="fail"\} 2$/m);
    // The blocked address's third try: refused at connect if the block hint of the worker that
    // saw the failures has reached the worker it lands on (workers: auto), else at LOGIN by
    // the store. Once, either way.
    const atConnect = /^mailgate_connections_refused_total\{listener="imap",reason="blocked"\} 1$/m.test(text);
    const atLogin = /^mailgate_login_attempts_total\{protocol="imap",outcome="limited"\} 1$/m.test(text);
    expect([atConnect, atLogin]).toContain(true);
    expect(atConnect && atLogin).toBe(false);
    expect(text).toMatch(/^mailgate_login_attempts_total\{protocol="imap",outcome="ok"\} 1$/m);
  });

  it('SIGHUP: a raised limit applies without dropping an open IMAP session; a broken file is ignored', async () => {
    const session = await RawClient.connect(proxy.ports.imap!, { localAddress: '127.0.16.9' });
    await session.waitFor(/\r\n/);
    session.write('s LOGIN alice alice-pass\r\n');
    await session.waitFor(/s OK/);

    const port = proxy.ports.imap!;
    writeFileSync(configPath, config(4, `127.0.0.1:${port}`));
    proxy.child.kill('SIGHUP');
    await proxy.waitForLog((l) => l.event === 'config.reload' && l.msg === 'configuration reloaded');
    for (const t of ['a', 'b', 'c', 'd']) expect(await login('127.0.16.1', `wrong-${t}`, t)).toMatch(/NO \[AUTHENTICATIONFAILED\]/);
    expect(await login('127.0.16.1', 'alice-pass', 'e')).toMatch(/UNAVAILABLE\] Too many login attempts/);

    writeFileSync(configPath, readFileSync(configPath, 'utf8').replace('limit: 4', 'limit: lots'));
    proxy.child.kill('SIGHUP');
    const refused = await proxy.waitForLog((l) => l.event === 'config.reload' && typeof l.error === 'string');
    expect(refused.error).toMatch(/limits\.rules\.0\.limit/);
    expect(await login('127.0.16.2', 'alice-pass', 'f')).toMatch(/f OK/); // still serving

    session.write('n NOOP\r\n');
    await session.waitFor(/n OK/);
    session.close();
  });

  it('SIGTERM: a client that has not logged in is told BYE, and mailgate exits 0', async () => {
    const c = await RawClient.connect(proxy.ports.imap!);
    await c.waitFor(/\r\n/);
    const code = await proxy.signal('SIGTERM');
    expect(await c.waitClosed()).toMatch(/\* BYE Server shutting down\.\r\n$/);
    expect(code).toBe(0);
  });
});
