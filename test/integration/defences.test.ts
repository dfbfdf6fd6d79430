// The shipped limits (config/mailgate.yaml, as shipped) in front of a real Dovecot, on the memory
// store and on Redis: an account under attack from many networks, spraying, an office NAT with
// an infected machine, attack mode forced by an operator. Clients are real IMAP logins from
// their own loopback addresses; what reached Dovecot is read from mailgate's outcomes (fail:
// Dovecot said no; limited: mailgate refused without asking). Dovecot's auth penalty is off
// here (these tests are about mailgate's rules); front-door.test.ts runs with it on.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { TestProxy } from '../helpers/proxy.js';
import { imapLogin } from '../helpers/imap-login.js';
import { dovecotForFile, redisForFile } from '../helpers/rig.js';

const shipped = (parse(readFileSync(new URL('../../config/mailgate.yaml', import.meta.url), 'utf8')) as { limits: Record<string, unknown> }).limits;
const TOKEN = 'defences-admin-token-0123456789';
const colleagues = Array.from({ length: 6 }, (_, i) => ({ user: `colleague${i}`, pass: `colleague${i}-pass` }));
const victims = Array.from({ length: 12 }, (_, i) => ({ user: `victim${i}`, pass: `victim${i}-pass` }));

const redisHolder = redisForFile();
const rig = dovecotForFile({ users: [{ user: 'alice', pass: 'alice-pass' }, { user: 'bob', pass: 'bob-pass' }, ...colleagues, ...victims] });

const login = imapLogin;
let proxies = 0;

describe.each(['memory', 'redis'] as const)('the shipped defaults, %s store', (storeType) => {
  // Each store gets its own address range, so the two runs share no counter in Dovecot's log.
  const base = storeType === 'memory' ? 0 : 120;
  const at = (net: number, host = 1) => `127.${base + net}.${Math.floor(host / 250)}.${(host % 250) + 1}`;
  async function proxy(): Promise<TestProxy> {
    const store = storeType === 'redis' ? { type: 'redis', redis: { url: redisHolder.redis.url, keyPrefix: `mg${proxies++}:` } } : { type: 'memory' };
    return rig.proxy({
      listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap' }],
      backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap } },
      store,
      limits: { ...shipped, keySecret: 'defences-test-key-secret-0123' },
      admin: { listen: '127.0.0.1:0', token: TOKEN },
    });
  }

  it('an account guessed at from 20 networks: 5 guesses reach Dovecot; the owner gets in from home and from a new network', async () => {
    const p = await proxy();
    expect(await login(p, at(1, 7), 'alice', 'alice-pass')).toBe('ok'); // home
    const outcomes: string[] = [];
    for (let i = 0; i < 20; i++) outcomes.push(await login(p, at(10 + i), 'alice', `guess-${i}`));
    expect(outcomes.filter((o) => o === 'fail')).toHaveLength(5);
    expect(outcomes.slice(5)).toEqual(Array(15).fill('limited'));
    expect(await login(p, at(1, 7), 'alice', 'alice-pass')).toBe('ok');
    expect(await login(p, at(40), 'alice', 'alice-pass')).toBe('ok'); // travelling: the hint
    const hinted = p.log.lines.filter((l) => l.event === 'auth.attempt' && l.outcome === 'ok').at(-1);
    expect(hinted).toMatchObject({ hintMatch: true });
    // The log says whether the hint matched, never what it is.
    expect(JSON.stringify(p.log.lines)).not.toMatch(/alice-pass|"hint"/);
  });

  it('one password sprayed over 12 accounts from 12 networks: 5 tries reach Dovecot', async () => {
    const p = await proxy();
    const outcomes: string[] = [];
    for (const [i, v] of victims.entries()) outcomes.push(await login(p, at(50 + i), v.user, 'Winter2026!'));
    expect(outcomes).toEqual([...Array(5).fill('fail'), ...Array(7).fill('limited')]);
    // The owners themselves are not refused: another password, another rule.
    expect(await login(p, at(70), victims[11]!.user, victims[11]!.pass)).toBe('ok');
  });

  it('an office NAT: six colleagues keep logging in while the infected machine behind it is stopped', async () => {
    const p = await proxy();
    const office = at(80, 9);
    for (const c of colleagues) expect(await login(p, office, c.user, c.pass)).toBe('ok');
    const machine: string[] = [];
    for (let i = 0; i < 30; i++) machine.push(await login(p, office, i % 2 ? colleagues[i % 6]!.user : victims[i % 12]!.user, `guess-${i}`));
    expect(machine.filter((o) => o === 'fail').length).toBeLessThanOrEqual(10);
    for (const c of colleagues) expect(await login(p, office, c.user, c.pass)).toBe('ok');
  });

  it('failures spreading over one /24 refuse strangers there; a success from the network lifts it', async () => {
    const p = await proxy();
    for (let i = 0; i < 10; i++) expect(await login(p, at(95, i), victims[i]!.user, `spread-${i}`)).toBe('fail');
    expect(await login(p, at(95, 200), victims[10]!.user, 'spread-x')).toBe('limited');
    expect(p.log.lines.filter((l) => l.rule === 'net-failures')).toHaveLength(1);
    // bob logged in elsewhere before: his right password passes (the hint) and narrows it back.
    expect(await login(p, at(96), 'bob', 'bob-pass')).toBe('ok');
    expect(await login(p, at(95, 201), 'bob', 'bob-pass')).toBe('ok');
    expect(await login(p, at(95, 202), victims[11]!.user, 'spread-y')).toBe('fail');
  });

  it('attack mode, forced by an operator: an unknown pair waits, a known pair and a hint match pass', async () => {
    const p = await proxy();
    expect(await login(p, at(90, 1), 'bob', 'bob-pass')).toBe('ok');
    const force = (mode: string) => fetch(`http://127.0.0.1:${p.admin!.port}/api/v1/attack-mode?mode=${mode}`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    expect((await force('on')).status).toBe(200);
    expect(await login(p, at(90, 1), 'bob', 'bob-pass')).toBe('ok'); // his network
    expect(await login(p, at(91), 'bob', 'bob-pass')).toBe('ok'); // his password
    expect(await login(p, at(92), 'bob', 'guess')).toBe('limited');
    expect(await login(p, at(93), victims[0]!.user, victims[0]!.pass)).toBe('limited'); // no pair, no hint yet
    expect(p.log.lines.filter((l) => l.rule === 'attack-mode')).toHaveLength(2);
    expect((await force('auto')).status).toBe(200);
    expect(await login(p, at(93), victims[0]!.user, victims[0]!.pass)).toBe('ok');
  });
});
