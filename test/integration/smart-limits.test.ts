// Brute-force defence that does not lock out real users, against a real Dovecot: known-good
// pairs, stale-password dedupe, distinct counting (many IPs on one user, spraying), tarpit,
// escalating blocks (injected clock) and dry-run. Attackers and victims use separate
// loopback source addresses.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import type { TestProxy } from '../helpers/proxy.js';
import { imapLogin } from '../helpers/imap-login.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile } from '../helpers/rig.js';

const rig = dovecotForFile({
  users: [
    { user: 'alice', pass: 'alice-pass' },
    { user: 'bob', pass: 'bob-pass' },
    { user: 'carol', pass: 'carol-pass' },
    { user: 'dave', pass: 'dave-pass' },
  ],
});

async function proxyWith(limits: Record<string, unknown>, clock?: ManualClock): Promise<TestProxy> {
  return rig.proxy(
    {
      listeners: [{ name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap' }],
      backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap } },
      limits,
    },
    clock ? { clock } : {},
  );
}

const login = imapLogin;

describe('known-good pairs', () => {
  it('a burst against alice from elsewhere does not stop her from her usual network; a new IP is refused', async () => {
    const p = await proxyWith({
      knownGood: { ttl: '14d' },
      rules: [{ name: 'user-failures', key: 'user', count: 'failures', limit: 3, window: '1h', block: '1h' }],
    });
    expect(await login(p, '127.0.30.7', 'alice', 'alice-pass')).toBe('ok'); // "yesterday"
    for (let i = 0; i < 3; i++) expect(await login(p, `127.0.31.${i + 1}`, 'alice', `guess-${i}`)).toBe('fail');
    expect(await login(p, '127.0.31.9', 'alice', 'alice-pass')).toBe('limited');
    expect(await login(p, '127.0.32.1', 'alice', 'alice-pass')).toBe('limited'); // a new network
    expect(await login(p, '127.0.30.7', 'alice', 'alice-pass')).toBe('ok'); // her own
    expect(await login(p, '127.0.30.99', 'alice', 'alice-pass')).toBe('ok'); // same /24
    const ok = p.log.lines.filter((l) => l.event === 'auth.attempt' && l.outcome === 'ok');
    expect(ok.at(-1)).toMatchObject({ knownGood: true });
  });
});

describe('stale-password dedupe', () => {
  it('the same wrong password replayed ten times does not trip a limit of three; new guesses do', async () => {
    const p = await proxyWith({ rules: [{ name: 'ip-failures', key: 'ip', count: 'failures', limit: 3, window: '10m' }] });
    for (let i = 0; i < 10; i++) expect(await login(p, '127.0.33.1', 'bob', 'old-password')).toBe('fail');
    expect(await login(p, '127.0.33.1', 'bob', 'bob-pass')).toBe('ok');
    for (let i = 0; i < 2; i++) expect(await login(p, '127.0.33.1', 'bob', `guess-${i}`)).toBe('fail');
    expect(await login(p, '127.0.33.1', 'bob', 'bob-pass')).toBe('limited');
    expect(p.log.raw.join('\n')).not.toContain('old-password');
  });

  it('can be switched off', async () => {
    const p = await proxyWith({ dedupeFailures: false, rules: [{ name: 'ip-failures', key: 'ip', count: 'failures', limit: 3, window: '10m' }] });
    for (let i = 0; i < 3; i++) expect(await login(p, '127.0.33.2', 'bob', 'old-password')).toBe('fail');
    expect(await login(p, '127.0.33.2', 'bob', 'bob-pass')).toBe('limited');
  });
});

