// POP3 through mailgate against a real Dovecot: login over each listener kind and mechanism,
// RETR byte for byte, STLS injection, TLS required, failures and limits (also shared with IMAP),
// secrets absent from logs. Faults Dovecot will not produce: pop3-fake-backend.test.ts.
import { ImapFlow } from 'imapflow';
import { beforeAll, describe, expect, it } from 'vitest';
import { b64 } from '../helpers/codec.js';
import { DEFAULT_USERS } from '../helpers/dovecot.js';
import type { TestProxy } from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile } from '../helpers/rig.js';
import { until } from '../helpers/until.js';

// A password long enough that the backend AUTH PLAIN line exceeds 255 octets (RFC 5034 §4).
const LONG_PASS = `L${'o'.repeat(228)}ng`;
const USERS = [
  ...DEFAULT_USERS,
  { user: 'carol', pass: 'carol-pass' },
  { user: 'dave', pass: 'dave-pass' },
  { user: 'longpw', pass: LONG_PASS },
  // One POP3 session at a time: a second one gets -ERR [IN-USE] (after Dovecot's 10 s lock wait).
  { user: 'locky', pass: 'locky-pass', extra: 'userdb_pop3_lock_session=yes' },
];
const rig = dovecotForFile({ users: USERS });

const MESSAGE = Buffer.from(
  'From: bob@example.org\r\nTo: alice@example.org\r\nSubject: pop3 through mailgate\r\nMessage-ID: <p1@example.org>\r\n\r\n' +
    'Line one\r\n\u00e9\u00e8 8-bit body \u2713\r\n.\r\n..two dots\r\n.leading dot\r\n' + 'y'.repeat(70_000) + '\r\n',
  'utf8',
);

