// The policy server as the compiled CLI runs it: in worker mode the primary answers it with the
// same counters the workers' listeners use (the memory store it shares), and a config with only
// a policy server runs as one process whatever `workers` says.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, spawnProxy, type BuiltCli, type RunningProxy } from '../helpers/cli.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile } from '../helpers/rig.js';

const rig = dovecotForFile();
let built: BuiltCli;
beforeAll(() => {
  built = buildCli();
}, 120_000);
afterAll(() => built?.remove());

const policyPort = (p: RunningProxy) => p.lines().find((l) => l.event === 'policy.start')!.port as number;
const ask = async (p: RunningProxy, command: 'allow' | 'report', o: Record<string, unknown>) => {
  const res = await fetch(`http://127.0.0.1:${policyPort(p)}/dovecot?command=${command}`, {
    method: 'POST',
    body: JSON.stringify({ login: 'alice', pwhash: '0f0f', remote: '127.0.0.44', protocol: 'imap', session_id: `s${Math.random()}`, ...o }),
  });
  return (await res.json()) as { status: number; msg: string };
};

describe('worker mode', () => {
  let proxy: RunningProxy;
  beforeAll(async () => {
    const path = built.writeConfig(
      'policy-workers.yaml',
      [
        'workers: 2',
        'listeners:',
        '  - {name: imap, protocol: imap, listen: "127.0.0.1:0", tls: none, backend: imap}',
        `backends: {imap: {host: 127.0.0.1, port: ${rig.dovecot.ports.imap}}}`,
        'policyServer: {listen: "127.0.0.1:0"}',
        'limits:',
        '  rules:',
        '    - {name: ip-failures, key: ip, count: failures, limit: 2, window: 10m, block: 30m}',
      ].join('\n'),
    );
    proxy = await spawnProxy(built.cli, path);
  }, 60_000);
  afterAll(() => proxy?.signal('SIGKILL'));

  it("serves the policy from the primary, on the counters the workers' listeners use", async () => {
    expect(proxy.lines().find((l) => l.event === 'policy.start')).toMatchObject({ worker: 0 });
    // One wrong password through a worker's listener…
    const c = await RawClient.connect(proxy.ports.imap!, { localAddress: '127.0.0.44' });
    await c.waitFor(/^\* OK/);
    c.write('a1 LOGIN alice wrong\r\n');
    await c.waitFor(/^a1 NO/m);
    c.close();
    // …and one reported by Dovecot's policy requests: the limit of two is reached.
    expect((await ask(proxy, 'allow', { session_id: 'w1', pwhash: '0001' })).status).toBe(0);
    await ask(proxy, 'report', { session_id: 'w1', pwhash: '0001', success: false, policy_reject: false });
    const refused = await ask(proxy, 'allow', { session_id: 'w2' });
    expect(refused.status).toBe(-1);
    expect(refused.msg).toMatch(/try again in \d+ seconds/);
    // The mail listener refuses that address too.
    const d = await RawClient.connect(proxy.ports.imap!, { localAddress: '127.0.0.44' });
    const greeting = await d.waitFor(/\r\n/);
    d.write('a1 LOGIN alice alice-pass\r\n');
    expect(greeting + (await d.waitFor(/^a1 |^\* BYE/m))).toMatch(/UNAVAILABLE|Too many/);
    d.close();
  });
});

describe('a policy server alone', () => {
  it('runs as one process even with workers: 4', async () => {
    const path = built.writeConfig('policy-only.yaml', ['workers: 4', 'policyServer: {listen: "127.0.0.1:0"}', 'limits: {rules: []}'].join('\n'));
    const proxy = await spawnProxy(built.cli, path);
    try {
      expect(proxy.lines().some((l) => l.event === 'worker.start')).toBe(false);
      expect(proxy.lines().find((l) => l.event === 'policy.start')).not.toHaveProperty('worker');
      expect(await ask(proxy, 'allow', {})).toEqual({ status: 0, msg: 'ok' });
    } finally {
      await proxy.signal('SIGTERM');
    }
  });
});
