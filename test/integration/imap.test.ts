// IMAP through mailgate against a real Dovecot: login over each listener kind, splice byte
// for byte, limits tripping at exactly their limit, failures counted only on backend NO,
// STARTTLS injection, pipelining around LOGIN, limited wording, secrets absent from logs.
import { ImapFlow } from 'imapflow';
import { beforeAll, describe, expect, it } from 'vitest';
import { b64 } from '../helpers/codec.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { dovecotForFile } from '../helpers/rig.js';
import { RawClient } from '../helpers/raw-client.js';

const rig = dovecotForFile();

function config(rules: unknown[] = [], extra: Record<string, unknown> = {}) {
  return {
    listeners: [
      { name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'starttls', backend: 'plain' },
      { name: 'imaps', protocol: 'imap', listen: '127.0.0.1:0', tls: 'implicit', backend: 'plain' },
      { name: 'cleartext', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'plain' },
      { name: 'to-starttls', protocol: 'imap', listen: '127.0.0.1:0', tls: 'implicit', backend: 'starttls' },
      { name: 'to-implicit', protocol: 'imap', listen: '127.0.0.1:0', tls: 'implicit', backend: 'implicit' },
    ],
    tls: { cert: rig.dovecot.cert.certPath, key: rig.dovecot.cert.keyPath },
    backends: {
      plain: { host: '127.0.0.1', port: rig.dovecot.ports.imap, tls: 'none' },
      starttls: { host: '127.0.0.1', port: rig.dovecot.ports.imap, tls: 'starttls', ca: rig.dovecot.cert.certPath, servername: 'localhost' },
      implicit: { host: '127.0.0.1', port: rig.dovecot.ports.imaps, tls: 'implicit', ca: rig.dovecot.cert.certPath, servername: 'localhost' },
    },
    limits: { rules, ...extra },
  };
}

async function proxyWith(rules: unknown[] = [], extra: Record<string, unknown> = {}): Promise<TestProxy> {
  return rig.proxy(config(rules, extra));
}

function flow(port: number, opts: { secure?: boolean; doSTARTTLS?: boolean; user?: string; pass?: string; loginMethod?: string }) {
  return new ImapFlow({
    host: '127.0.0.1',
    port,
    secure: opts.secure ?? false,
    doSTARTTLS: opts.doSTARTTLS,
    tls: { rejectUnauthorized: false },
    auth: { user: opts.user ?? 'alice', pass: opts.pass ?? 'alice-pass', ...(opts.loginMethod ? { loginMethod: opts.loginMethod } : {}) },
    logger: false,
    connectionTimeout: 10_000,
  } as ConstructorParameters<typeof ImapFlow>[0]);
}

const MESSAGE = Buffer.from(
  'From: alice@example.org\r\nTo: bob@example.org\r\nSubject: through mailgate\r\nMessage-ID: <t1@example.org>\r\n\r\n' +
    'Line one\r\n\u00e9\u00e8 8-bit body \u2713\r\n.\r\n..dots\r\n' + 'x'.repeat(70_000) + '\r\n',
  'utf8',
);

