// POP3 and SMTP through the same gate as IMAP, walked as a user would: the compiled CLI with
// all six listener kinds in front of a real Dovecot whose submission relays to a real SMTP
// sink; POP3 over STLS and implicit TLS, SMTP over STARTTLS and implicit TLS, and one IP
// counter shared by IMAP, POP3 and SMTP.
import nodemailer from 'nodemailer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, spawnProxy, type BuiltCli, type RunningProxy } from '../helpers/cli.js';
import { b64 } from '../helpers/codec.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile } from '../helpers/rig.js';

const rig = dovecotForFile({ sink: true });
let built: BuiltCli;
let proxy: RunningProxy;

beforeAll(async () => {
  built = buildCli();
  const { dovecot } = rig;
  const listeners = [
    ['imap', 'imap', 'starttls', 'imap'],
    ['imaps', 'imap', 'implicit', 'imap'],
    ['pop3', 'pop3', 'starttls', 'pop3'],
    ['pop3s', 'pop3', 'implicit', 'pop3'],
    ['submission', 'smtp', 'starttls', 'submission'],
    ['submissions', 'smtp', 'implicit', 'submission'],
  ].map(([name, protocol, tls, backend]) => `  - {name: ${name}, protocol: ${protocol}, listen: "127.0.0.1:0", tls: ${tls}, backend: ${backend}}`);
  const config = built.writeConfig('protocols.yaml', [
    'listeners:',
    ...listeners,
    `tls: {cert: ${dovecot.cert.certPath}, key: ${dovecot.cert.keyPath}}`,
    'backends:',
    `  imap: {host: 127.0.0.1, port: ${dovecot.ports.imap}}`,
    `  pop3: {host: 127.0.0.1, port: ${dovecot.ports.pop3}}`,
    `  submission: {host: 127.0.0.1, port: ${dovecot.ports.submission}}`,
    'limits:',
    '  rules:',
    '    - {name: ip-logins, key: ip, count: attempts, limit: 3, window: 1h}',
  ].join('\n'));
  proxy = await spawnProxy(built.cli, config);
}, 120_000);
afterAll(async () => {
  await proxy?.signal('SIGTERM');
  built?.remove();
});

/** POP3 login and RETR of message 1 over STLS or implicit TLS; returns the message. */
async function pop3Fetch(port: number, implicit: boolean, ip: string): Promise<string> {
  const c = await RawClient.connect(port, { tls: implicit, localAddress: ip });
  await c.waitFor(/^\+OK.*\r\n/m);
  if (!implicit) {
    c.write('STLS\r\n');
    await c.waitFor(/^\+OK Begin TLS/m);
    await c.startTls();
  }
  c.write('USER alice\r\nPASS alice-pass\r\n');
  await c.waitFor(/^\+OK Logged in/m);
  c.clear();
  c.write('RETR 1\r\n');
  const text = await c.waitFor(/\r\n\.\r\n/);
  c.write('QUIT\r\n');
  c.close();
  return text;
}

function smtp(port: number, secure: boolean, ip: string) {
  return nodemailer.createTransport({ host: '127.0.0.1', port, secure, requireTLS: !secure, localAddress: ip, tls: { rejectUnauthorized: false }, auth: { user: 'alice', pass: 'alice-pass' } });
}

describe('POP3 and SMTP through mailgate', () => {
  it('sends over 587-style STARTTLS and 465-style implicit TLS; the messages arrive', async () => {
    for (const [name, secure, ip] of [['submission', false, '127.0.13.1'], ['submissions', true, '127.0.13.2']] as const) {
      const info = await smtp(proxy.ports[name]!, secure, ip).sendMail({ from: 'alice@example.org', to: 'alice@example.org', subject: name, text: `via ${name}`, messageId: `<${name}@walk>` });
      expect(info.accepted).toEqual(['alice@example.org']);
    }
    expect(rig.sink.messages.map((m) => /Message-ID: <([^>]+)>/i.exec(m.raw.toString())?.[1])).toEqual(expect.arrayContaining(['submission@walk', 'submissions@walk']));
  });

  it('fetches over POP3 with STLS and over implicit TLS', async () => {
    // Put a message in alice's mailbox through IMAP (via mailgate too).
    const c = await RawClient.connect(proxy.ports.imaps!, { tls: true, localAddress: '127.0.13.3' });
    await c.waitFor(/\r\n/);
    const msg = 'Subject: for pop3\r\n\r\nhello pop3\r\n';
    c.write(`a LOGIN alice alice-pass\r\nb APPEND INBOX {${msg.length}+}\r\n${msg}\r\nc LOGOUT\r\n`);
    await c.waitFor(/^b OK/m);
    c.close();
    expect(await pop3Fetch(proxy.ports.pop3!, false, '127.0.13.4')).toContain('hello pop3');
    expect(await pop3Fetch(proxy.ports.pop3s!, true, '127.0.13.5')).toContain('hello pop3');
  });

  it('one IP: IMAP, POP3 and SMTP logins exhaust limit 3; the fourth gets each protocol\'s temporary failure', async () => {
    const ip = '127.0.14.1';
    const imap = await RawClient.connect(proxy.ports.imaps!, { tls: true, localAddress: ip });
    await imap.waitFor(/\r\n/);
    imap.write('a LOGIN alice alice-pass\r\n');
    await imap.waitFor(/^a OK/m);
    imap.close();
    await pop3Fetch(proxy.ports.pop3s!, true, ip);
    await smtp(proxy.ports.submissions!, true, ip).verify();

    const i = await RawClient.connect(proxy.ports.imaps!, { tls: true, localAddress: ip });
    await i.waitFor(/\r\n/);
    i.write('x LOGIN alice alice-pass\r\n');
    expect(await i.waitClosed()).toMatch(/^x NO \[UNAVAILABLE\] Too many login attempts/m);

    const p = await RawClient.connect(proxy.ports.pop3s!, { tls: true, localAddress: ip });
    await p.waitFor(/\r\n/);
    p.write('USER alice\r\nPASS alice-pass\r\n');
    const pt = await p.waitClosed();
    expect(pt).toMatch(/^-ERR \[SYS\/TEMP\] Too many login attempts/m);
    expect(pt).not.toMatch(/\[AUTH\]/);

    const s = await RawClient.connect(proxy.ports.submissions!, { tls: true, localAddress: ip });
    await s.waitFor(/^220 /m);
    s.write(`EHLO x\r\nAUTH PLAIN ${b64('\0alice\0alice-pass')}\r\n`);
    const st = await s.waitClosed();
    expect(st).toMatch(/^454 4\.7\.0 Too many login attempts; try again in \d+ seconds\r\n421 /m);
  });
});
