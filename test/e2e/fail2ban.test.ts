// deploy/fail2ban against Debian's fail2ban-regex and log lines mailgate really wrote (a proxy
// in front of a real Dovecot): failures, refusals at login and at connect, and an invalid user
// name match with the client's address; successes and everything else do not. The jail file
// parses with fail2ban-client's own configuration reader.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/logging/logger.js';
import { startProxy } from '../../src/main.js';
import { imapLogin, proxiedImapLogin } from '../helpers/imap-login.js';
import { dovecotForFile } from '../helpers/rig.js';

const FILTER = resolve('deploy/fail2ban/filter.d/mailgate.conf');
const JAIL = resolve('deploy/fail2ban/jail.d/mailgate.conf');

const rig = dovecotForFile({ users: [{ user: 'alice', pass: 'alice-pass' }, { user: 'bob', pass: 'bob-pass' }] });
const dir = mkdtempSync(join(tmpdir(), 'mailgate-f2b-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Regex {
  /** "Failregex: N total". */
  total: number;
  matched: string[];
}

/** fail2ban-regex over `lines`, with the filter (and its options, e.g. `[mode=failures]`). */
function f2bRegex(lines: string[], filter = FILTER, env: NodeJS.ProcessEnv = {}): Regex {
  const file = join(dir, `log-${Math.random().toString(36).slice(2)}.log`);
  writeFileSync(file, lines.join('\n') + '\n');
  const out = execFileSync('fail2ban-regex', ['--print-all-matched', file, filter], { encoding: 'utf8', env: { ...process.env, ...env } });
  const total = Number(/^Failregex: (\d+) total/m.exec(out)?.[1]);
  const block = /^\|- Matched line\(s\):\n([\s\S]*?)^`-/m.exec(out)?.[1] ?? '';
  return { total, matched: block.split('\n').filter(Boolean).map((l) => l.replace(/^\|\s\s/, '')) };
}

/** The hosts fail2ban-regex -v found, with the time it read: "127.0.0.2  Tue Dec 01 20:14:11 2026". */
function hostTimes(lines: string[], env: NodeJS.ProcessEnv = {}): string[] {
  const file = join(dir, 'times.log');
  writeFileSync(file, lines.join('\n') + '\n');
  const out = execFileSync('fail2ban-regex', ['-v', file, FILTER], { encoding: 'utf8', env: { ...process.env, ...env } });
  return [...out.matchAll(/^\|\s+(\d+\.\d+\.\d+\.\d+)\s+(\w{3} \w{3} \d\d \d\d:\d\d:\d\d \d{4})$/gm)].map((m) => `${m[1]} ${m[2]}`);
}

const json = (line: string) => JSON.parse(line) as Record<string, unknown>;

describe('fail2ban filter against the lines mailgate writes', () => {
  const FAIL = '127.0.0.2';
  const LIMITED = '127.0.0.3';
  const OK = '127.0.0.4';
  const BLOCKED = '127.0.0.5';
  const INVALID = '127.0.0.6';
  /** Behind a PROXY-protocol balancer (127.0.0.1): the header's client. */
  const BEHIND = '198.51.100.7';
  let raw: string[] = [];

  it('matches the failures and refusals with the client address, never a success', async () => {
    const proxy = await rig.proxy({
      listeners: [
        { name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', requireTls: false, backend: 'imap' },
        { name: 'imap-lb', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', requireTls: false, backend: 'imap', proxyProtocol: true },
      ],
      backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap } },
      limits: {
        trustedProxies: ['127.0.0.1/32'],
        rules: [
          // A pair's second login in the window is refused at login (no block: no connect refusal).
          { name: 'pair-attempts', key: 'ip+user', count: 'attempts', limit: 1, window: '10m' },
          // A failure blocks the address: its next connection is turned away at connect.
          { name: 'ip-failures', key: 'ip', count: 'failures', limit: 1, window: '10m', block: '10m' },
        ],
      },
    });
    expect(await imapLogin(proxy, FAIL, 'alice', 'wrong')).toBe('fail');
    expect(await imapLogin(proxy, LIMITED, 'bob', 'bob-pass')).toBe('ok');
    expect(await imapLogin(proxy, LIMITED, 'bob', 'bob-pass')).toBe('limited');
    expect(await imapLogin(proxy, OK, 'alice', 'alice-pass')).toBe('ok');
    expect(await imapLogin(proxy, BLOCKED, 'alice', 'wrong')).toBe('fail');
    expect(await imapLogin(proxy, BLOCKED, 'alice', 'wrong')).toBe('limited');
    expect(await imapLogin(proxy, INVALID, '""', 'x')).toBe('fail');
    expect(await proxiedImapLogin(proxy.port('imap-lb'), BEHIND, 'bob', 'wrong')).toBe('fail');
    await proxy.stop();
    raw = [...proxy.log.raw];
    const events = raw.map(json);
    // What mailgate wrote: the test's premises.
    const outcome = (ip: string) => events.filter((e) => e.ip === ip && e.event === 'auth.attempt').map((e) => e.outcome);
    expect(outcome(FAIL)).toEqual(['fail']);
    expect(outcome(LIMITED)).toEqual(['ok', 'limited']);
    expect(outcome(OK)).toEqual(['ok']);
    expect(outcome(INVALID)).toEqual(['invalid']);
    expect(events.filter((e) => e.ip === BEHIND && e.event === 'auth.attempt').map((e) => [e.proxy, e.outcome])).toEqual([['127.0.0.1', 'fail']]);
    expect(outcome(BLOCKED)).toEqual(['fail']);
    expect(events.filter((e) => e.ip === BLOCKED && e.event === 'session.refused').map((e) => e.reason)).toEqual(['ip-failures']);

    const r = f2bRegex(raw);
    const found = r.matched.map((l) => {
      const e = json(l);
      return `${String(e.ip)} ${String(e.outcome ?? e.event)}`;
    });
    expect(found.sort()).toEqual([`${FAIL} fail`, `${LIMITED} limited`, `${BLOCKED} fail`, `${BLOCKED} session.refused`, `${INVALID} invalid`, `${BEHIND} fail`].sort());
    expect(r.total).toBe(found.length);
  }, 60_000);

  it('mode=failures counts the failures only, not mailgate refusals', () => {
    const r = f2bRegex(raw, `${FILTER}[mode=failures]`);
    const found = r.matched.map((l) => `${String(json(l).ip)} ${String(json(l).outcome)}`);
    expect(found.sort()).toEqual([`${FAIL} fail`, `${BLOCKED} fail`, `${INVALID} invalid`, `${BEHIND} fail`].sort());
    expect(r.total).toBe(4);
  });

  it('reads the time as UTC whatever the zone, and matches behind the journal prefix', () => {
    const line = raw.find((l) => json(l).ip === FAIL && json(l).outcome === 'fail')!;
    const time = new Date(String(json(line).time));
    const berlin = hostTimes([line], { TZ: 'Europe/Berlin' });
    const local = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Berlin', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(time);
    expect(berlin).toEqual([expect.stringMatching(new RegExp(`^${FAIL.replaceAll('.', '\\.')} .* ${local} \\d{4}$`))]);
    // The systemd backend hands the filter "host identifier[pid]: MESSAGE".
    const r = f2bRegex([`mx node[4242]: ${line}`]);
    expect(r.total).toBe(1);
  });

  // Variants of real lines for what this rig does not produce: the field that differs is set.
  it('does not count the failures of a shared address, the connection caps, or CrowdSec refusals', () => {
    const failed = raw.find((l) => json(l).ip === FAIL && json(l).outcome === 'fail')!;
    const shared = failed.replace('"outcome":"fail"', '"outcome":"fail","shared":true');
    expect(json(shared).shared).toBe(true);
    const refused = raw.find((l) => json(l).event === 'session.refused')!;
    const because = (reason: string) => refused.replace('"reason":"ip-failures"', `"reason":"${reason}"`);
    expect(json(because('crowdsec')).reason).toBe('crowdsec');
    expect(f2bRegex([shared, because('limits.connections.perIp'), because('limits.deniedNetworks'), because('crowdsec')]).total).toBe(0);
    expect(f2bRegex([because('crowdsec-like-rule')]).total).toBe(1);
  });

  it('the jail parses with the filter installed beside the packaged configuration', () => {
    const conf = join(dir, 'etc');
    cpSync('/etc/fail2ban', conf, { recursive: true });
    cpSync(FILTER, join(conf, 'filter.d', 'mailgate.conf'));
    cpSync(JAIL, join(conf, 'jail.d', 'mailgate.conf'));
    const dump = execFileSync('fail2ban-client', ['-c', conf, '-d'], { encoding: 'utf8' });
    expect(dump).toMatch(/\['add', 'mailgate', 'systemd'\]/);
    expect(dump).toMatch(/'mailgate', 'addjournalmatch', \[?'_SYSTEMD_UNIT=mailgate\.service'/);
    expect(dump).toMatch(/'mailgate', 'maxretry', 15\]/);
  });

  it('matches the lines of the policy server (Dovecot asking) as a worker writes them', async () => {
    const lines: string[] = [];
    const dest = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        cb();
      },
    });
    // A worker's logger: every line carries "worker":1.
    const cfg = parseConfig({ policyServer: { listen: '127.0.0.1:0' }, limits: { rules: [{ name: 'ip-failures', key: 'ip', count: 'failures', limit: 1, window: '10m', block: '30m' }] } });
    const proxy = await startProxy(cfg, { log: createLogger('debug', dest, 1) });
    const ask = async (command: string, o: Record<string, unknown>) => {
      const body = JSON.stringify({ login: 'alice', pwhash: 'a1b2', device_id: '', protocol: 'imap', ...o });
      const res = await fetch(`http://127.0.0.1:${proxy.policyServer!.port}/dovecot?command=${command}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      return ((await res.json()) as { status: number }).status;
    };
    try {
      expect(await ask('allow', { remote: '192.0.2.7', session_id: 's1' })).toBe(0);
      await ask('report', { remote: '192.0.2.7', session_id: 's1', success: false, tried: true });
      expect(await ask('allow', { remote: '192.0.2.7', session_id: 's2' })).toBe(-1);
      expect(await ask('allow', { remote: '192.0.2.8', session_id: 's3' })).toBe(0);
      await ask('report', { remote: '192.0.2.8', session_id: 's3', success: true, tried: true });
    } finally {
      await proxy.stop();
    }
    const attempts = lines.map(json).filter((e) => e.event === 'auth.attempt');
    expect(attempts.map((e) => [e.worker, e.mode, e.ip, e.outcome])).toEqual([
      [1, 'dovecot', '192.0.2.7', 'fail'],
      [1, 'dovecot', '192.0.2.7', 'limited'],
      [1, 'dovecot', '192.0.2.8', 'ok'],
    ]);
    const r = f2bRegex(lines);
    expect(r.matched.map((l) => `${String(json(l).ip)} ${String(json(l).outcome)}`)).toEqual(['192.0.2.7 fail', '192.0.2.7 limited']);
    expect(r.total).toBe(2);
  });
});
