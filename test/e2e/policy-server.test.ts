// Policy-server mode (issue 17) against the real programs: a Dovecot 2.3 that asks mailgate's
// /dovecot about every login (auth_policy_server_url) and reports its verdict, and an nginx
// mail proxy that asks /nginx (auth_http), for which mailgate replays the login to a Dovecot.
// Clients play from distinct loopback addresses; memory store with an injected clock, then
// Redis; the API key; malformed requests.
import { readFileSync } from 'node:fs';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parse } from 'yaml';
import { ManualClock, type Clock } from '../../src/clock.js';
import { startDovecot, type DovecotInstance } from '../helpers/dovecot.js';
import { greeted, LOGIN_OK, loginBytes, type Proto } from '../helpers/hostile.js';
import { startNginx } from '../helpers/nginx.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import type { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile, redisForFile } from '../helpers/rig.js';
import { until } from '../helpers/until.js';

const store = redisForFile();
// The nginx tests' backend. No policy in it: it sees every login from nginx's address.
const rig = dovecotForFile({ sink: true });

const DAY = 86_400_000;
const API_KEY = 'policy-server-key-0123';
const ALICE: [string, string] = ['alice', 'alice-pass'];
const OK = { verdict: 'ok' };
const FAIL = { verdict: 'fail' };

interface Replies {
  refused: Record<Proto, RegExp>;
  wrong: Record<Proto, RegExp>;
}
/** Dovecot 2.3.19 answering a policy status -1 with its msg, and a wrong password. */
const DOVECOT: Replies = {
  refused: {
    imap: /^a NO \[ALERT\] Too many login attempts; try again in (\d+) seconds\.\r\n/m,
    pop3: /^-ERR \[AUTH\] Too many login attempts; try again in (\d+) seconds\.\r\n/m,
    smtp: /^535 5\.7\.8 Too many login attempts; try again in (\d+) seconds\.\r\n/m,
  },
  wrong: { imap: /^a NO \[AUTHENTICATIONFAILED\] Authentication failed\.\r\n/m, pop3: /^-ERR \[AUTH\] Authentication failed\.\r\n/m, smtp: /^535 5\.7\.8 Authentication failed\.\r\n/m },
};
/** nginx: Auth-Status after the tag and NO, after -ERR, or after Auth-Error-Code. */
const NGINX: Replies = {
  refused: {
    imap: /^a NO \[UNAVAILABLE\] Too many login attempts; try again in (\d+) seconds\.\r\n/m,
    pop3: /^-ERR \[SYS\/TEMP\] Too many login attempts; try again in (\d+) seconds\.\r\n/m,
    smtp: /^454 4\.7\.0 Too many login attempts; try again in (\d+) seconds\.?\r\n/m,
  },
  wrong: { imap: /^a NO \[AUTHENTICATIONFAILED\] Authentication failed\.\r\n/m, pop3: /^-ERR \[AUTH\] Authentication failed\.\r\n/m, smtp: /^535 5\.7\.8 Authentication credentials invalid\r\n/m },
};
/** The whole line that ends a login, whatever it says. */
const ENDED: Record<Proto, RegExp> = { imap: /^a (?:OK|NO|BAD) [^\r]*\r\n/m, pop3: /^(?:\+OK Logged in|-ERR )[^\r]*\r\n/m, smtp: /^(?:235|[45]\d\d) [^\r]*\r\n/m };

/** A mail front end (Dovecot itself, or nginx) that asks mailgate about its logins. */
interface Front {
  mailgate: TestProxy;
  /** The policy endpoint's base URL, http://host:port. */
  url: string;
  port: Record<Proto, number>;
  replies: Replies;
}

/** mailgate with a policy server and no listeners, stopped after the test. */
async function policyMailgate(config: Record<string, unknown>, policyServer: Record<string, unknown>, clock?: Clock) {
  const mailgate = await startTestProxy({ ...config, policyServer: { listen: '127.0.0.1:0', ...policyServer } }, clock ? { clock } : {});
  onTestFinished(() => mailgate.stop());
  expect(mailgate.policyServer).not.toBeNull();
  return { mailgate, url: `http://${mailgate.policyServer!.host}:${mailgate.policyServer!.port}` };
}

type Options = { clock?: Clock; apiKey?: string; extra?: string };
const keyed = (apiKey?: string) => (apiKey ? { apiKey } : {});