describe('IMAP through mailgate', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await proxyWith([]);
  });

  it('logs in over STARTTLS, appends and fetches a message byte for byte', async () => {
    const c = flow(proxy.port('imap'), { doSTARTTLS: true });
    await c.connect();
    expect(c.secureConnection || (c as unknown as { _socket?: { encrypted?: boolean } })._socket?.encrypted).toBeTruthy();
    const { uid } = (await c.append('INBOX', MESSAGE)) as { uid: number };
    await c.mailboxOpen('INBOX');
    const msg = await c.fetchOne(String(uid), { source: true }, { uid: true });
    expect(Buffer.compare((msg as { source: Buffer }).source, MESSAGE)).toBe(0);
    await c.logout();
  });

  it('logs in over implicit TLS with AUTHENTICATE PLAIN', async () => {
    const c = flow(proxy.port('imaps'), { secure: true, loginMethod: 'AUTH=PLAIN' });
    await c.connect();
    const status = await c.status('INBOX', { messages: true });
    expect(status && status.messages).toBeGreaterThanOrEqual(1);
    await c.logout();
  });

  it('logs in over AUTHENTICATE LOGIN', async () => {
    const c = flow(proxy.port('imaps'), { secure: true, loginMethod: 'AUTH=LOGIN' });
    await c.connect();
    await c.logout();
  });

  it('replays to backends over STARTTLS and implicit TLS with verified certificates', async () => {
    for (const name of ['to-starttls', 'to-implicit']) {
      const c = flow(proxy.port(name), { secure: true });
      await c.connect();
      await c.noop();
      await c.logout();
    }
  });

  it('requireTls: before STARTTLS, LOGINDISABLED and no AUTH=, and LOGIN never reaches the backend', async () => {
    const raw = await RawClient.connect(proxy.port('imap'));
    const greeting = await raw.waitFor(/\r\n/);
    expect(greeting).toMatch(/^\* OK \[CAPABILITY [^\]]*STARTTLS[^\]]*LOGINDISABLED/);
    expect(greeting).not.toMatch(/AUTH=/);
    raw.write('a LOGIN bob bob-pass\r\nb AUTHENTICATE PLAIN AGJvYgBib2ItcGFzcw==\r\n');
    await raw.waitFor(/b NO \[PRIVACYREQUIRED\]/);
    expect(raw.received).toMatch(/a NO \[PRIVACYREQUIRED\]/);
    raw.close();
    expect(proxy.log.lines.filter((l) => l.event === 'auth.attempt' && l.user === 'bob')).toHaveLength(0);
    expect(await rig.dovecot.settledLog()).not.toMatch(/user=<bob>/);
  });

  it('STARTTLS: plaintext pipelined after the command is never executed', async () => {
    const raw = await RawClient.connect(proxy.port('imap'));
    await raw.waitFor(/\r\n/);
    raw.write('a STARTTLS\r\nb LOGIN alice alice-pass\r\nc CAPABILITY\r\n');
    await raw.waitFor(/a OK/);
    await raw.startTls();
    raw.write('d NOOP\r\n');
    const text = await raw.waitFor(/d OK/);
    expect(text).not.toMatch(/^b |^c /m);
    expect(text.startsWith('d OK')).toBe(true);
    raw.write('e CAPABILITY\r\n');
    await raw.waitFor(/e OK/);
    expect(raw.received).toMatch(/AUTH=PLAIN/);
    expect(raw.received).not.toMatch(/STARTTLS|LOGINDISABLED/);
    raw.close();
    expect(proxy.log.lines.some((l) => l.event === 'starttls.injection')).toBe(true);
  });

  it('STARTTLS twice, inside TLS or on an implicit listener gets BAD', async () => {
    const raw = await RawClient.connect(proxy.port('imaps'), { tls: true });
    await raw.waitFor(/\r\n/);
    raw.write('a STARTTLS\r\n');
    await raw.waitFor(/a BAD/);
    raw.close();
  });

  it('commands pipelined behind LOGIN reach the backend once, after the OK', async () => {
    const raw = await RawClient.connect(proxy.port('cleartext'));
    await raw.waitFor(/\r\n/);
    raw.write('a LOGIN alice alice-pass\r\nb SELECT INBOX\r\nc NOOP\r\nd LOGOUT\r\n');
    const text = await raw.waitFor(/d OK/);
    expect(text).toMatch(/a OK \[CAPABILITY [^\]]+\] Logged in/);
    expect(text.match(/^b OK/gm)).toHaveLength(1);
    expect(text.match(/^c OK/gm)).toHaveLength(1);
    expect(text.indexOf('a OK')).toBeLessThan(text.indexOf('b OK'));
  });

  it('after a failed LOGIN, pipelined commands are handled by the proxy, never forwarded', async () => {
    const raw = await RawClient.connect(proxy.port('cleartext'));
    await raw.waitFor(/\r\n/);
    raw.write('a LOGIN alice wrong\r\nb SELECT INBOX\r\nc LOGIN alice alice-pass\r\nd SELECT INBOX\r\n');
    const text = await raw.waitFor(/d OK/);
    expect(text).toMatch(/a NO \[AUTHENTICATIONFAILED\]/);
    expect(text).toMatch(/b BAD/);
    expect(text).toMatch(/c OK/);
    raw.close();
  });
});

