// SMTP submission through mailgate against a real Dovecot submission service relaying to a
// real SMTP sink: AUTH over each listener kind, mail sent through the splice unchanged, the
// client's EHLO name and address in the relayed Received:, EHLO that mirrors the backend,
// STARTTLS rules, temporary failures, counters shared with IMAP.
import nodemailer from 'nodemailer';
import { beforeAll, describe, expect, it } from 'vitest';
import { b64 } from '../helpers/codec.js';
import type { TestProxy } from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile } from '../helpers/rig.js';

const rig = dovecotForFile({ sink: true });

async function proxyWith(rules: unknown[] = [], backendPort?: number): Promise<TestProxy> {
  const { dovecot } = rig;
  return rig.proxy({
    listeners: [
      { name: 'submission', protocol: 'smtp', listen: '127.0.0.1:0', tls: 'starttls', backend: 'submission', hostname: 'mx.test' },
      { name: 'submissions', protocol: 'smtp', listen: '127.0.0.1:0', tls: 'implicit', backend: 'submission', hostname: 'mx.test' },
      { name: 'cleartext', protocol: 'smtp', listen: '127.0.0.1:0', tls: 'none', backend: 'submission', hostname: 'mx.test' },
      { name: 'to-starttls', protocol: 'smtp', listen: '127.0.0.1:0', tls: 'implicit', backend: 'starttls', hostname: 'mx.test' },
      { name: 'to-implicit', protocol: 'smtp', listen: '127.0.0.1:0', tls: 'implicit', backend: 'implicit', hostname: 'mx.test' },
      { name: 'untold', protocol: 'smtp', listen: '127.0.0.1:0', tls: 'implicit', backend: 'untold', hostname: 'mx.test' },
      { name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap' },
    ],
    tls: { cert: dovecot.cert.certPath, key: dovecot.cert.keyPath },
    backends: {
      submission: { host: '127.0.0.1', port: backendPort ?? dovecot.ports.submission },
      starttls: { host: '127.0.0.1', port: dovecot.ports.submission, tls: 'starttls', ca: dovecot.cert.certPath, servername: 'localhost' },
      implicit: { host: '127.0.0.1', port: dovecot.ports.submissions, tls: 'implicit', ca: dovecot.cert.certPath, servername: 'localhost' },
      imap: { host: '127.0.0.1', port: dovecot.ports.imap },
      untold: { host: '127.0.0.1', port: dovecot.ports.submission, forwardClientInfo: false },
    },
    limits: { rules },
  });
}

function transport(port: number, opts: { secure?: boolean; requireTLS?: boolean; user?: string; pass?: string; method?: string; localAddress?: string; name?: string } = {}) {
  return nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    secure: opts.secure ?? false,
    requireTLS: opts.requireTLS ?? !opts.secure,
    tls: { rejectUnauthorized: false },
    auth: { user: opts.user ?? 'alice', pass: opts.pass ?? 'alice-pass', ...(opts.method ? { method: opts.method } : {}) },
    name: opts.name ?? 'client.test',
  });
}

/** EHLO keywords from a reply: the lines after the first, without "250-". */
function keywordsOf(reply: string): string[] {
  return reply.split('\r\n').filter((l) => /^250[- ]/.test(l)).slice(1).map((l) => l.slice(4));
}

async function greeted(port: number, opts: { localAddress?: string; tls?: boolean } = {}): Promise<RawClient> {
  const c = await RawClient.connect(port, opts);
  await c.waitFor(/^220 .*\r\n/m);
  return c;
}

