// Login history and the retired-password alert in worker mode (issue 20), with the compiled CLI
// (`workers: 2`, the primary's memory store over IPC) in front of a real Dovecot: the workers
// write the history into the primary's store and send their account events to the primary,
// whose webhook posts them; the [ALERT] waits in the primary's store for whichever worker
// serves the owner's next login.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { hookReceiverForFile, imapLoginReply, setPassword } from '../helpers/accounts.js';
import { buildCli, spawnProxy, workersConfig, type BuiltCli, type RunningProxy } from '../helpers/cli.js';
import { dovecotForFile } from '../helpers/rig.js';
import { until } from '../helpers/until.js';

const TOKEN = 'workers-history-token-0123456789';
const WORDING = 'An old password of this account was tried';
const hook = hookReceiverForFile();
const rig = dovecotForFile();
let built: BuiltCli | undefined;
let proxy: RunningProxy;

beforeAll(async () => {
  built = buildCli();
  const cfg = workersConfig(rig.dovecot.ports.imap, {
    limits: { keySecret: 'workers-history-secret-0123456789', rules: [] },
    alerts: { webhooks: [{ url: hook.url, events: ['retired-password'], cooldown: '1s' }] },
    notify: { retiredPassword: true, imapAlert: WORDING },
  });
  proxy = await spawnProxy(built.cli, built.writeConfig('history.yaml', stringify(cfg)), { MAILGATE_ADMIN_TOKEN: TOKEN });
}, 120_000);
afterAll(async () => {
  await proxy?.signal('SIGKILL');
  built?.remove();
});

const login = (ip: string, pass: string) => imapLoginReply(proxy.ports.imap!, ip, 'alice', pass);

type Row = { network: string; result: string; count: number };
async function rows(): Promise<Row[]> {
  const res = await fetch(`http://127.0.0.1:${proxy.admin}/api/v1/history?user=alice`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { entries: Row[] }).entries;
}
const count = async (result: string) => (await rows()).find((r) => r.result === result)?.count ?? 0;

describe('workers: 2, login history and the retired-password alert', () => {
  it('history from both workers in the primary; the webhook from the primary; one ALERT', async () => {
    await setPassword(rig.dovecot, 'alice', 'old-pass');
    // The kernel spreads connections over the workers: log in until both have served one (their
    // log lines reach stdout in batches, so a few more may go by).
    const workers = () => new Set(proxy.lines().filter((l) => l.event === 'auth.attempt').map((l) => l.worker));
    let n = 0;
    while (workers().size < 2 && n < 60) {
      expect(await login(`127.0.81.${++n}`, 'old-pass')).toMatch(/^a OK/m);
      if (n % 10 === 0) await until(() => proxy.lines().filter((l) => l.event === 'auth.attempt').length >= n, 'the workers log their logins');
    }
    expect(workers()).toEqual(new Set([1, 2]));
    await until(async () => (await count('ok')) === n, `${n} successes in the history`, 10_000);
    await setPassword(rig.dovecot, 'alice', 'new-pass');
    expect(await login('127.0.81.100', 'new-pass')).toMatch(/^a OK/m);
    await until(async () => (await count('ok')) === n + 1, 'the new password in the history', 10_000);
    expect(await login('127.0.82.1', 'old-pass')).toMatch(/^a NO/m);
    await until(() => hook.posts.some((p) => p.kind === 'retired-password'), 'the retired-password webhook', 10_000);
    expect(hook.posts.find((p) => p.kind === 'retired-password')!.events[0]).toMatchObject({ network: '127.0.82.0/24', protocol: 'imap' });
    expect(await rows()).toMatchObject([
      { network: '127.0.82.0/24', result: 'fail', count: 1 },
      { network: '127.0.81.0/24', result: 'ok', count: n + 1 },
    ]);
    const replies = [];
    for (let i = 0; i < 4; i++) replies.push(await login('127.0.81.20', 'new-pass'));
    expect(replies.filter((r) => new RegExp(`^\\* OK \\[ALERT\\] ${WORDING}\\r\\na OK`, 'm').test(r))).toHaveLength(1);
    expect(replies[0]).toContain('[ALERT]');
    for (const r of replies) expect(r).toMatch(/^a OK/m);
    expect(proxy.lines().filter((l) => l.event === 'auth.record-failed')).toEqual([]);
  });
});
