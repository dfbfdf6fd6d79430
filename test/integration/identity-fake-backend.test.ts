// forwardClientInfo against scripted fake backends, for what a real Dovecot will not do: a
// server that does not offer ID/XCLIENT, or refuses them: with true the login fails before any
// credential is sent, with auto (the default) it goes on without; Dovecot's POP3 "[XCLIENT]"
// greeting is honoured; the client's EHLO name in XCLIENT and mailgate's EHLO. Loopback only.
import { describe, expect, it } from 'vitest';
import { imapBackendLogin } from '../../src/backend/login-imap.js';
import { pop3BackendLogin } from '../../src/backend/login-pop3.js';
import { smtpBackendLogin } from '../../src/backend/login-smtp.js';
import type { BackendLogin, LoginContext } from '../../src/backend/types.js';
import { parseBackend } from '../helpers/backend-config.js';
import { b64 } from '../helpers/codec.js';
import { startFakeBackend, type FakeAction } from '../helpers/fake-backend.js';

const ctx: LoginContext = { tag: 'a', hostname: 'mx.test', helo: 'my=pc.example', client: { ip: '203.0.113.20', port: 40000, localIp: '127.0.0.1', localPort: 143, sessionId: 'abc1' } };
const creds = () => ({ mechanism: 'IMAP-LOGIN' as const, user: Buffer.from('alice'), password: Buffer.from('alice-pass') });
const AUTH_PLAIN = `AUTH PLAIN ${b64('\0alice\0alice-pass')}`;
const IMAP_LOGIN = ['mg1 LOGIN {5+}', 'alice {10+}', 'alice-pass'];

interface Script {
  login: BackendLogin;
  greeting: string;
  onLine(line: string): FakeAction;
}

/** Servers that log alice in; `offers`: they offer ID / XCLIENT (SMTP: with HELO), and
 *  answer it with `tell` (ok, or a refusal). */
function script(p: 'imap' | 'pop3' | 'smtp', offers: boolean, tell: 'ok' | 'refuse' = 'ok'): Script {
  if (p === 'imap') {
    return {
      login: imapBackendLogin,
      greeting: `* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN${offers ? ' ID' : ''}] fake\r\n`,
      onLine: (l) => (l.startsWith('mg1 ID ') ? (tell === 'ok' ? '* ID NIL\r\nmg1 OK ID done\r\n' : 'mg1 BAD no\r\n') : l === 'alice-pass' ? 'mg1 OK Logged in\r\n' : undefined),
    };
  }
  if (p === 'pop3') {
    return {
      login: pop3BackendLogin,
      greeting: `+OK ${offers ? '[XCLIENT] ' : ''}fake\r\n`,
      onLine: (l) => (l === 'CAPA' ? '+OK\r\nUSER\r\n.\r\n' : l.startsWith('XCLIENT ') && tell === 'refuse' ? '-ERR no\r\n' : l.startsWith('PASS') ? '+OK Logged in.\r\n' : '+OK\r\n'),
    };
  }
  return {
    login: smtpBackendLogin,
    greeting: '220 fake ESMTP\r\n',
    onLine: (l) =>
      l.startsWith('EHLO ') ? `250-fake\r\n${offers ? '250-XCLIENT ADDR PORT HELO\r\n' : ''}250 AUTH PLAIN\r\n`
      : l.startsWith('XCLIENT ') ? (tell === 'ok' ? '220 fake ESMTP\r\n' : '550 5.7.0 no\r\n')
      : l.startsWith('AUTH ') ? '235 2.7.0 ok\r\n' : undefined,
  };
}

async function replayed(s: Script, backend: Record<string, unknown>) {
  const fake = await startFakeBackend(s.greeting, s.onLine);
  const r = await s.login(parseBackend(fake.cfg(backend)), creds(), ctx);
  if (r.kind === 'ok') r.socket.destroy();
  await fake.stop();
  return { kind: r.kind, error: r.kind === 'unavailable' ? r.error : undefined, lines: fake.lines };
}