/** mailgate, then a Dovecot of its own asking it (stopped first). */
async function dovecotAsking(config: Record<string, unknown>, opts: Options = {}): Promise<Front & { dovecot: DovecotInstance }> {
  const { mailgate, url } = await policyMailgate(config, keyed(opts.apiKey), opts.clock);
  const dovecot = await startDovecot({ policy: { url: `${url}/dovecot`, ...keyed(opts.apiKey), ...(opts.extra ? { extra: opts.extra } : {}) } });
  onTestFinished(() => dovecot.stop());
  return { mailgate, url, dovecot, port: { imap: dovecot.ports.imap, pop3: dovecot.ports.pop3, smtp: dovecot.ports.submission }, replies: DOVECOT };
}

/** mailgate sending nginx to the file's Dovecot (Auth-Wait capped at 1 s), then an nginx
 *  asking it (stopped first). */
async function nginxAsking(config: Record<string, unknown>, opts: Options = {}): Promise<Front> {
  const { ports } = rig.dovecot;
  const backends = { imap: { host: '127.0.0.1', port: ports.imap }, pop3: { host: '127.0.0.1', port: ports.pop3 }, smtp: { host: '127.0.0.1', port: ports.submission } };
  const policy = { maxWait: '1s', nginx: { imap: 'imap', pop3: 'pop3', smtp: 'smtp' }, ...keyed(opts.apiKey) };
  const { mailgate, url } = await policyMailgate({ ...config, backends }, policy, opts.clock);
  const nginx = await startNginx({ authHttp: `${url}/nginx`, ...keyed(opts.apiKey) });
  onTestFinished(() => nginx.stop());
  return { mailgate, url, port: nginx.ports, replies: NGINX };
}

const attempts = (p: TestProxy) => p.log.lines.filter((l) => l.event === 'auth.attempt');

type Verdict = { verdict: 'ok' | 'fail' } | { verdict: 'limited'; retrySec: number };

/** One login at the front end from `ip`; resolves once mailgate has logged the attempt (with
 *  Dovecot the verdict comes in its report, which may trail the client's answer). `then` runs
 *  on the logged-in connection. */
async function login(f: Front, proto: Proto, ip: string, user: string, pass: string, then?: (c: RawClient) => Promise<unknown>): Promise<Verdict> {
  const before = attempts(f.mailgate).length;
  const c = await greeted(proto, f.port[proto], { localAddress: ip });
  try {
    c.write(loginBytes(proto, user, pass));
    const text = await c.waitFor(ENDED[proto]);
    const refused = f.replies.refused[proto].exec(text);
    const verdict: Verdict = refused ? { verdict: 'limited', retrySec: Number(refused[1]) } : LOGIN_OK[proto].test(text) ? { verdict: 'ok' } : { verdict: 'fail' };
    if (verdict.verdict === 'fail') expect(text).toMatch(f.replies.wrong[proto]);
    if (verdict.verdict === 'ok') await then?.(c);
    await until(() => attempts(f.mailgate).length > before, `mailgate to log the ${proto} login of ${user} from ${ip}`);
    return verdict;
  } finally {
    c.close();
  }
}

const ipFailures = (limit: number, block: string) => ({ name: 'ip-failures', key: 'ip', count: 'failures', limit, window: '10m', block });
const redisStore = (keyPrefix: string) => ({ type: 'redis', redis: { url: store.redis.url, timeout: '250ms', onError: 'deny', keyPrefix } });