describe('SMTP submission through mailgate', () => {
  let proxy: TestProxy;
  beforeAll(async () => {
    proxy = await proxyWith();
  });

  it('sends a message over STARTTLS with AUTH PLAIN; the relay gets it byte for byte', async () => {
    const body = `Line one\r\n.leading dot\r\n..two dots\r\n${'z'.repeat(5000)}\r\n`;
    const info = await transport(proxy.port('submission')).sendMail({
      from: 'alice@example.org', to: 'bob@example.org', subject: 'through mailgate', text: body, messageId: '<s1@example.org>',
    });
    expect(info.accepted).toEqual(['bob@example.org']);
    const got = rig.sink.messages.find((m) => m.raw.toString().includes('<s1@example.org>'));
    expect(got?.to).toEqual(['bob@example.org']);
    expect(got!.raw.toString()).toContain('\r\n.leading dot\r\n..two dots\r\n');
  });

  it('sends over implicit TLS with AUTH LOGIN, and to backends over STARTTLS and implicit TLS', async () => {
    for (const name of ['submissions', 'to-starttls', 'to-implicit']) {
      const info = await transport(proxy.port(name), { secure: true, method: 'LOGIN' }).sendMail({
        from: 'alice@example.org', to: 'carol@example.org', subject: name, text: 'hi', messageId: `<${name}@example.org>`,
      });
      expect(info.accepted).toEqual(['carol@example.org']);
    }
  });

  it("the relayed message's Received: names the client's machine (its EHLO) and address, not mailgate (forwardClientInfo: auto)", async () => {
    const received = async (listener: string, localAddress: string, name: string) => {
      const messageId = `<received-${listener}@example.org>`;
      await transport(proxy.port(listener), { secure: listener !== 'submission', localAddress, name }).sendMail({
        from: 'alice@example.org', to: 'bob@example.org', subject: 'who sent this', text: 'hi', messageId,
      });
      const raw = rig.sink.messages.find((m) => m.raw.toString().includes(messageId))!.raw.toString();
      return /^Received: from [^\r]*/m.exec(raw)?.[0];
    };
    // The default: Dovecot offers XCLIENT to mailgate (login_trusted_networks); mailgate tells
    // it the client's address, and its EHLO name in XCLIENT HELO= and in its own EHLO.
    expect(await received('submission', '127.0.62.7', 'laptop.client.test')).toBe('Received: from laptop.client.test ([127.0.62.7])');
    // forwardClientInfo: false is what Dovecot recorded before: mailgate's name and address.
    expect(await received('untold', '127.0.62.8', 'laptop.client.test')).toBe('Received: from mx.test ([127.0.0.1])');
  });

  it('EHLO before TLS offers STARTTLS and no AUTH; after TLS AUTH and no STARTTLS; keywords mirror the backend', async () => {
    const mark = await rig.dovecot.logMark();
    const c = await greeted(proxy.port('submission'));
    c.write('EHLO client.test\r\n');
    const before = await c.waitFor(/^250 .*\r\n/m);
    expect(before).toMatch(/^250[- ]STARTTLS\r?$/m);
    expect(before).not.toMatch(/AUTH/);
    // Exactly what Dovecot itself advertises, within the keywords we pass on.
    const direct = await greeted(rig.dovecot.ports.submission);
    direct.write('EHLO client.test\r\n');
    const theirs = keywordsOf(await direct.waitFor(/^250 .*\r\n/m));
    direct.close();
    const passed = ['PIPELINING', 'SIZE', '8BITMIME', 'SMTPUTF8', 'CHUNKING', 'ENHANCEDSTATUSCODES', 'DSN'];
    expect(theirs).toContain('PIPELINING'); // the comparison means something
    expect(keywordsOf(before).filter((k) => k !== 'STARTTLS').sort()).toEqual(theirs.filter((k) => passed.includes(k.split(' ')[0]!)).sort());
    expect(before).not.toMatch(/BURL|VRFY|XCLIENT/);
    c.write('AUTH PLAIN AGFsaWNlAGFsaWNlLXBhc3M=\r\n');
    await c.waitFor(/^530 5\.7\.0 /m);
    c.write('STARTTLS\r\n');
    await c.waitFor(/^220 2\.0\.0/m);
    await c.startTls();
    c.write('AUTH PLAIN AGFsaWNlAGFsaWNlLXBhc3M=\r\n');
    await c.waitFor(/^503 5\.5\.1 Send EHLO first/m); // nothing learned before TLS survives
    c.write('EHLO client.test\r\n');
    const after = await c.waitFor(/^250 .*\r\n/m);
    expect(after).toMatch(/^250[- ]AUTH PLAIN LOGIN/m);
    expect(after).not.toMatch(/STARTTLS/);
    c.close();
    expect(await rig.dovecot.settledLog(mark)).not.toMatch(/Login: user=<alice>/); // the refused AUTH never reached the backend
  });

  it('STARTTLS: plaintext pipelined after the command is never executed', async () => {
    const c = await greeted(proxy.port('submission'));
    c.write('EHLO client.test\r\nSTARTTLS\r\nEHLO evil\r\nAUTH PLAIN AGFsaWNlAGFsaWNlLXBhc3M=\r\n');
    await c.waitFor(/^220 2\.0\.0/m);
    await c.startTls();
    c.write('NOOP\r\n');
    const text = await c.waitFor(/^250 2\.0\.0 OK\r\n/m);
    expect(text).toBe('250 2.0.0 OK\r\n');
    c.close();
    expect(proxy.log.lines.some((l) => l.event === 'starttls.injection')).toBe(true);
  });

  it('MAIL, RCPT and DATA before AUTH get 530; XCLIENT is unknown; * cancel and bad base64 get 501', async () => {
    const c = await greeted(proxy.port('submissions'), { tls: true });
    c.write('EHLO client.test\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nXCLIENT ADDR=1.2.3.4\r\nAUTH PLAIN\r\n');
    await c.waitFor(/^334 /m);
    c.write('*\r\nAUTH PLAIN !!!!\r\nAUTH CRAM-MD5\r\nQUIT\r\n');
    const text = await c.waitClosed();
    expect(text.match(/^530 5\.7\.0 Authentication required/gm)).toHaveLength(3);
    expect(text).toMatch(/^500 5\.5\.2 /m);
    expect(text).toMatch(/^501 5\.0\.0 Authentication cancelled/m);
    expect(text).toMatch(/^501 5\.5\.2 Cannot decode response/m);
    expect(text).toMatch(/^504 5\.5\.4 /m);
    expect(text).toMatch(/^221 2\.0\.0 /m);
  });

  it('a wrong password gets the backend\'s 535 and the client may try again on the connection', async () => {
    const c = await greeted(proxy.port('cleartext'));
    c.write(`EHLO client.test\r\nAUTH PLAIN ${b64('\0alice\0nope')}\r\n`);
    await c.waitFor(/^535 /m);
    c.write(`AUTH PLAIN ${b64('\0alice\0alice-pass')}\r\n`);
    await c.waitFor(/^235 /m);
    c.write('MAIL FROM:<alice@example.org>\r\n');
    await c.waitFor(/^250 2\.1\.0/m); // the backend answers: spliced
    c.write('QUIT\r\n');
    await c.waitClosed();
  });
});

