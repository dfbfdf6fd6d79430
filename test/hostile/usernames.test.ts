// Hostile: user names carrying NUL, CR, LF, escape sequences or invalid UTF-8, through every
// way each protocol can carry them (IMAP literals and AUTHENTICATE, POP3 USER and AUTH, SMTP
// AUTH LOGIN/PLAIN), against a real Dovecot: refused as a failed login, never sent to the
// backend, never truncated, logged escaped in full; and a password with CRLF reaches a
// (scripted, fake) backend only inside an IMAP literal, never as a line of its own.
//
// Already covered elsewhere: the escaping rules themselves (unit/identity.test.ts), an IMAP
// user with an ESC sequence over a socket (integration/imap-session.test.ts), POP3 replay
// refusing CR/LF/NUL in USER/PASS at the replay level (integration/pop3.test.ts), one
// counter for Alice/ALICE/alice (integration/imap.test.ts, unit/identity.test.ts).
import { describe, expect, it } from 'vitest';
import { b64 } from '../helpers/codec.js';
import { startFakeBackend } from '../helpers/fake-backend.js';
import { AUTH_FAIL, greeted, type Proto, proxyConfig } from '../helpers/hostile.js';
import { until } from '../helpers/until.js';
import { dovecotWithProxy } from '../helpers/rig.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';

const rig = dovecotWithProxy();

/** [name, user as latin1 bytes, what must survive in the log after the bad byte]. */
const USERS: [string, string, string][] = [
  ['NUL', 'alice\0bob', 'bob'],
  ['CRLF', 'alice\r\nINJECTED LOGOUT', 'INJECTED LOGOUT'],
  ['bare CR', 'alice\rINJECTED', 'INJECTED'],
  ['bare LF', 'alice\nINJECTED', 'INJECTED'],
  ['ESC sequence', 'alice\x1b[2JINJECTED', 'INJECTED'],
  ['invalid UTF-8', 'al\xffINJECTED', 'INJECTED'],
  ['truncated UTF-8', 'alice\xc3', 'alice'],
  ['C1 control', 'alice\xc2\x85INJECTED', 'INJECTED'],
];

/** Ways each protocol carries a user name; `null` where the framing cannot carry the bytes
 *  (a POP3 USER line ends at LF). */
type Vector = (user: string) => string | null;
const VECTORS: Record<Proto, [string, Vector][]> = {
  imap: [
    ['LOGIN with literals', (u) => `a LOGIN {${u.length}+}\r\n${u} {4+}\r\npass\r\n`],
    ['AUTHENTICATE PLAIN', (u) => (u.includes('\0') ? null : `a AUTHENTICATE PLAIN ${b64(`\0${u}\0pass`)}\r\n`)],
    ['AUTHENTICATE LOGIN', (u) => `a AUTHENTICATE LOGIN ${b64(u)}\r\n${b64('pass')}\r\n`],
  ],
  pop3: [
    ['USER/PASS', (u) => (u.includes('\n') ? null : `USER ${u}\r\nPASS pass\r\n`)],
    ['AUTH LOGIN', (u) => `AUTH LOGIN ${b64(u)}\r\n${b64('pass')}\r\n`],
  ],
  smtp: [
    ['AUTH PLAIN', (u) => (u.includes('\0') ? null : `EHLO c\r\nAUTH PLAIN ${b64(`\0${u}\0pass`)}\r\n`)],
    ['AUTH LOGIN', (u) => `EHLO c\r\nAUTH LOGIN\r\n${b64(u)}\r\n${b64('pass')}\r\n`],
  ],
};

const CONTROLS = /[\x00-\x1f\x7f-\x9f]/;

