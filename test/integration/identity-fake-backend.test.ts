// forwardClientInfo against scripted fake backends, for what a real Dovecot will not do: a
// server that does not offer ID/XCLIENT must fail the login before any credential is sent;
// Dovecot's POP3 "[XCLIENT]" greeting is honoured. Loopback only.
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { imapBackendLogin } from '../../src/backend/login-imap.js';
import { pop3BackendLogin } from '../../src/backend/login-pop3.js';
import { smtpBackendLogin } from '../../src/backend/login-smtp.js';
import { parseConfig } from '../../src/config/load.js';
import type { BackendLogin } from '../../src/backend/types.js';

/** A scripted fake backend (faults a real Dovecot will not produce): a greeting, then one
 *  canned answer per command line; records what it was sent. */
async function scripted(greeting: string, answer: (line: string) => string) {
  const received: string[] = [];
  const server = net.createServer((sock) => {
    sock.write(greeting);
    let buf = '';
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (let nl = buf.indexOf('\r\n'); nl >= 0; nl = buf.indexOf('\r\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        received.push(line);
        sock.write(answer(line));
      }
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  return { port, received, stop: () => new Promise<void>((r) => server.close(() => r())) };
}

describe('forwardClientInfo against a backend that does not offer it (scripted fake backends)', () => {
  const ctx = { tag: 'a', hostname: 'mx.test', client: { ip: '203.0.113.20', port: 40000, localIp: '127.0.0.1', localPort: 143, sessionId: 'abc1' } };
  const creds = () => ({ mechanism: 'IMAP-LOGIN' as const, user: Buffer.from('alice'), password: Buffer.from('alice-pass') });
  it.each([
    ['imap', imapBackendLogin, '* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] fake\r\n', /^mg1 LOGIN/],
    ['pop3', pop3BackendLogin, '+OK fake\r\n', /^(USER|AUTH|PASS)/],
    ['smtp', smtpBackendLogin, '220 fake ESMTP\r\n', /^AUTH/],
  ] as [string, BackendLogin, string, RegExp][])('%s: the login fails temporarily and no credentials are sent', async (_p, backendLogin, greeting, credentialLine) => {
    const fake = await scripted(greeting, (l) => (l === 'CAPA' ? '+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n' : l.startsWith('EHLO') ? '250-fake\r\n250 AUTH PLAIN\r\n' : '+OK\r\n'));
    const cfg = parseConfig({ listeners: [{ name: 'l', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'b' }], backends: { b: { host: '127.0.0.1', port: fake.port, forwardClientInfo: true } } }).backends.b!;
    const r = await backendLogin(cfg, creds(), ctx);
    expect(r).toMatchObject({ kind: 'unavailable', error: expect.stringMatching(/does not offer (XCLIENT|ID)/) });
    expect(fake.received.filter((l) => credentialLine.test(l))).toEqual([]);
    await fake.stop();
  });

  it('pop3: a Dovecot-style "[XCLIENT]" greeting is enough, and XCLIENT goes before the credentials', async () => {
    const fake = await scripted('+OK [XCLIENT] fake\r\n', (l) => (l === 'CAPA' ? '+OK\r\nUSER\r\n.\r\n' : l === 'QUIT' ? '+OK\r\n' : l.startsWith('PASS') ? '+OK Logged in.\r\n' : '+OK\r\n'));
    const cfg = parseConfig({ listeners: [{ name: 'l', protocol: 'pop3', listen: '127.0.0.1:0', tls: 'none', backend: 'b' }], backends: { b: { host: '127.0.0.1', port: fake.port, forwardClientInfo: true } } }).backends.b!;
    const r = await pop3BackendLogin(cfg, { mechanism: 'USER', user: Buffer.from('alice'), password: Buffer.from('pw') }, ctx);
    expect(r.kind).toBe('ok');
    if (r.kind === 'ok') r.socket.destroy();
    expect(fake.received).toEqual(['CAPA', 'XCLIENT ADDR=203.0.113.20 PORT=40000', 'USER alice', 'PASS pw']);
    await fake.stop();
  });
});
