// nginx's auth_http headers without nginx: parsing, and NGX_ESCAPE_MAIL_AUTH undone to the
// bytes. The answers are in test/integration/policy-http.test.ts, the real thing in test/e2e.
import { describe, expect, it } from 'vitest';
import { parseNginx, unescapeMailAuth } from '../../src/policy-server/nginx.js';

describe('nginx auth_http requests', () => {
  it("undoes nginx's escaping of space, % and control characters, and keeps other bytes", () => {
    expect(unescapeMailAuth('p%20w%25d%0D%0A')).toEqual(Buffer.from('p w%d\r\n'));
    expect(unescapeMailAuth('100%')).toEqual(Buffer.from('100%'));
    expect(unescapeMailAuth('%zz%4')).toEqual(Buffer.from('%zz%4'));
    // UTF-8 arrives as raw bytes, which Node gives as latin1 characters.
    expect(unescapeMailAuth(Buffer.from('pässword', 'utf8').toString('latin1'))).toEqual(Buffer.from('pässword', 'utf8'));
  });

  it('parses what nginx sends and names what is missing', () => {
    const h = { 'auth-method': 'plain', 'auth-user': 'alice%20x', 'auth-pass': 'secret', 'auth-protocol': 'IMAP', 'auth-login-attempt': '2', 'client-ip': '::ffff:192.0.2.4' };
    expect(parseNginx(h)).toEqual({ protocol: 'imap', method: 'plain', user: Buffer.from('alice x'), pass: Buffer.from('secret'), clientIp: '192.0.2.4', attempt: 2, helo: undefined });
    expect(parseNginx({ ...h, 'auth-user': undefined })).toMatch(/^Auth-User/);
    expect(parseNginx({ ...h, 'auth-protocol': 'lmtp' })).toMatch(/^Auth-Protocol/);
    expect(parseNginx({ ...h, 'client-ip': '' })).toMatch(/^Client-IP/);
    expect(parseNginx({ ...h, 'auth-method': 'kerberos' })).toMatch(/^Auth-Method/);
    expect(parseNginx({ ...h, 'auth-method': 'none', 'auth-user': undefined, 'auth-protocol': 'smtp' })).toMatchObject({ method: 'none', user: Buffer.alloc(0) });
  });
});