describe('hostile user names', () => {
  let n = 0;
  for (const [proto, vectors] of Object.entries(VECTORS) as [Proto, [string, Vector][]][]) {
    for (const [how, vector] of vectors) {
      it(`${proto} ${how}: refused as a failed login, never sent on, logged escaped and whole`, async () => {
        const before = await rig.dovecot.logMark();
        for (const [name, user, tail] of USERS) {
          const bytes = vector(user);
          if (bytes === null) continue;
          const ip = `127.0.43.${++n}`;
          const c = await greeted(proto, rig.proxy.port(`${proto}-plain`), { localAddress: ip });
          c.write(Buffer.from(bytes, 'latin1'));
          const text = await c.waitFor(AUTH_FAIL[proto]).catch((err: Error) => {
            throw new Error(`${name}: ${err.message}`);
          });
          c.close();
          expect(text, name).not.toContain('INJECTED');
          const [line, ...more] = rig.proxy.log.lines.filter((l) => l.event === 'auth.attempt' && l.ip === ip);
          expect(more, name).toEqual([]);
          expect(line, name).toMatchObject({ outcome: 'invalid' });
          const shown = String(line!.user);
          expect(shown, name).not.toMatch(CONTROLS);
          expect(shown, `${name}: not truncated`).toContain(tail);
          const raw = rig.proxy.log.raw.find((r) => r.includes(`"ip":"${ip}"`) && r.includes('auth.attempt'))!;
          expect(raw, name).not.toMatch(/\\u00(?:0|1)[0-9a-f]|\\[rn]/i); // not even JSON-escaped controls
        }
        // Dovecot never heard of any of them.
        const added = await rig.dovecot.settledLog(before);
        expect(added).not.toMatch(/INJECTED|user=<alice|auth failed|Login:/);
      });
    }
  }

  it('a valid but unusual name (U+2028, bidi override) goes to the backend and is logged escaped', async () => {
    const user = Buffer.from('ali\u2028ce\u202egnp.exe', 'utf8').toString('latin1');
    const c = await greeted('imap', rig.proxy.port('imap-plain'), { localAddress: '127.0.43.200' });
    c.write(Buffer.from(`a LOGIN {${user.length}+}\r\n${user} {4+}\r\npass\r\n`, 'latin1'));
    await c.waitFor(AUTH_FAIL.imap);
    c.close();
    const line = rig.proxy.log.lines.find((l) => l.event === 'auth.attempt' && l.ip === '127.0.43.200')!;
    expect(line).toMatchObject({ outcome: 'fail', user: 'ali\\u2028ce\\u202egnp.exe' });
  });
});

describe('passwords with line breaks', () => {
  it('imap: a CRLF in the password reaches the (fake) backend inside a literal, never as its own line', async () => {
    const fake = await startFakeBackend('* OK [CAPABILITY IMAP4rev1 LITERAL+] fake\r\n', () => undefined);
    const cfg = proxyConfig(rig.dovecot, { backends: { fake: fake.cfg() } });
    cfg.listeners.push({ name: 'fake', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'fake', hostname: 'mx.test' });
    const p = await startTestProxy(cfg);
    try {
      const password = 'pw\r\nmg1 OK LOGIN done\r\nx LOGOUT';
      const c = await greeted('imap', p.port('fake'), { localAddress: '127.0.43.201' });
      c.write(`a LOGIN {5+}\r\nalice {${password.length}+}\r\n${password}\r\n`);
      // The connection that carried the login (a capability probe may have come first).
      const login = () => fake.raw().find((b) => b.includes('LOGIN'));
      await until(() => login()?.includes('x LOGOUT\r\n') ?? false, 'the login to reach the fake backend');
      expect(login()!.toString('latin1')).toBe(`mg1 LOGIN {5+}\r\nalice {${password.length}+}\r\n${password}\r\n`);
      c.close();
    } finally {
      await p.stop();
      await fake.stop();
    }
  });

  it.each([
    ['pop3', `USER alice\r\nPASS pw\0INJECTED\r\n`],
    ['pop3', `USER alice\r\nPASS pw\rINJECTED\r\n`],
  ] as [Proto, string][])('%s: a NUL or CR in a USER/PASS password is refused before the backend', async (proto, bytes) => {
    const before = await rig.dovecot.logMark();
    const c = await greeted(proto, rig.proxy.port(`${proto}-plain`), { localAddress: '127.0.43.202' });
    c.write(bytes);
    expect(await c.waitFor(AUTH_FAIL[proto])).not.toContain('INJECTED');
    c.close();
    expect(await rig.dovecot.settledLog(before)).not.toMatch(/INJECTED|user=<alice>/);
  });
});
