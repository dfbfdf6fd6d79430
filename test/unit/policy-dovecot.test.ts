// Dovecot's auth policy without HTTP: allow / report sequences as Dovecot 2.3 sends them, on
// the memory store with a ManualClock. One login (allow, allow after auth, report) is one
// attempt; reports count as the backend's verdicts; allows without a report give back what
// they reserved; pwhash serves the hint but never a spray rule.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { BackendPools } from '../../src/backend/pool.js';
import { ManualClock } from '../../src/clock.js';
import { cidrMatcher } from '../../src/config/address.js';
import { parseConfig } from '../../src/config/load.js';
import type { AlertEvent } from '../../src/integrations/alerts.js';
import { AccountHistory } from '../../src/limits/history.js';
import { KeyBuilder } from '../../src/limits/keys.js';
import { Policy } from '../../src/limits/policy.js';
import { Tarpit } from '../../src/limits/tarpit.js';
import { createLogger } from '../../src/logging/logger.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { DovecotPolicy, parseDovecot, type DovecotRequest } from '../../src/policy-server/dovecot.js';
import { MemoryStore } from '../../src/stores/memory.js';

function rig(limits: unknown, opts: { maxWaitMs?: number; notify?: Record<string, unknown> } = {}) {
  const cfg = parseConfig({ policyServer: { listen: '127.0.0.1:0' }, limits, notify: opts.notify });
  const clock = new ManualClock();
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('debug', new Writable({ write: (chunk: Buffer, _e, cb) => (lines.push(JSON.parse(chunk.toString())), cb()) }));
  const metrics = createMetrics({ defaultMetrics: false });
  const store = new MemoryStore(clock);
  const keys = new KeyBuilder('test-secret-0123456789');
  const alerts: AlertEvent[] = [];
  const history = new AccountHistory(store, keys, clock, cfg, log, (e) => alerts.push(e));
  const deps = { policy: new Policy(cfg.limits, store, keys, clock), clock, metrics, tarpit: new Tarpit(clock), pools: new BackendPools(() => ({}), log), isDenied: cidrMatcher(cfg.limits.deniedNetworks), history };
  const dovecot = new DovecotPolicy(() => deps, () => ({ maxWaitMs: opts.maxWaitMs ?? 3000, reportTimeoutMs: 60_000 }), log);
  let session = 0;
  const req = (over: Partial<DovecotRequest> = {}): DovecotRequest => ({ login: 'alice', remote: '192.0.2.7', pwhash: 'a1b2', protocol: 'imap', session: `s${++session}`, ...over });
  /** One login as Dovecot 2.3 sends it: allow; on success allow again (after auth); report. */
  async function login(r: DovecotRequest, success: boolean) {
    const first = await dovecot.allow(r);
    if (first.status < 0) return { first };
    const second = success ? await dovecot.allow(r) : undefined;
    await dovecot.report({ ...r, success, policyReject: false });
    return { first, second };
  }
  return { dovecot, clock, lines, metrics, req, login, store, alerts, history };
}

const attempts = (limit: number) => ({ rules: [{ name: 'ip-logins', key: 'ip', count: 'attempts', limit, window: '1h' }] });
const failures = (limit: number, extra: Record<string, unknown> = {}) => ({ rules: [{ name: 'ip-failures', key: 'ip', count: 'failures', limit, window: '10m', block: '30m', ...extra }] });

