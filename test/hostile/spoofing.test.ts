// Hostile: identity spoofing, for IMAP, POP3 and SMTP against a real Dovecot that trusts
// mailgate's address (login_trusted_networks = 127.0.0.0/8, so anything mailgate passed on
// would be believed). A client's own ID x-originating-ip, XCLIENT, XFORWARD, or a PROXY
// header (v1 text or v2 binary) on a listener that does not expect one is answered as a bad
// command, never believed and never forwarded: the login is counted, logged and seen by
// Dovecot under the client's real address.
//
// Already covered elsewhere: ID answered locally without echoing the client's fields
// (unit/imap-machine.test.ts), XCLIENT/XFORWARD unknown before AUTH and never advertised in
// EHLO (unit/smtp-machine.test.ts, integration/smtp.test.ts).
import { describe, expect, it } from 'vitest';
import { b64 } from '../helpers/codec.js';
import { greeted, LOGIN_OK, type Proto, proxyConfig } from '../helpers/hostile.js';
import { dovecotWithProxy } from '../helpers/rig.js';

const rig = dovecotWithProxy();

const SPOOF = '6.6.6.6';
const PROXY_V1 = `PROXY TCP4 ${SPOOF} 127.0.0.1 4444 143\r\n`;
/** PROXY v2 signature, PROXY command, TCP over IPv4, 12 address bytes: 6.6.6.6 → 127.0.0.1. */
const PROXY_V2 = Buffer.concat([
  Buffer.from('0d0a0d0a000d0a515549540a', 'hex'),
  Buffer.from([0x21, 0x11, 0x00, 0x0c, 6, 6, 6, 6, 127, 0, 0, 1, 0x11, 0x5c, 0x00, 0x8f]),
]);

/** Spoofing attempts that precede a good login, and the bad-command reply each must get. */
const ATTEMPTS: Record<Proto, { spoof: string; bad: RegExp; login: string }> = {
  imap: {
    spoof: `${PROXY_V1}x ID ("x-originating-ip" "${SPOOF}" "x-originating-port" "4444" "x-connected-ip" "${SPOOF}")\r\n` +
      `y ID ("x-originating-ip" {7+}\r\n${SPOOF})\r\n`,
    bad: /^PROXY BAD [^\r]*\r\n\* ID NIL\r\nx OK [^\r]*\r\n\* ID NIL\r\ny OK /m,
    login: 'a LOGIN alice alice-pass\r\n',
  },
  pop3: {
    spoof: `${PROXY_V1}XCLIENT ADDR=${SPOOF}\r\n`,
    bad: /^-ERR Unknown command\.\r\n-ERR Unknown command\.\r\n/,
    login: 'USER alice\r\nPASS alice-pass\r\n',
  },
  smtp: {
    spoof: `${PROXY_V1}EHLO c\r\nXCLIENT ADDR=${SPOOF} NAME=spoofed.example\r\nXFORWARD ADDR=${SPOOF}\r\n`,
    bad: /^500 5\.5\.2 [^\r]*\r\n250-mx\.test\r\n(?:250-[^\r]*\r\n)*250 [^\r]*\r\n500 5\.5\.2 [^\r]*\r\n500 5\.5\.2 /,
    login: `AUTH PLAIN ${b64('\0alice\0alice-pass')}\r\n`,
  },
};

describe('spoofed client identity before login', () => {
  it.each(['imap', 'pop3', 'smtp'] as Proto[])('%s: PROXY v1, ID x-originating-ip, XCLIENT, XFORWARD are bad commands; the login keeps the real address', async (proto) => {
    const ip = `127.0.44.${1 + ['imap', 'pop3', 'smtp'].indexOf(proto)}`;
    const before = await rig.dovecot.logMark();
    const c = await greeted(proto, rig.proxy.port(`${proto}-plain`), { localAddress: ip });
    const { spoof, bad, login } = ATTEMPTS[proto];
    c.write(spoof);
    await c.waitFor(bad);
    c.write(login);
    expect(await c.waitFor(LOGIN_OK[proto])).not.toContain(SPOOF);
    c.close();
    expect(rig.proxy.log.lines.filter((l) => l.event === 'auth.attempt' && l.outcome === 'ok' && l.ip === ip)).toHaveLength(1);
    expect(rig.proxy.log.raw.join('\n')).not.toContain(SPOOF);
    const added = await rig.dovecot.settledLog(before);
    expect(added).toMatch(/Login: user=<alice>/);
    expect(added).not.toContain(SPOOF);
  });

  it.each(['imap', 'pop3', 'smtp'] as Proto[])('%s: a binary PROXY v2 header is never parsed as an address; no login follows from it', async (proto) => {
    const ip = `127.0.44.${10 + ['imap', 'pop3', 'smtp'].indexOf(proto)}`;
    const c = await greeted(proto, rig.proxy.port(`${proto}-plain`), { localAddress: ip });
    c.write(PROXY_V2);
    // The v2 signature contains "QUIT\n" by design: POP3 and SMTP end the session there.
    if (proto === 'imap') {
      c.write('\r\nz NOOP\r\n');
      expect(await c.waitFor(/^z OK /m)).toMatch(/ BAD /);
      c.close();
    } else {
      await c.waitClosed();
    }
    expect(rig.proxy.log.lines.filter((l) => l.ip === ip && l.event === 'auth.attempt')).toEqual([]);
    expect(rig.proxy.log.raw.join('\n')).not.toContain(SPOOF);
  });
});