describe('limits through mailgate', () => {
  it('with limit 3 on an ip rule the fourth login from one IP gets NO [UNAVAILABLE] while another IP logs in', async () => {
    const proxy = await proxyWith([{ name: 'ip-logins', key: 'ip', count: 'attempts', limit: 3, window: '1h' }]);
    for (let i = 0; i < 3; i++) {
      const raw = await RawClient.connect(proxy.port('cleartext'), { localAddress: '127.0.3.1' });
      await raw.waitFor(/\r\n/);
      raw.write(`a${i} LOGIN alice alice-pass\r\n`);
      await raw.waitFor(new RegExp(`a${i} OK`));
      raw.close();
    }
    const raw = await RawClient.connect(proxy.port('cleartext'), { localAddress: '127.0.3.1' });
    await raw.waitFor(/\r\n/);
    raw.write('x LOGIN alice alice-pass\r\n');
    const text = await raw.waitClosed();
    expect(text).toMatch(/x NO \[UNAVAILABLE\] Too many login attempts; try again in \d+ seconds\./);
    expect(text).not.toMatch(/AUTHENTICATIONFAILED/);
    const other = await RawClient.connect(proxy.port('cleartext'), { localAddress: '127.0.3.2' });
    await other.waitFor(/\r\n/);
    other.write('y LOGIN alice alice-pass\r\n');
    await other.waitFor(/y OK/);
    other.close();
    const limited = proxy.log.lines.find((l) => l.event === 'auth.attempt' && l.outcome === 'limited');
    expect(limited).toMatchObject({ rule: 'ip-logins', count: 3, ip: '127.0.3.1' });
  });

  it('a user rule trips at exactly its limit across IPs', async () => {
    const proxy = await proxyWith([{ name: 'user-logins', key: 'user', count: 'attempts', limit: 2, window: '1h' }]);
    const login = async (ip: string, user: string) => {
      const c = await RawClient.connect(proxy.port('cleartext'), { localAddress: ip });
      await c.waitFor(/\r\n/);
      c.write(`t LOGIN ${user} bob-pass\r\n`);
      const t = await c.waitFor(/t (OK|NO)/);
      c.close();
      return t;
    };
    expect(await login('127.0.4.1', 'bob')).toMatch(/t OK/);
    expect(await login('127.0.4.2', 'BOB')).toMatch(/t OK/);
    expect(await login('127.0.4.3', 'Bob')).toMatch(/t NO \[UNAVAILABLE\]/);
  });

  it('failures are counted only on backend NO, and unavailable backends are not the user\'s failure', async () => {
    const proxy = await proxyWith([{ name: 'ip-failures', key: 'ip', count: 'failures', limit: 2, window: '10m', block: '30m' }]);
    // Three successful logins (more than the limit) do not count toward a failures rule.
    for (let i = 0; i < 3; i++) {
      const c = await RawClient.connect(proxy.port('cleartext'), { localAddress: '127.0.5.1' });
      await c.waitFor(/\r\n/);
      c.write(`ok${i} LOGIN alice alice-pass\r\n`);
      await c.waitFor(new RegExp(`ok${i} OK`));
      c.close();
    }
    for (let i = 0; i < 2; i++) {
      const f = await RawClient.connect(proxy.port('cleartext'), { localAddress: '127.0.5.1' });
      await f.waitFor(/\r\n/);
      f.write(`f${i} LOGIN alice wrong-pass-${i}\r\n`); // distinct: the same one twice counts once
      await f.waitFor(new RegExp(`f${i} NO \\[AUTHENTICATIONFAILED\\]`));
      f.close();
    }
    const after = await RawClient.connect(proxy.port('cleartext'), { localAddress: '127.0.5.1' });
    await after.waitFor(/\r\n/);
    after.write('z LOGIN alice alice-pass\r\n');
    // Blocked by the failures rule: turned away at connect with BYE, before any LOGIN.
    expect(await after.waitClosed()).toMatch(/^\* BYE \[UNAVAILABLE\] Too many login attempts; try again in \d+ seconds\./m);
  });

  it('a dead backend gives NO [UNAVAILABLE] and does not count as a failure', async () => {
    const cfg = config([{ name: 'ip-failures', key: 'ip', count: 'failures', limit: 1, window: '10m' }]);
    (cfg.backends.plain as { port: number }).port = 1; // nothing listens on port 1 here
    const proxy = await rig.proxy(cfg);
    const c = await RawClient.connect(proxy.port('cleartext'));
    await c.waitFor(/\r\n/);
    for (let i = 0; i < 3; i++) {
      c.write(`u${i} LOGIN alice alice-pass\r\n`);
      await c.waitFor(new RegExp(`u${i} NO \\[UNAVAILABLE\\] Mail server temporarily unavailable`));
    }
    c.close();
    expect(proxy.log.lines.filter((l) => l.outcome === 'backend-error')).toHaveLength(3);
  });

  it('no password or SASL token appears in any log line', async () => {
    const secrets = ['alice-pass', 'bob-pass', 'wrong-pass', b64('\0alice\0alice-pass'), b64('alice-pass')];
    expect(rig.proxies.length).toBeGreaterThan(0);
    for (const p of rig.proxies) {
      for (const line of p.log.raw) for (const s of secrets) expect(line).not.toContain(s);
    }
  });
});