beforeAll(async () => {
  // Deliver the one message alice's POP3 maildrop holds, straight into Dovecot over IMAP.
  const c = new ImapFlow({
    host: '127.0.0.1', port: rig.dovecot.ports.imap, secure: false, tls: { rejectUnauthorized: false },
    auth: { user: 'alice', pass: 'alice-pass' }, logger: false,
  } as ConstructorParameters<typeof ImapFlow>[0]);
  await c.connect();
  await c.append('INBOX', MESSAGE);
  await c.logout();
});
async function proxyWith(rules: unknown[] = []): Promise<TestProxy> {
  const { dovecot } = rig;
  return rig.proxy({
    listeners: [
      { name: 'pop3', protocol: 'pop3', listen: '127.0.0.1:0', tls: 'starttls', backend: 'plain' },
      { name: 'pop3s', protocol: 'pop3', listen: '127.0.0.1:0', tls: 'implicit', backend: 'plain' },
      { name: 'cleartext', protocol: 'pop3', listen: '127.0.0.1:0', tls: 'none', backend: 'plain' },
      { name: 'to-starttls', protocol: 'pop3', listen: '127.0.0.1:0', tls: 'implicit', backend: 'starttls' },
      { name: 'to-implicit', protocol: 'pop3', listen: '127.0.0.1:0', tls: 'implicit', backend: 'implicit' },
      { name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap' },
    ],
    tls: { cert: dovecot.cert.certPath, key: dovecot.cert.keyPath },
    backends: {
      plain: { host: '127.0.0.1', port: dovecot.ports.pop3 },
      starttls: { host: '127.0.0.1', port: dovecot.ports.pop3, tls: 'starttls', ca: dovecot.cert.certPath, servername: 'localhost' },
      implicit: { host: '127.0.0.1', port: dovecot.ports.pop3s, tls: 'implicit', ca: dovecot.cert.certPath, servername: 'localhost' },
      imap: { host: '127.0.0.1', port: dovecot.ports.imap },
    },
    limits: { rules },
  });
}

async function greeted(port: number, opts: { localAddress?: string; tls?: boolean } = {}): Promise<RawClient> {
  const c = await RawClient.connect(port, opts);
  await c.waitFor(/^\+OK [^\r]*\r\n/);
  return c;
}

/** Send one command and return the reply (a status line, or a whole multi-line response). */
async function cmd(c: RawClient, line: string, until: RegExp = /\r\n/): Promise<string> {
  c.clear();
  c.write(`${line}\r\n`);
  return c.waitFor(until);
}
const MULTI = /\r\n\.\r\n$/;

/** The capability lines of a CAPA response. */
const capaLines = (reply: string) => reply.split('\r\n').slice(1, -2);

/** RETR 1 undone: status line off, terminator off, dot-stuffing removed (RFC 1939 §3). */
function unstuff(reply: string): Buffer {
  const body = reply.slice(reply.indexOf('\r\n') + 2, -'.\r\n'.length);
  return Buffer.from(body.split('\r\n').map((l) => (l.startsWith('.') ? l.slice(1) : l)).join('\r\n'), 'latin1');
}

async function userPass(c: RawClient, user: string, pass: string): Promise<string> {
  expect(await cmd(c, `USER ${user}`)).toMatch(/^\+OK /);
  return cmd(c, `PASS ${pass}`);
}

describe('POP3 through mailgate', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await proxyWith();
  });

  it('STLS, then USER/PASS, then RETR returns the message byte for byte', async () => {
    const c = await greeted(proxy.port('pop3'));
    // TOP UIDL PIPELINING: what Dovecot offers, passed on (the backend serves them after login).
    expect(capaLines(await cmd(c, 'CAPA', MULTI))).toEqual(['CAPA', 'TOP', 'UIDL', 'PIPELINING', 'STLS', 'RESP-CODES', 'AUTH-RESP-CODE']);
    expect(await cmd(c, 'STLS')).toMatch(/^\+OK /);
    await c.startTls();
    expect(capaLines(await cmd(c, 'CAPA', MULTI))).toEqual(['CAPA', 'TOP', 'UIDL', 'PIPELINING', 'USER', 'SASL PLAIN LOGIN', 'RESP-CODES', 'AUTH-RESP-CODE']);
    expect(await userPass(c, 'alice', 'alice-pass')).toMatch(/^\+OK Logged in\.\r\n$/);
    expect(await cmd(c, 'STAT')).toBe(`+OK 1 ${MESSAGE.length}\r\n`);
    const retr = await cmd(c, 'RETR 1', MULTI);
    expect(retr.startsWith(`+OK ${MESSAGE.length} octets\r\n`)).toBe(true);
    expect(Buffer.compare(unstuff(retr), MESSAGE)).toBe(0);
    expect(await cmd(c, 'QUIT')).toMatch(/^\+OK /);
    await c.waitClosed();
  });

  it('implicit TLS with AUTH PLAIN, initial response and continuation', async () => {
    const c = await greeted(proxy.port('pop3s'), { tls: true });
    expect(await cmd(c, `AUTH PLAIN ${b64('\0alice\0alice-pass')}`)).toMatch(/^\+OK Logged in\.\r\n$/);
    expect(await cmd(c, 'STAT')).toMatch(/^\+OK 1 \d+\r\n$/);
    c.close();
    const d = await greeted(proxy.port('pop3s'), { tls: true });
    expect(await cmd(d, 'AUTH PLAIN')).toBe('+ \r\n');
    expect(await cmd(d, b64('\0bob\0bob-pass'))).toMatch(/^\+OK Logged in\.\r\n$/);
    expect(await cmd(d, 'STAT')).toBe('+OK 0 0\r\n');
    d.close();
  });

  it('plain listener without requireTls: USER/PASS and AUTH LOGIN in the clear', async () => {
    const c = await greeted(proxy.port('cleartext'));
    expect(capaLines(await cmd(c, 'CAPA', MULTI))).toEqual(['CAPA', 'TOP', 'UIDL', 'PIPELINING', 'USER', 'SASL PLAIN LOGIN', 'RESP-CODES', 'AUTH-RESP-CODE']);
    expect(await cmd(c, 'AUTH', MULTI)).toMatch(/^\+OK [^\r]*\r\nPLAIN\r\nLOGIN\r\n\.\r\n$/);
    expect(await cmd(c, 'AUTH LOGIN')).toBe(`+ ${b64('Username:')}\r\n`);
    expect(await cmd(c, b64('alice'))).toBe(`+ ${b64('Password:')}\r\n`);
    expect(await cmd(c, b64('alice-pass'))).toMatch(/^\+OK Logged in\.\r\n$/);
    c.close();
    const d = await greeted(proxy.port('cleartext'));
    expect(await userPass(d, 'bob', 'bob-pass')).toMatch(/^\+OK Logged in\.\r\n$/);
    d.close();
  });

  it('replays to backends over STLS and implicit TLS with verified certificates', async () => {
    for (const name of ['to-starttls', 'to-implicit']) {
      const c = await greeted(proxy.port(name), { tls: true });
      expect(await userPass(c, 'alice', 'alice-pass')).toMatch(/^\+OK Logged in\.\r\n$/);
      expect(await cmd(c, 'STAT')).toMatch(/^\+OK 1 \d+\r\n$/);
      c.close();
    }
  });

  it('a login too long for one backend AUTH PLAIN line goes on the continuation line', async () => {
    const c = await greeted(proxy.port('to-starttls'), { tls: true });
    expect(await userPass(c, 'longpw', LONG_PASS)).toMatch(/^\+OK Logged in\.\r\n$/);
    c.close();
  });

  it('commands pipelined behind PASS reach the backend once, after its +OK', async () => {
    const c = await greeted(proxy.port('cleartext'));
    c.clear();
    c.write('USER alice\r\nPASS alice-pass\r\nSTAT\r\nNOOP\r\nQUIT\r\n');
    const text = await c.waitClosed();
    expect(text.split('\r\n')).toEqual(['+OK Send your password.', '+OK Logged in.', expect.stringMatching(/^\+OK 1 \d+$/), '+OK', expect.stringMatching(/^\+OK /), '']);
  });

  it('requireTls: USER, PASS and AUTH before STLS get -ERR without [AUTH] and nothing reaches Dovecot', async () => {
    const c = await greeted(proxy.port('pop3'));
    c.clear();
    c.write(`USER carol\r\nPASS carol-pass\r\nAUTH PLAIN ${b64('\0carol\0carol-pass')}\r\nAUTH LOGIN\r\n`);
    const text = await c.waitFor(/(?:-ERR [^\r]*\r\n){4}/);
    expect(text.split('\r\n').slice(0, 4)).toEqual(Array(4).fill(expect.stringMatching(/^-ERR Plaintext authentication disallowed/)));
    expect(text).not.toContain('[AUTH]');
    c.close();
    expect(proxy.log.lines.filter((l) => l.event === 'auth.attempt' && l.user === 'carol')).toEqual([]);
    expect(await rig.dovecot.settledLog()).not.toMatch(/carol/);
  });

  it('STLS: USER/PASS pipelined after the command is never executed', async () => {
    const c = await greeted(proxy.port('pop3'));
    c.clear();
    c.write('STLS\r\nUSER dave\r\nPASS dave-pass\r\nSTAT\r\n');
    expect(await c.waitFor(/\r\n/)).toMatch(/^\+OK Begin TLS/);
    await c.startTls();
    expect(await cmd(c, 'PASS dave-pass')).toBe('-ERR Send USER first.\r\n');
    expect(await cmd(c, 'STAT')).toBe('-ERR Unknown command.\r\n');
    c.close();
    expect(proxy.log.lines.some((l) => l.event === 'starttls.injection')).toBe(true);
    expect(proxy.log.lines.filter((l) => l.event === 'auth.attempt' && l.user === 'dave')).toEqual([]);
    expect(await rig.dovecot.settledLog()).not.toMatch(/dave/);
  });

  it('STLS inside TLS, twice, or on an implicit listener is -ERR', async () => {
    const c = await greeted(proxy.port('pop3s'), { tls: true });
    expect(await cmd(c, 'STLS')).toMatch(/^-ERR /);
    c.close();
    const d = await greeted(proxy.port('pop3'));
    await cmd(d, 'STLS');
    await d.startTls();
    expect(await cmd(d, 'STLS')).toMatch(/^-ERR /);
    d.close();
  });
});

