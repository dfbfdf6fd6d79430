// The POP3 backend replay against scripted fake backends, for what a real Dovecot will not do
// on demand: no SASL PLAIN or no CAPA, the 255-octet AUTH line limit (RFC 5034 §4), each -ERR
// response code, CR/LF/NUL in credentials, a bad greeting, a refused STLS or bytes after it.
import { describe, expect, it } from 'vitest';
import { pop3BackendLogin } from '../../src/backend/login-pop3.js';
import { parseBackend } from '../helpers/backend-config.js';
import { b64 } from '../helpers/codec.js';
import { startFakeBackend } from '../helpers/fake-backend.js';

/** What the scripted fake POP3 servers below greet with. */
const READY = '+OK fake ready\r\n';

const creds = (user: string, password: string) => ({ mechanism: 'USER' as const, user: Buffer.from(user), password: Buffer.from(password) });
const ctx = { tag: '', hostname: 'mx.test', client: { ip: '127.0.0.1', port: 40000, localIp: '127.0.0.1', localPort: 110, sessionId: 'test1' } };

describe('POP3 backend replay against a scripted fake backend', () => {
  it('without SASL PLAIN in CAPA it logs in with USER/PASS and hands over the socket', async () => {
    const fake = await startFakeBackend(READY, (l) => (l === 'CAPA' ? '+OK\r\nUSER\r\nSASL CRAM-MD5 PLAINX\r\n.\r\n' : l.startsWith('USER ') ? '+OK\r\n' : '+OK Logged in.\r\n+OK extra\r\n'));
    const r = await pop3BackendLogin(parseBackend(fake.cfg()), creds('alice', 'pass word'), ctx);
    expect(r.kind).toBe('ok');
    if (r.kind === 'ok') {
      expect(r.clientReply?.toString()).toBe('+OK Logged in.\r\n');
      expect(r.leftover.toString()).toBe('+OK extra\r\n');
      r.socket.destroy();
    }
    expect(fake.lines).toEqual(['CAPA', 'USER alice', 'PASS pass word']);
    await fake.stop();
  });

  it('AUTH PLAIN carries the initial response up to a 255-octet line, beyond that on the "+ " line', async () => {
    const fake = await startFakeBackend(READY, (l) => (l === 'CAPA' ? '+OK\r\nSASL LOGIN PLAIN\r\n.\r\n' : l === 'AUTH PLAIN' ? '+ \r\n' : '+OK Logged in.\r\n'));
    // 180 raw octets encode to 240 characters: "AUTH PLAIN " + 240 + CRLF = 253 octets.
    const fits = 'p'.repeat(180 - 7);
    const r1 = await pop3BackendLogin(parseBackend(fake.cfg()), creds('alice', fits), ctx);
    expect(r1.kind).toBe('ok');
    if (r1.kind === 'ok') r1.socket.destroy();
    expect(fake.lines).toEqual(['CAPA', `AUTH PLAIN ${b64(`\0alice\0${fits}`)}`]);
    fake.lines.length = 0;
    // 183 raw octets encode to 244 characters: 257 octets would exceed the limit.
    const long = 'p'.repeat(183 - 7);
    const r2 = await pop3BackendLogin(parseBackend(fake.cfg()), creds('alice', long), ctx);
    expect(r2.kind).toBe('ok');
    if (r2.kind === 'ok') r2.socket.destroy();
    expect(fake.lines).toEqual(['CAPA', 'AUTH PLAIN', b64(`\0alice\0${long}`)]);
    await fake.stop();
  });

  it('a backend without CAPA gets USER/PASS; its -ERR is forwarded as a rejection', async () => {
    const fake = await startFakeBackend(READY, (l) => (l === 'CAPA' ? '-ERR unknown command\r\n' : l.startsWith('USER ') ? '+OK\r\n' : '-ERR [AUTH] nope\r\n'));
    expect(await pop3BackendLogin(parseBackend(fake.cfg()), creds('alice', 'x'), ctx)).toEqual({ kind: 'rejected', clientReply: Buffer.from('-ERR [AUTH] nope\r\n') });
    await fake.stop();
  });

  it('[SYS/TEMP] is unavailable (not the user\'s failure); [IN-USE] is "locked"; [AUTH] a rejection', async () => {
    for (const [answer, kind] of [['-ERR [SYS/TEMP] try later', 'unavailable'], ['-ERR [IN-USE] mailbox locked', 'locked'], ['-ERR [AUTH] no', 'rejected']] as const) {
      const fake = await startFakeBackend(READY, (l) => (l === 'CAPA' ? '+OK\r\nSASL PLAIN\r\n.\r\n' : `${answer}\r\n`));
      const r = await pop3BackendLogin(parseBackend(fake.cfg()), creds('alice', 'x'), ctx);
      expect(r.kind).toBe(kind);
      if (r.kind === 'rejected' || r.kind === 'locked') expect(r.clientReply?.toString()).toBe(`${answer}\r\n`);
      expect(fake.lines).toEqual(['CAPA', `AUTH PLAIN ${b64('\0alice\0x')}`]);
      await fake.stop();
    }
  });

  it.each([
    ['CR in the password', 'alice', 'pw\rDELE 1'],
    ['LF in the password', 'alice', 'pw\nDELE 1'],
    ['NUL in the password', 'alice', 'pw\0x'],
    ['LF in the user name', 'alice\nDELE 1', 'pw'],
  ])('%s is refused as an authentication failure, and the backend is never contacted', async (_, user, password) => {
    const fake = await startFakeBackend(READY, (l) => (l === 'CAPA' ? '+OK\r\nUSER\r\n.\r\n' : '+OK\r\n'));
    const r = await pop3BackendLogin(parseBackend(fake.cfg()), creds(user, password), ctx);
    // No backend words: the machine answers with POP3's own failure reply (login-answer.ts).
    expect(r).toEqual({ kind: 'rejected', clientReply: null });
    expect(fake.lines).toEqual([]);
    expect(fake.connections()).toBe(0);
    await fake.stop();
  });

  it('a greeting other than +OK is unavailable and no credentials are sent', async () => {
    const fake = await startFakeBackend('-ERR [SYS/TEMP] go away\r\n', () => '+OK\r\n');
    expect(await pop3BackendLogin(parseBackend(fake.cfg()), creds('alice', 'x'), ctx)).toMatchObject({ kind: 'unavailable' });
    expect(fake.lines).toEqual([]);
    await fake.stop();
  });

  it('STLS refused: unavailable, never a plaintext fallback', async () => {
    const fake = await startFakeBackend(READY, (l) => (l === 'STLS' ? '-ERR no TLS here\r\n' : '+OK\r\n'));
    expect(await pop3BackendLogin(parseBackend(fake.cfg({ tls: 'starttls' })), creds('alice', 'x'), ctx)).toMatchObject({ kind: 'unavailable' });
    expect(fake.lines).toEqual(['STLS']);
    await fake.stop();
  });

  it('bytes injected after the STLS +OK abort the login before the handshake', async () => {
    const fake = await startFakeBackend(READY, (l) => (l === 'STLS' ? '+OK go ahead\r\n+OK Logged in.\r\n' : '+OK\r\n'));
    const r = await pop3BackendLogin(parseBackend(fake.cfg({ tls: 'starttls' })), creds('alice', 'x'), ctx);
    expect(r).toMatchObject({ kind: 'unavailable', error: expect.stringMatching(/after its STARTTLS reply/) });
    expect(fake.lines).toEqual(['STLS']);
    await fake.stop();
  });
});