describe('Dovecot auth policy', () => {
  it('counts one login once although Dovecot asks allow twice, and never refuses the second allow', async () => {
    const r = rig(attempts(2));
    const one = await r.login(r.req(), true);
    expect(one.first).toEqual({ status: 0, msg: 'ok' });
    // The second login reaches the limit with its first allow; its after-auth allow still passes.
    const two = await r.login(r.req(), true);
    expect(two.second).toEqual({ status: 0, msg: 'ok' });
    const three = await r.login(r.req(), true);
    expect(three.first.status).toBe(-1);
    expect(three.first.msg).toMatch(/^Too many login attempts; try again in \d+ seconds\.$/);
    const outcomes = r.lines.filter((l) => l.event === 'auth.attempt').map((l) => l.outcome);
    expect(outcomes).toEqual(['ok', 'ok', 'limited']);
  });

  it('keeps the login history and spots a retired password by its pwhash', async () => {
    const r = rig(failures(10), { notify: { retiredPassword: true } });
    const settled = () => new Promise((done) => setImmediate(done));
    await r.login(r.req({ pwhash: 'aaaa' }), true);
    await settled();
    r.clock.advance(1_000);
    await r.login(r.req({ pwhash: 'bbbb' }), true);
    await settled();
    r.clock.advance(1_000);
    await r.login(r.req({ pwhash: 'cccc', remote: '198.51.100.9' }), false);
    await settled();
    expect(r.alerts).toEqual([]);
    await r.login(r.req({ pwhash: 'aaaa', remote: '198.51.100.9' }), false);
    await settled();
    expect(r.alerts).toMatchObject([{ kind: 'retired-password', network: '198.51.100.0/24', protocol: 'imap' }]);
    expect((await r.history.entries('alice')).map((e) => [e.network, e.result, e.count])).toEqual([
      ['198.51.100.0/24', 'fail', 2],
      ['192.0.2.0/24', 'ok', 2],
    ]);
  });

  it('counts reported failures and refuses the attempt after the limit', async () => {
    const r = rig(failures(3));
    for (let i = 0; i < 3; i++) expect((await r.login(r.req({ pwhash: `000${i}` }), false)).first.status).toBe(0);
    const refused = await r.dovecot.allow(r.req());
    expect(refused.status).toBe(-1);
    expect(refused.msg).toContain('1800 seconds');
    // Another client is untouched.
    expect((await r.dovecot.allow(r.req({ remote: '198.51.100.9' }))).status).toBe(0);
  });

  it('gives back the reservations of allows whose report never comes, after reportTimeout', async () => {
    const r = rig(failures(2));
    expect((await r.dovecot.allow(r.req())).status).toBe(0);
    expect((await r.dovecot.allow(r.req())).status).toBe(0);
    // Two logins in flight could both fail: a third is told to wait.
    expect((await r.dovecot.allow(r.req())).status).toBe(-1);
    expect(await r.dovecot.sweep()).toBe(0);
    r.clock.advance(60_000);
    expect(await r.dovecot.sweep()).toBe(2);
    expect(r.dovecot.waiting).toBe(0);
    expect((await r.dovecot.allow(r.req())).status).toBe(0);
  });

  it('counts a report whose allow it never saw (auth_policy_check_before_auth = no)', async () => {
    const r = rig(failures(2));
    // Two different wrong passwords (the same one twice would count once: dedupe).
    await r.dovecot.report({ ...r.req({ pwhash: '0001' }), success: false, policyReject: false });
    await r.dovecot.report({ ...r.req({ pwhash: '0002' }), success: false, policyReject: false });
    expect((await r.dovecot.allow(r.req())).status).toBe(-1);
  });

  it('ignores the report of a login the policy refused', async () => {
    const r = rig(failures(1));
    await r.login(r.req(), false);
    const s = r.req();
    expect((await r.dovecot.allow(s)).status).toBe(-1);
    await r.dovecot.report({ ...s, success: false, policyReject: true });
    expect(r.lines.filter((l) => l.event === 'auth.attempt').map((l) => l.outcome)).toEqual(['fail', 'limited']);
  });

  it("maps Dovecot's submission onto the rules' smtp", async () => {
    const r = rig({ rules: [{ name: 'smtp-only', key: 'ip', count: 'attempts', limit: 1, window: '1h', protocols: ['smtp'] }] });
    const sub = parseDovecot({ login: 'alice', remote: '192.0.2.7', protocol: 'submission', session_id: 'x1' });
    expect(sub).toMatchObject({ protocol: 'smtp' });
    expect((await r.dovecot.allow(sub as DovecotRequest)).status).toBe(0);
    expect((await r.dovecot.allow({ ...(sub as DovecotRequest), session: 'x2' })).status).toBe(-1);
    // IMAP logins are not that rule's business.
    expect((await r.dovecot.allow(r.req())).status).toBe(0);
  });

  it("lets the owner's pwhash through a user block (the hint), and no other", async () => {
    const r = rig({ passwordHint: { ttl: '30d' }, rules: [{ name: 'user-failures', key: 'user', count: 'failures', limit: 2, window: '1h', block: '1h' }] });
    await r.login(r.req({ pwhash: '0f0f', remote: '192.0.2.1' }), true);
    for (const h of ['1111', '2222']) await r.login(r.req({ pwhash: h, remote: '203.0.113.5' }), false);
    expect((await r.dovecot.allow(r.req({ pwhash: '3333', remote: '203.0.113.5' }))).status).toBe(-1);
    expect((await r.dovecot.allow(r.req({ pwhash: '0f0f', remote: '198.51.100.1' }))).status).toBe(0);
  });

  it('never feeds a spray rule: pwhash is a hash of the user name too', async () => {
    const r = rig({ rules: [{ name: 'password-spray', key: 'password', count: 'failures', distinct: 'user', limit: 2, window: '1d', block: '1d' }] });
    for (const user of ['u1', 'u2', 'u3']) await r.login(r.req({ login: user, pwhash: 'beef', remote: `192.0.2.${user.length}` }), false);
    expect((await r.dovecot.allow(r.req({ login: 'u4', pwhash: 'beef' }))).status).toBe(0);
  });

  it("owes the tarpit's delay to the client's next attempt, capped at maxWait", async () => {
    const r = rig(failures(10, { delay: { base: '5s', max: '20s' } }), { maxWaitMs: 3000 });
    await r.login(r.req({ pwhash: '0001' }), false);
    await r.login(r.req({ pwhash: '0002' }), false);
    const next = await r.dovecot.allow(r.req());
    expect(next.status).toBe(3);
    // Owed once.
    await r.dovecot.report({ ...r.req(), success: true, policyReject: false });
    expect((await r.dovecot.allow(r.req({ remote: '192.0.2.7' }))).status).toBe(0);
  });

  it('refuses clients of deniedNetworks and invalid user names with a message', async () => {
    const r = rig({ deniedNetworks: ['203.0.113.0/24'], rules: [] });
    expect(await r.dovecot.allow(r.req({ remote: '203.0.113.9' }))).toEqual({ status: -1, msg: 'Access denied.' });
    expect(await r.dovecot.allow(r.req({ login: 'a\u0001b' }))).toEqual({ status: -1, msg: 'Invalid user name.' });
  });

  it('parses what Dovecot sends and names what is wrong otherwise', () => {
    const ok = parseDovecot({ login: 'Alice', pwhash: 'A1B2', remote: '::ffff:192.0.2.7', device_id: '', protocol: 'imap', session_id: 'abc', success: true, policy_reject: false, tls: true });
    expect(ok).toEqual({ login: 'Alice', remote: '192.0.2.7', pwhash: 'a1b2', protocol: 'imap', session: 'abc', success: true, policyReject: false, tried: undefined });
    expect(parseDovecot({ login: 'a', remote: '' })).toMatch(/^remote/);
    expect(parseDovecot({ remote: '192.0.2.1' })).toMatch(/^login/);
    expect(parseDovecot({ login: 'a', remote: '192.0.2.1', pwhash: 'xyz' })).toMatch(/^pwhash/);
    expect(parseDovecot([1])).toMatch(/object/);
    expect(parseDovecot({ login: 'a', remote: '192.0.2.1', protocol: 'sieve' })).toMatchObject({ protocol: 'other' });
  });
});