describe('distinct counting', () => {
  it('five IPs guessing one user put that user in protection: only known-good pairs get in', async () => {
    const p = await proxyWith({
      knownGood: { ttl: '14d' },
      rules: [{ name: 'user-spread', key: 'user', count: 'failures', distinct: 'ip', limit: 5, window: '1h', block: '1h' }],
    });
    expect(await login(p, '127.0.34.1', 'carol', 'carol-pass')).toBe('ok');
    // One IP guessing many times is one distinct IP.
    for (let i = 0; i < 6; i++) expect(await login(p, '127.0.35.1', 'carol', `guess-a${i}`)).toBe('fail');
    expect(await login(p, '127.0.35.1', 'carol', 'carol-pass')).toBe('ok');
    for (let i = 2; i <= 5; i++) expect(await login(p, `127.0.35.${i}`, 'carol', `guess-b${i}`)).toBe('fail');
    expect(await login(p, '127.0.36.1', 'carol', 'carol-pass')).toBe('limited');
    expect(await login(p, '127.0.34.1', 'carol', 'carol-pass')).toBe('ok');
  });

  it('one IP spraying one password over many users is caught by distinct users', async () => {
    const p = await proxyWith({ rules: [{ name: 'spray', key: 'ip', count: 'failures', distinct: 'user', limit: 3, window: '1h', block: '1h' }] });
    for (const u of ['alice', 'bob', 'carol']) expect(await login(p, '127.0.37.1', u, 'Summer2026!')).toBe('fail');
    expect(await login(p, '127.0.37.1', 'dave', 'dave-pass')).toBe('limited');
    expect(await login(p, '127.0.37.2', 'dave', 'dave-pass')).toBe('ok');
  });
});

describe('tarpit and escalating blocks', () => {
  it('failed logins are answered after a doubling delay, capped; the wording is unchanged', async () => {
    const p = await proxyWith({
      rules: [{ name: 'ip-slow', key: 'ip', count: 'failures', limit: 100, window: '1h', delay: { base: '20ms', max: '80ms' } }],
    });
    for (let i = 0; i < 4; i++) expect(await login(p, '127.0.38.1', 'dave', `nope-${i}`)).toBe('fail');
    const delays = p.log.lines.filter((l) => l.event === 'auth.attempt' && l.outcome === 'fail').map((l) => l.tarpitMs);
    expect(delays).toEqual([20, 40, 80, 80]);
    expect(await login(p, '127.0.38.1', 'dave', 'dave-pass')).toBe('ok');
  });

  it('a repeat offender is blocked twice as long each time (injected clock)', async () => {
    const clock = new ManualClock(Date.now());
    const p = await proxyWith(
      { rules: [{ name: 'ip-failures', key: 'ip', count: 'failures', limit: 1, window: '1m', block: '10m', blockGrowth: 2, blockMax: '30m' }] },
      clock,
    );
    const retries: number[] = [];
    for (let round = 0; round < 3; round++) {
      expect(await login(p, '127.0.39.1', 'dave', `round-${round}`)).toBe('fail');
      // Blocked: turned away at connect, told how long to wait.
      const c = await RawClient.connect(p.port('imap'), { localAddress: '127.0.39.1' });
      const bye = await c.waitClosed();
      const secs = Number(/^\* BYE \[UNAVAILABLE\] Too many login attempts; try again in (\d+) seconds\./m.exec(bye)?.[1]);
      retries.push(secs);
      clock.advance(secs * 1000 + 1);
    }
    expect(retries).toEqual([600, 1200, 1800]);
    expect(await login(p, '127.0.39.1', 'dave', 'dave-pass')).toBe('ok');
  });
});

describe('dry run', () => {
  it('refuses nothing and logs everything it would have refused', async () => {
    const p = await proxyWith({ mode: 'dry-run', rules: [{ name: 'ip-logins', key: 'ip', count: 'attempts', limit: 2, window: '1h' }] });
    const results = [];
    for (let i = 0; i < 5; i++) results.push(await login(p, '127.0.39.50', 'dave', 'dave-pass'));
    expect(results).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    const would = p.log.lines.filter((l) => l.event === 'auth.dry-run');
    expect(would).toHaveLength(3);
    expect(would[0]).toMatchObject({ rule: 'ip-logins', count: 2, blocked: false });
    const metrics = await p.metrics.registry.metrics();
    expect(metrics).toMatch(/^mailgate_dry_run_refusals_total\{rule="ip-logins"\} 3$/m);
  });
});
