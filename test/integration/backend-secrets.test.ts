// Every buffer the backend replay writes with a password in it (plain or base64, which is not
// redaction) is zeroed once the backend has answered: checked on the very Buffer objects
// handed to the socket, for IMAP (LOGIN with LITERAL+ literals), POP3 and SMTP (AUTH PLAIN),
// against a real Dovecot.
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { imapBackendLogin } from '../../src/backend/login-imap.js';
import { pop3BackendLogin } from '../../src/backend/login-pop3.js';
import { smtpBackendLogin } from '../../src/backend/login-smtp.js';
import type { BackendLogin } from '../../src/backend/types.js';
import type { Credentials } from '../../src/protocols/sasl.js';
import { parseBackend } from '../helpers/backend-config.js';
import { b64 } from '../helpers/codec.js';
import { dovecotForFile } from '../helpers/rig.js';

const PASS = 'Wipe-me-7f3a!';
// sink: a relay for Dovecot's submission service, behind the SMTP logins below.
const rig = dovecotForFile({ users: [{ user: 'wiper', pass: PASS }], sink: true });
afterEach(() => vi.restoreAllMocks());

const ctx = { tag: 'a', hostname: 'mx.test', client: { ip: '127.0.0.1', port: 40000, localIp: '127.0.0.1', localPort: 143, sessionId: 'wipe1' } };

/** Every Buffer written to any socket while `run` goes on, by reference. */
async function written(run: () => Promise<void>): Promise<Buffer[]> {
  const seen: Buffer[] = [];
  const original = net.Socket.prototype.write;
  vi.spyOn(net.Socket.prototype, 'write').mockImplementation(function (this: net.Socket, chunk: unknown, ...rest: unknown[]) {
    if (Buffer.isBuffer(chunk)) seen.push(chunk);
    return (original as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  });
  await run();
  return seen;
}

const plainB64 = b64(`\0wiper\0${PASS}`);

describe('credential lines sent to the backend are zeroed after its answer', () => {
  it.each([
    ['imap', imapBackendLogin, () => rig.dovecot.ports.imap, 'IMAP-LOGIN'],
    ['pop3', pop3BackendLogin, () => rig.dovecot.ports.pop3, 'USER'],
    ['smtp', smtpBackendLogin, () => rig.dovecot.ports.submission, 'PLAIN'],
  ] as [string, BackendLogin, () => number, string][])('%s', async (_proto, login, port, mechanism) => {
    const creds = { mechanism, user: Buffer.from('wiper'), password: Buffer.from(PASS) } as Credentials;
    let kind = '';
    const buffers = await written(async () => {
      const r = await login(parseBackend({ host: '127.0.0.1', port: port() }), creds, ctx);
      kind = r.kind;
      if (r.kind === 'ok') r.socket.destroy();
    });
    expect(kind).toBe('ok'); // the password did reach the backend
    expect(buffers.length).toBeGreaterThan(0);
    for (const b of buffers) {
      const text = b.toString('latin1');
      expect(text).not.toContain(PASS);
      expect(text).not.toContain(plainB64);
    }
  });
});