describe('forwardClientInfo: true against a backend that does not offer it', () => {
  it.each(['imap', 'pop3', 'smtp'] as const)('%s: the login fails temporarily and no credentials are sent', async (p) => {
    const r = await replayed(script(p, false), { forwardClientInfo: true });
    expect(r).toMatchObject({ kind: 'unavailable', error: expect.stringMatching(/does not offer (XCLIENT|ID)/) });
    expect(r.lines.filter((l) => /^(mg1 LOGIN|USER|PASS|AUTH)/.test(l))).toEqual([]);
  });

  it.each(['imap', 'pop3', 'smtp'] as const)('%s: a backend that refuses it fails the login the same way', async (p) => {
    const r = await replayed(script(p, true, 'refuse'), { forwardClientInfo: true });
    expect(r).toMatchObject({ kind: 'unavailable', error: expect.stringMatching(/refused|answered 550/) });
    expect(r.lines.filter((l) => /^(mg1 LOGIN|USER|PASS|AUTH)/.test(l))).toEqual([]);
  });

  it('pop3: a Dovecot-style "[XCLIENT]" greeting is enough, and XCLIENT goes before the credentials', async () => {
    const r = await replayed(script('pop3', true), { forwardClientInfo: true });
    expect(r.kind).toBe('ok');
    expect(r.lines).toEqual(['CAPA', 'XCLIENT ADDR=203.0.113.20 PORT=40000', 'USER alice', 'PASS alice-pass']);
  });
});

describe('forwardClientInfo: auto (the default)', () => {
  it.each([
    ['imap', IMAP_LOGIN],
    ['pop3', ['CAPA', 'USER alice', 'PASS alice-pass']],
    ['smtp', ['EHLO my=pc.example', AUTH_PLAIN]],
  ] as const)('%s: a backend that offers neither ID nor XCLIENT is not asked, and the login goes on', async (p, lines) => {
    const r = await replayed(script(p, false), {});
    expect(r.kind).toBe('ok');
    expect(r.lines).toEqual(lines);
  });

  it.each([
    ['imap', ['mg1 ID ("x-originating-ip" "203.0.113.20" "x-originating-port" "40000" "x-connected-ip" "127.0.0.1" "x-connected-port" "143" "x-session-id" "abc1")', ...IMAP_LOGIN]],
    ['pop3', ['CAPA', 'XCLIENT ADDR=203.0.113.20 PORT=40000', 'USER alice', 'PASS alice-pass']],
    ['smtp', ['EHLO my=pc.example', 'XCLIENT ADDR=203.0.113.20 PORT=40000 HELO=my+3Dpc.example', 'EHLO my=pc.example', AUTH_PLAIN]],
  ] as const)('%s: where offered the client is told first, its EHLO name too; a refusal is no error', async (p, lines) => {
    const told = await replayed(script(p, true), {});
    expect(told.kind).toBe('ok');
    expect(told.lines).toEqual(lines);
    const refused = await replayed(script(p, true, 'refuse'), {});
    expect(refused.kind).toBe('ok');
    expect(refused.lines.filter((l) => !/^EHLO /.test(l))).toEqual(lines.filter((l) => !/^EHLO /.test(l)));
  });

  it('with proxyProtocol the PROXY header alone tells, and SMTP still greets with the client\'s name', async () => {
    const imap = await replayed(script('imap', true), { proxyProtocol: 'v1' });
    expect(imap.lines).toEqual(['PROXY TCP4 203.0.113.20 127.0.0.1 40000 143', ...IMAP_LOGIN]);
    const smtp = await replayed(script('smtp', true), { proxyProtocol: 'v1' });
    expect(smtp.lines).toEqual(['PROXY TCP4 203.0.113.20 127.0.0.1 40000 143', 'EHLO my=pc.example', AUTH_PLAIN]);
  });
});

describe('forwardClientInfo: false', () => {
  it('nothing is told even where offered, and mailgate greets as itself', async () => {
    expect((await replayed(script('imap', true), { forwardClientInfo: false })).lines).toEqual(IMAP_LOGIN);
    expect((await replayed(script('pop3', true), { forwardClientInfo: false })).lines).toEqual(['CAPA', 'USER alice', 'PASS alice-pass']);
    expect((await replayed(script('smtp', true), { forwardClientInfo: false })).lines).toEqual(['EHLO mx.test', AUTH_PLAIN]);
  });
});