describe('POP3 limits through mailgate', () => {
  it('a wrong password gets the backend\'s -ERR, a failures rule counts it, then limits without [AUTH]', async () => {
    const proxy = await proxyWith([{ name: 'ip-failures', key: 'ip', count: 'failures', limit: 2, window: '10m' }]);
    const ip = '127.0.9.1';
    const ok = await greeted(proxy.port('cleartext'), { localAddress: ip });
    expect(await userPass(ok, 'alice', 'alice-pass')).toMatch(/^\+OK Logged in/);
    ok.close();
    for (let i = 0; i < 2; i++) {
      const f = await greeted(proxy.port('cleartext'), { localAddress: ip });
      expect(await userPass(f, 'alice', `wrong-pass-${i}`)).toBe('-ERR [AUTH] Authentication failed.\r\n');
      f.close();
    }
    // The rejection came from Dovecot: it saw the wrong password, and the proxy logged "fail".
    expect(await rig.dovecot.settledLog()).toMatch(/alice.*(?:[Pp]assword mismatch|auth failed)/);
    expect(proxy.log.lines.filter((l) => l.event === 'auth.attempt' && l.outcome === 'fail')).toHaveLength(2);
    const after = await greeted(proxy.port('cleartext'), { localAddress: ip });
    await cmd(after, 'USER alice');
    after.clear();
    after.write('PASS alice-pass\r\n');
    const text = await after.waitClosed();
    expect(text).toMatch(/^-ERR \[SYS\/TEMP\] Too many login attempts; try again in \d+ seconds\.\r\n$/);
    expect(proxy.log.lines.find((l) => l.outcome === 'limited')).toMatchObject({ rule: 'ip-failures', ip });
    const other = await greeted(proxy.port('cleartext'), { localAddress: '127.0.9.2' });
    expect(await userPass(other, 'alice', 'alice-pass')).toMatch(/^\+OK Logged in/);
    other.close();
  });

  it('[IN-USE] from Dovecot (right password, mailbox held by another session) reaches the client and is never a failure', { timeout: 60_000 }, async () => {
    const proxy = await proxyWith([{ name: 'ip-failures', key: 'ip', count: 'failures', limit: 1, window: '10m' }]);
    const ip = '127.0.9.5';
    const holder = await greeted(rig.dovecot.ports.pop3);
    expect(await cmd(holder, `AUTH PLAIN ${b64('\0locky\0locky-pass')}`)).toMatch(/^\+OK Logged in/);
    const c = await greeted(proxy.port('cleartext'), { localAddress: ip });
    expect(await cmd(c, 'USER locky')).toMatch(/^\+OK /);
    c.clear();
    c.write('PASS locky-pass\r\n');
    expect(await c.waitFor(/\r\n/, 40_000)).toMatch(/^-ERR \[IN-USE\] /);
    expect(proxy.log.lines.filter((l) => l.event === 'auth.attempt' && l.ip === ip)).toEqual([expect.objectContaining({ outcome: 'locked', user: 'locky' })]);
    expect(await proxy.metrics.registry.metrics()).toMatch(/^mailgate_login_attempts_total\{[^}]*outcome="locked"[^}]*\} 1$/m);
    // Not a failure: with a limit of one failure, the same connection still gets a login.
    holder.close();
    await until(() => /pop3\(locky\)[^\n]*Disconnected: Connection closed/.test(rig.dovecot.readLog()), 'Dovecot to release the lock');
    expect(await userPass(c, 'locky', 'locky-pass')).toMatch(/^\+OK Logged in/);
    c.close();
  });

  it('a rule with protocols: [imap] does not apply to POP3', async () => {
    const proxy = await proxyWith([{ name: 'imap-only', key: 'ip', count: 'attempts', limit: 1, window: '1h', protocols: ['imap'] }]);
    const ip = '127.0.10.1';
    for (let i = 0; i < 3; i++) {
      const c = await greeted(proxy.port('cleartext'), { localAddress: ip });
      expect(await cmd(c, `AUTH PLAIN ${b64('\0bob\0bob-pass')}`)).toMatch(/^\+OK Logged in/);
      c.close();
    }
    const imapLogin = async () => {
      const c = await RawClient.connect(proxy.port('imap'), { localAddress: ip });
      await c.waitFor(/\r\n/);
      c.write('a LOGIN bob bob-pass\r\n');
      const t = await c.waitFor(/a (OK|NO)/);
      c.close();
      return t;
    };
    expect(await imapLogin()).toMatch(/a OK/);
    expect(await imapLogin()).toMatch(/a NO \[UNAVAILABLE\]/);
  });

  it('one counter across protocols: an IMAP and a POP3 login use up an ip limit of 2', async () => {
    const proxy = await proxyWith([{ name: 'ip-logins', key: 'ip', count: 'attempts', limit: 2, window: '1h' }]);
    const ip = '127.0.8.1';
    const imap = await RawClient.connect(proxy.port('imap'), { localAddress: ip });
    await imap.waitFor(/\r\n/);
    imap.write('a LOGIN alice alice-pass\r\n');
    await imap.waitFor(/a OK/);
    imap.close();
    const pop = await greeted(proxy.port('cleartext'), { localAddress: ip });
    expect(await userPass(pop, 'alice', 'alice-pass')).toMatch(/^\+OK Logged in/);
    pop.close();
    const third = await greeted(proxy.port('cleartext'), { localAddress: ip });
    third.clear();
    third.write(`AUTH PLAIN ${b64('\0alice\0alice-pass')}\r\n`);
    const text = await third.waitClosed();
    expect(text).toMatch(/^-ERR \[SYS\/TEMP\] Too many login attempts; try again in \d+ seconds\.\r\n$/);
    expect(text).not.toContain('[AUTH]');
    const imap3 = await RawClient.connect(proxy.port('imap'), { localAddress: ip });
    await imap3.waitFor(/\r\n/);
    imap3.write('b LOGIN alice alice-pass\r\n');
    expect(await imap3.waitClosed()).toMatch(/b NO \[UNAVAILABLE\]/);
  });

  it('no password or SASL token appears in any log line', async () => {
    const secrets = [
      ...USERS.map((u) => u.pass), 'wrong-pass',
      ...USERS.map((u) => b64(`\0${u.user}\0${u.pass}`)), ...USERS.map((u) => b64(u.pass)),
    ];
    expect(rig.proxies.length).toBeGreaterThan(1);
    for (const p of rig.proxies) {
      expect(p.log.raw.length).toBeGreaterThan(0);
      for (const line of p.log.raw) for (const s of secrets) expect(line).not.toContain(s);
    }
  });
});
