// Hostile: commands pipelined around the login, for IMAP, POP3 and SMTP against a real
// Dovecot. Behind a refused, limited or unavailable login they are the proxy's to answer (or
// drop) and never reach the backend; behind a good login they reach it once, in order, even
// when a whole 256 KiB APPEND rides in the same packet as the LOGIN.
//
// Already covered elsewhere: IMAP success and failure (integration/imap.test.ts), POP3
// success (integration/pop3.test.ts), SMTP success and failure (integration/smtp.test.ts),
// takeBuffered handing bytes over raw (unit/*-machine.test.ts), and, for arbitrary input and
// chunking, fuzz-machines.test.ts ("the same effects as one read", handed-over bytes).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { b64 } from '../helpers/codec.js';
import { greeted, type Proto, proxyConfig, TEMP_FAIL } from '../helpers/hostile.js';
import { dovecotWithProxy } from '../helpers/rig.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';

const rig = dovecotWithProxy();

const GOOD: Record<Proto, string> = {
  imap: 'a LOGIN alice alice-pass\r\n',
  pop3: 'USER alice\r\nPASS alice-pass\r\n',
  smtp: `EHLO c\r\nAUTH PLAIN ${b64('\0alice\0alice-pass')}\r\n`,
};
/** What a backend would answer to the pipelined commands below, never the rig.proxy. */
const PIPELINED: Record<Proto, { cmds: string; backendOnly: RegExp }> = {
  imap: { cmds: 'b SELECT INBOX\r\nc LOGOUT\r\n', backendOnly: /^b OK|\[READ-WRITE\]/m },
  pop3: { cmds: 'STAT\r\nLIST\r\n', backendOnly: /^\+OK \d+ \d+/m },
  smtp: { cmds: 'MAIL FROM:<alice@example.org>\r\nRSET\r\n', backendOnly: /^250 2\.1\.0|Sender|^250 2\.0\.0 [^O]/m },
};

describe('behind a limited login', () => {
  let limited: TestProxy;
  beforeAll(async () => {
    limited = await startTestProxy(proxyConfig(rig.dovecot, { limits: { rules: [{ name: 'ip-logins', key: 'ip', count: 'attempts', limit: 1, window: '1h' }] } }));
  });
  afterAll(() => limited?.stop());

  it.each(['imap', 'pop3', 'smtp'] as Proto[])('%s: the temporary failure closes the connection; pipelined commands never reach Dovecot', async (proto) => {
    const ip = `127.0.45.${1 + ['imap', 'pop3', 'smtp'].indexOf(proto)}`;
    const first = await greeted(proto, limited.port(`${proto}-plain`), { localAddress: ip });
    first.write(GOOD[proto]);
    await first.waitFor({ imap: /^a OK /m, pop3: /^\+OK Logged in/m, smtp: /^235 /m }[proto]);
    first.close();
    const before = await rig.dovecot.logMark();
    const c = await greeted(proto, limited.port(`${proto}-plain`), { localAddress: ip });
    c.write(GOOD[proto] + PIPELINED[proto].cmds);
    const text = await c.waitClosed();
    expect(text).toMatch(TEMP_FAIL[proto]);
    expect(text).not.toMatch(PIPELINED[proto].backendOnly);
    expect(await rig.dovecot.settledLog(before)).not.toMatch(/user=<alice>/);
  });
});

describe('behind a refused or unavailable login', () => {
  it('pop3: after a rejected PASS, a pipelined STAT is the rig.proxy\'s; after the good one, Dovecot\'s', async () => {
    const c = await greeted('pop3', rig.proxy.port('pop3-plain'), { localAddress: '127.0.45.10' });
    c.write('USER alice\r\nPASS wrong-1\r\nSTAT\r\nUSER alice\r\nPASS alice-pass\r\nSTAT\r\n');
    const text = await c.waitFor(/^\+OK \d+ \d+\r\n/m);
    expect(text.split('\r\n').slice(0, 6)).toEqual([
      '+OK Send your password.',
      expect.stringMatching(/^-ERR \[AUTH\] /),
      '-ERR Unknown command.',
      '+OK Send your password.',
      expect.stringMatching(/^\+OK Logged in/),
      expect.stringMatching(/^\+OK \d+ \d+$/),
    ]);
    c.close();
  });

  it.each(['imap', 'pop3', 'smtp'] as Proto[])('%s: with the backend down, pipelined commands get the rig.proxy\'s answers and the session goes on', async (proto) => {
    const cfg = proxyConfig(rig.dovecot, { backends: { [proto]: { host: '127.0.0.1', port: 1 } } });
    const p = await startTestProxy(cfg);
    try {
      const c = await greeted(proto, p.port(`${proto}-plain`), { localAddress: `127.0.45.${20 + ['imap', 'pop3', 'smtp'].indexOf(proto)}` });
      c.write(GOOD[proto] + PIPELINED[proto].cmds);
      const text = await c.waitFor({ imap: /^c OK Logout/m, pop3: /^-ERR Unknown command\.\r\n-ERR Unknown command\.\r\n/m, smtp: /^530 [^\r]*\r\n250 2\.0\.0 OK\r\n/m }[proto]);
      expect(text).toMatch(TEMP_FAIL[proto]);
      expect(text).not.toMatch(PIPELINED[proto].backendOnly);
      c.close();
    } finally {
      await p.stop();
    }
  });
});

describe('behind a good login', () => {
  it('imap: LOGIN, a 256 KiB APPEND with a non-synchronizing literal, FETCH and LOGOUT in one write arrive once, byte for byte', async () => {
    const body = Buffer.from(`Subject: pipelined\r\n\r\n${'0123456789abcdef'.repeat(16 * 1024)}\r\n`);
    const c = await greeted('imap', rig.proxy.port('imap-plain'), { localAddress: '127.0.45.30' });
    c.write(Buffer.concat([
      Buffer.from(`a LOGIN bob bob-pass\r\nb APPEND INBOX {${body.length}+}\r\n`), body,
      Buffer.from('\r\nc SELECT INBOX\r\nd FETCH 1 BODY.PEEK[]\r\ne LOGOUT\r\n'),
    ]));
    const text = await c.waitFor(/^e OK /m, 20_000);
    for (const tag of ['a', 'b', 'c', 'd', 'e']) expect(text.match(new RegExp(`^${tag} OK `, 'gm')), tag).toHaveLength(1);
    const literal = /\* 1 FETCH \(BODY\[\] \{(\d+)\}\r\n/.exec(text)!;
    const start = literal.index + literal[0].length;
    expect(Number(literal[1])).toBe(body.length);
    expect(Buffer.from(text.slice(start, start + body.length), 'latin1').equals(body)).toBe(true);
  });
});
