// forwardClientInfo against scripted fake backends, for what a real Dovecot will not do: a
// server that does not offer ID/XCLIENT must fail the login before any credential is sent;
// Dovecot's POP3 "[XCLIENT]" greeting is honoured. Loopback only.
import { describe, expect, it } from 'vitest';
import { imapBackendLogin } from '../../src/backend/login-imap.js';
import { pop3BackendLogin } from '../../src/backend/login-pop3.js';
import { smtpBackendLogin } from '../../src/backend/login-smtp.js';
import type { BackendLogin } from '../../src/backend/types.js';
import { parseBackend } from '../helpers/backend-config.js';
import { startFakeBackend } from '../helpers/fake-backend.js';

describe('forwardClientInfo against a backend that does not offer it (scripted fake backends)', () => {
  const ctx = { tag: 'a', hostname: 'mx.test', client: { ip: '203.0.113.20', port: 40000, localIp: '127.0.0.1', localPort: 143, sessionId: 'abc1' } };
  const creds = () => ({ mechanism: 'IMAP-LOGIN' as const, user: Buffer.from('alice'), password: Buffer.from('alice-pass') });
  it.each([
    ['imap', imapBackendLogin, '* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] fake\r\n', /^mg1 LOGIN/],
    ['pop3', pop3BackendLogin, '+OK fake\r\n', /^(USER|AUTH|PASS)/],
    ['smtp', smtpBackendLogin, '220 fake ESMTP\r\n', /^AUTH/],
  ] as [string, BackendLogin, string, RegExp][])('%s: the login fails temporarily and no credentials are sent', async (_p, backendLogin, greeting, credentialLine) => {
    const fake = await startFakeBackend(greeting, (l) => (l === 'CAPA' ? '+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n' : l.startsWith('EHLO') ? '250-fake\r\n250 AUTH PLAIN\r\n' : '+OK\r\n'));
    const cfg = parseBackend(fake.cfg({ forwardClientInfo: true }));
    const r = await backendLogin(cfg, creds(), ctx);
    expect(r).toMatchObject({ kind: 'unavailable', error: expect.stringMatching(/does not offer (XCLIENT|ID)/) });
    expect(fake.lines.filter((l) => credentialLine.test(l))).toEqual([]);
    await fake.stop();
  });

  it('pop3: a Dovecot-style "[XCLIENT]" greeting is enough, and XCLIENT goes before the credentials', async () => {
    const fake = await startFakeBackend('+OK [XCLIENT] fake\r\n', (l) => (l === 'CAPA' ? '+OK\r\nUSER\r\n.\r\n' : l === 'QUIT' ? '+OK\r\n' : l.startsWith('PASS') ? '+OK Logged in.\r\n' : '+OK\r\n'));
    const cfg = parseBackend(fake.cfg({ forwardClientInfo: true }));
    const r = await pop3BackendLogin(cfg, { mechanism: 'USER', user: Buffer.from('alice'), password: Buffer.from('pw') }, ctx);
    expect(r.kind).toBe('ok');
    if (r.kind === 'ok') r.socket.destroy();
    expect(fake.lines).toEqual(['CAPA', 'XCLIENT ADDR=203.0.113.20 PORT=40000', 'USER alice', 'PASS pw']);
    await fake.stop();
  });
});