describe('Dovecot asks mailgate (memory store, manual clock)', () => {
  it("an attacker guessing alice is refused after ten failures, in mailgate's words; alice still gets in, as a known-good pair", async () => {
    const clock = new ManualClock();
    const f = await dovecotAsking({ limits: { knownGood: { ttl: '14d' }, attackMode: { enabled: false }, rules: [ipFailures(10, '30m')] } }, { clock });
    // Alice and the attacker are in different /24s: her known-good pair covers her network.
    expect(await login(f, 'imap', '127.0.5.5', ...ALICE)).toEqual(OK);
    clock.advance(DAY);
    for (let i = 0; i < 10; i++) expect(await login(f, 'imap', '127.0.9.9', 'alice', `guess-${i}`)).toEqual(FAIL);
    // Even alice's real password is refused from there: the block is the attacker's address.
    expect(await login(f, 'imap', '127.0.9.9', ...ALICE)).toEqual({ verdict: 'limited', retrySec: 1800 });
    expect(await login(f, 'imap', '127.0.5.5', ...ALICE)).toEqual(OK);

    const lines = attempts(f.mailgate);
    expect(lines.map((l) => l.outcome)).toEqual(['ok', ...Array(10).fill('fail'), 'limited', 'ok']);
    expect(lines.every((l) => l.mode === 'dovecot')).toBe(true);
    expect(lines[11]).toMatchObject({ rule: 'ip-failures' });
    expect(lines[0]!.knownGood).toBeUndefined();
    expect(lines[12]).toMatchObject({ knownGood: true });
  });

  it('a successful login is one attempt although Dovecot 2.3 asks allow twice for it', async () => {
    const rules = [{ name: 'ip-logins', key: 'ip', count: 'attempts', limit: 2, window: '1h' }];
    const f = await dovecotAsking({ limits: { attackMode: { enabled: false }, rules } }, { clock: new ManualClock() });
    expect(await login(f, 'imap', '127.0.10.1', ...ALICE)).toEqual(OK);
    // Counted twice, this one would be refused at its first allow, or at its second.
    expect(await login(f, 'imap', '127.0.10.1', 'bob', 'bob-pass')).toEqual(OK);
    expect(await login(f, 'imap', '127.0.10.1', ...ALICE)).toEqual({ verdict: 'limited', retrySec: expect.any(Number) });
    expect(await login(f, 'imap', '127.0.10.2', ...ALICE)).toEqual(OK);
    expect(attempts(f.mailgate).map((l) => l.outcome)).toEqual(['ok', 'ok', 'limited', 'ok']);
  });

  it('POP3 and submission: the refusal reaches the client in its protocol; submission counts as smtp; X-API-Key is checked', async () => {
    const perProtocol = (proto: Proto) => ({ ...ipFailures(2, '10m'), name: `${proto}-failures`, protocols: [proto] });
    const f = await dovecotAsking({ limits: { attackMode: { enabled: false }, rules: [perProtocol('pop3'), perProtocol('smtp')] } }, { clock: new ManualClock(), apiKey: API_KEY });
    for (const [proto, ip] of [['pop3', '127.0.12.1'], ['smtp', '127.0.13.1']] as const) {
      for (const pass of ['guess-1', 'guess-2']) expect(await login(f, proto, ip, 'bob', pass)).toEqual(FAIL);
      expect(await login(f, proto, ip, 'bob', 'bob-pass')).toEqual({ verdict: 'limited', retrySec: 600 });
    }
    // The smtp rule does not cover IMAP.
    expect(await login(f, 'imap', '127.0.13.1', 'bob', 'bob-pass')).toEqual(OK);
    expect(attempts(f.mailgate).filter((l) => l.outcome === 'limited').map((l) => l.rule)).toEqual(['pop3-failures', 'smtp-failures']);

    const body = JSON.stringify({ login: 'bob', pwhash: '0000', remote: '127.0.14.1', device_id: '', protocol: 'imap', session_id: 'no-key', tls: false });
    const post = (headers: Record<string, string>) => fetch(`${f.url}/dovecot?command=allow`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    expect((await post({})).status).toBe(401);
    expect((await post({ 'x-api-key': `${API_KEY}x` })).status).toBe(401);
    expect((await post({ 'x-api-key': API_KEY })).status).toBe(200);
  });

  it("the shipped limits (config/mailgate.yaml): pair-failures refuses bob's sixth try from one address; alice from there gets in", async () => {
    const shipped = parse(readFileSync(new URL('../../config/mailgate.yaml', import.meta.url), 'utf8')) as { limits: Record<string, unknown> };
    const f = await dovecotAsking({ limits: shipped.limits }, { clock: new ManualClock() });
    for (let i = 0; i < 5; i++) expect(await login(f, 'imap', '127.0.20.20', 'bob', `guess-${i}`)).toEqual(FAIL);
    expect(await login(f, 'imap', '127.0.20.20', 'bob', 'bob-pass')).toEqual({ verdict: 'limited', retrySec: 1800 });
    expect(await login(f, 'imap', '127.0.20.20', ...ALICE)).toEqual(OK);
    expect(attempts(f.mailgate).find((l) => l.outcome === 'limited')).toMatchObject({ rule: 'pair-failures' });
  });
});

describe('Dovecot asks mailgate: pwhash at 24 bits (README)', () => {
  it('a stale password retried counts once; the owner gets through the block on her account by the hint; a failure is tarpitted', async () => {
    const rules = [{ name: 'user-failures', key: 'user', count: 'failures', limit: 3, window: '1h', block: '1h', delay: { base: '1s', max: '1s' } }];
    const config = { limits: { passwordHint: { ttl: '30d' }, attackMode: { enabled: false }, rules } };
    const f = await dovecotAsking(config, { clock: new ManualClock(), extra: 'auth_policy_hash_truncate = 24' });
    expect(await login(f, 'imap', '127.0.21.1', ...ALICE)).toEqual(OK);
    for (let i = 0; i < 5; i++) expect(await login(f, 'imap', '127.0.22.1', 'alice', 'stale-pass')).toEqual(FAIL);
    for (const pass of ['guess-1', 'guess-2']) expect(await login(f, 'imap', '127.0.23.1', 'alice', pass)).toEqual(FAIL);
    expect(await login(f, 'imap', '127.0.24.1', 'alice', 'guess-3')).toEqual({ verdict: 'limited', retrySec: 3600 });
    expect(await login(f, 'imap', '127.0.25.1', ...ALICE)).toEqual(OK);
    expect(attempts(f.mailgate).at(-1)).toMatchObject({ outcome: 'ok', hintMatch: true });
    // The tarpit of the last failure reaches Dovecot as a positive status on the client's next allow.
    const tarpits = (await f.dovecot.settledLog()).split('\n').filter((l) => l.includes('Policy check action is tarpit'));
    expect(tarpits.filter((l) => l.includes('policy(alice,127.0.22.1,')).length).toBeGreaterThan(0);
    expect(tarpits.every((l) => / tarpit 1 second\(s\)$/.test(l))).toBe(true);
    expect(tarpits.some((l) => /127\.0\.2[145]\.1/.test(l))).toBe(false);
  });
});

describe('Dovecot asks mailgate (Redis store)', () => {
  it('an attacker is refused after ten failures; alice gets in', async () => {
    const limits = { keySecret: 'policy-dovecot-secret-0123', knownGood: { ttl: '14d' }, attackMode: { enabled: false }, rules: [ipFailures(10, '30m')] };
    const f = await dovecotAsking({ store: redisStore('policy-dovecot:'), limits });
    expect(await login(f, 'imap', '127.0.15.5', ...ALICE)).toEqual(OK);
    for (let i = 0; i < 10; i++) expect(await login(f, 'imap', '127.0.19.9', 'alice', `guess-${i}`)).toEqual(FAIL);
    const refused = await login(f, 'imap', '127.0.19.9', ...ALICE);
    // The block (30 min), not the window (10 min): real time passes meanwhile, so no exact figure.
    expect(refused).toEqual({ verdict: 'limited', retrySec: expect.toSatisfy((s: number) => s > 600 && s <= 1800) });
    expect(await login(f, 'imap', '127.0.15.5', ...ALICE)).toEqual(OK);
    expect(attempts(f.mailgate).map((l) => l.outcome)).toEqual(['ok', ...Array(10).fill('fail'), 'limited', 'ok']);
  });
});

/** GET /nginx as nginx sends it (alice, her password), for the headers of the answer; a
 *  header given as null is left out. */
function askNginx(url: string, proto: Proto, clientIp: string, headers: Record<string, string | null> = {}): Promise<Response> {
  const all = { 'Auth-Method': 'plain', 'Auth-User': 'alice', 'Auth-Pass': 'alice-pass', 'Auth-Protocol': proto, 'Auth-Login-Attempt': '1', 'Client-IP': clientIp, ...headers };
  return fetch(`${url}/nginx`, { headers: Object.fromEntries(Object.entries(all).filter((e): e is [string, string] => e[1] !== null)) });
}

describe('nginx asks mailgate (memory store, manual clock)', () => {
  it('IMAP, POP3 and SMTP logins go through to Dovecot, and the session works after', async () => {
    const f = await nginxAsking({ limits: { attackMode: { enabled: false } } }, { clock: new ManualClock() });
    const command = (line: string, reply: RegExp) => async (c: RawClient) => {
      c.write(`${line}\r\n`);
      await c.waitFor(reply);
    };
    expect(await login(f, 'imap', '127.0.40.1', ...ALICE, command('b SELECT INBOX', /^b OK \[READ-WRITE\]/m))).toEqual(OK);
    expect(await login(f, 'smtp', '127.0.40.1', ...ALICE, command('MAIL FROM:<alice@localhost>', /^250 /m))).toEqual(OK);
    expect(await login(f, 'pop3', '127.0.40.1', ...ALICE, command('STAT', /^\+OK \d+ \d+\r\n/m))).toEqual(OK);
    expect(attempts(f.mailgate).map((l) => l.outcome)).toEqual(['ok', 'ok', 'ok']);
  });

  it('wrong passwords from one client are failures in each protocol; after three, IMAP, POP3 and SMTP are refused for it; another client gets in', async () => {
    const f = await nginxAsking({ limits: { attackMode: { enabled: false }, rules: [ipFailures(3, '10m')] } }, { clock: new ManualClock() });
    const protos = ['imap', 'pop3', 'smtp'] as const;
    for (const proto of protos) expect(await login(f, proto, '127.0.41.1', 'alice', `guess-${proto}`), proto).toEqual(FAIL);
    for (const proto of protos) expect(await login(f, proto, '127.0.41.1', ...ALICE), proto).toEqual({ verdict: 'limited', retrySec: 600 });
    expect(await login(f, 'imap', '127.0.42.1', ...ALICE)).toEqual(OK);
    expect(attempts(f.mailgate).filter((l) => l.outcome === 'limited').map((l) => l.rule)).toEqual(['ip-failures', 'ip-failures', 'ip-failures']);

    // What nginx is told: the real retry time in the text, Auth-Wait capped by maxWait.
    const smtp = await askNginx(f.url, 'smtp', '127.0.41.1');
    expect(smtp.headers.get('auth-status')).toMatch(/^Too many login attempts; try again in 600 seconds\.?$/);
    expect(smtp.headers.get('auth-wait')).toBe('1');
    expect(smtp.headers.get('auth-error-code')).toBe('454 4.7.0');
  });

  it('with apiKey: nginx sends it (auth_http_header) and gets in; a request without it, or with another, is 401', async () => {
    const f = await nginxAsking({ limits: { attackMode: { enabled: false } } }, { clock: new ManualClock(), apiKey: API_KEY });
    expect(await login(f, 'imap', '127.0.43.1', ...ALICE)).toEqual(OK);
    expect((await askNginx(f.url, 'imap', '127.0.43.2')).status).toBe(401);
    expect((await askNginx(f.url, 'imap', '127.0.43.2', { 'X-API-Key': `${API_KEY}x` })).status).toBe(401);
    const ok = await askNginx(f.url, 'imap', '127.0.43.2', { 'X-API-Key': API_KEY });
    expect(ok.status).toBe(200);
    expect([ok.headers.get('auth-status'), ok.headers.get('auth-port')]).toEqual(['OK', String(rig.dovecot.ports.imap)]);
  });
});

describe('nginx asks mailgate (Redis store)', () => {
  it('a login passes; after two failures the client is refused', async () => {
    const limits = { keySecret: 'policy-nginx-secret-0123', attackMode: { enabled: false }, rules: [ipFailures(2, '10m')] };
    const f = await nginxAsking({ store: redisStore('policy-nginx:'), limits });
    expect(await login(f, 'imap', '127.0.45.1', ...ALICE)).toEqual(OK);
    for (let i = 0; i < 2; i++) expect(await login(f, 'imap', '127.0.45.1', 'alice', `guess-${i}`)).toEqual(FAIL);
    expect(await login(f, 'imap', '127.0.45.1', ...ALICE)).toEqual({ verdict: 'limited', retrySec: expect.toSatisfy((s: number) => s > 0 && s <= 600) });
  });
});

describe('malformed requests', () => {
  it('/dovecot: invalid JSON and an oversized body are 400, a well-formed request still 200; /nginx without Auth-User is 400', async () => {
    const { url } = await policyMailgate({}, {});
    const post = (body: string) => fetch(`${url}/dovecot?command=allow`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect((await post('{"login": "alice", ')).status).toBe(400);
    expect((await post(JSON.stringify({ login: 'alice', pwhash: 'a'.repeat(1 << 20) }))).status).toBe(400);
    const good = await post(JSON.stringify({ login: 'alice', pwhash: '04c9', remote: '127.0.16.1', device_id: '', protocol: 'imap', session_id: 'well-formed', tls: false }));
    expect(good.status).toBe(200);
    expect(await good.json()).toMatchObject({ status: 0 });
    expect((await askNginx(url, 'imap', '127.0.46.1', { 'Auth-User': null })).status).toBe(400);
  });
});