describe('SMTP pipelining around AUTH', () => {
  it('after a failed AUTH pipelined commands are the proxy\'s; after a good one they reach the backend once', async () => {
    const proxy = await proxyWith();
    const c = await greeted(proxy.port('cleartext'));
    const bad = b64('\0alice\0nope');
    const good = b64('\0alice\0alice-pass');
    c.write(`EHLO client.test\r\nAUTH PLAIN ${bad}\r\nMAIL FROM:<alice@example.org>\r\n`);
    await c.waitFor(/^530 5\.7\.0 Authentication required/m);
    expect(c.received).toMatch(/^535 [^\r]*\r\n530 /m);
    c.clear();
    c.write(`AUTH PLAIN ${good}\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\n`);
    const text = await c.waitFor(/^250 2\.1\.0 [^\r]*\r\n250 /m); // MAIL and RCPT answered by Dovecot
    expect(text.match(/^235 /gm)).toHaveLength(1);
    expect(text.match(/^250 2\.1\.0 /gm)).toHaveLength(1);
    expect(text.indexOf('235 ')).toBeLessThan(text.indexOf('250 2.1.0'));
    c.write('QUIT\r\n');
    await c.waitClosed();
  });
});

describe('SMTP limits', () => {
  it('a limited login gets 454 4.7.0 with the retry time, then 421, never 535', async () => {
    const proxy = await proxyWith([{ name: 'ip-logins', key: 'ip', count: 'attempts', limit: 1, window: '1h' }]);
    const ok = await greeted(proxy.port('cleartext'), { localAddress: '127.0.9.1' });
    ok.write(`EHLO x\r\nAUTH PLAIN ${b64('\0alice\0alice-pass')}\r\n`);
    await ok.waitFor(/^235 /m);
    ok.close();
    const c = await greeted(proxy.port('cleartext'), { localAddress: '127.0.9.1' });
    c.write(`EHLO x\r\nAUTH PLAIN ${b64('\0alice\0alice-pass')}\r\n`);
    const text = await c.waitClosed();
    expect(text).toMatch(/^454 4\.7\.0 Too many login attempts; try again in \d+ seconds\r\n421 4\.7\.0 /m);
    expect(text).not.toMatch(/^535/m);
  });

  it('one counter per IP across protocols: an IMAP login and an SMTP login add up', async () => {
    const proxy = await proxyWith([{ name: 'ip-logins', key: 'ip', count: 'attempts', limit: 2, window: '1h' }]);
    const i = await RawClient.connect(proxy.port('imap'), { localAddress: '127.0.9.2' });
    await i.waitFor(/\r\n/);
    i.write('a LOGIN alice alice-pass\r\n');
    await i.waitFor(/a OK/);
    i.close();
    const s = await greeted(proxy.port('cleartext'), { localAddress: '127.0.9.2' });
    s.write(`EHLO x\r\nAUTH PLAIN ${b64('\0bob\0bob-pass')}\r\n`);
    await s.waitFor(/^235 /m);
    s.close();
    const third = await RawClient.connect(proxy.port('imap'), { localAddress: '127.0.9.2' });
    await third.waitFor(/\r\n/);
    third.write('b LOGIN bob bob-pass\r\n');
    expect(await third.waitClosed()).toMatch(/b NO \[UNAVAILABLE\]/);
  });

  it('a rule limited to imap does not apply to SMTP', async () => {
    const proxy = await proxyWith([{ name: 'imap-only', key: 'ip', count: 'attempts', limit: 1, window: '1h', protocols: ['imap'] }]);
    for (let n = 0; n < 3; n++) {
      const s = await greeted(proxy.port('cleartext'), { localAddress: '127.0.9.3' });
      s.write(`EHLO x\r\nAUTH PLAIN ${b64('\0bob\0bob-pass')}\r\n`);
      await s.waitFor(/^235 /m);
      s.close();
    }
  });

  it('a dead backend gives 454 4.7.0 and the connection stays usable', async () => {
    const proxy = await proxyWith([], 1);
    const c = await greeted(proxy.port('cleartext'));
    c.write(`EHLO x\r\nAUTH PLAIN ${b64('\0alice\0alice-pass')}\r\n`);
    await c.waitFor(/^454 4\.7\.0 Temporary authentication failure/m);
    c.write('NOOP\r\n');
    await c.waitFor(/^250 2\.0\.0 OK/m);
    c.close();
  });

  it('no password or SASL token in any log line', () => {
    const secrets = ['alice-pass', 'bob-pass', b64('\0alice\0alice-pass'), b64('alice-pass')];
    for (const p of rig.proxies) for (const line of p.log.raw) for (const s of secrets) expect(line).not.toContain(s);
  });
});
