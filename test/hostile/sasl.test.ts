// Hostile: SASL over real sockets against a real Dovecot, for IMAP, POP3 and SMTP. Malformed
// exchanges (base64 that Node would silently "repair", wrong NUL counts, "*", unadvertised
// mechanisms) never reach the backend or the log; a failed or cancelled exchange leaves no
// state behind for the next mechanism; one client's garbage never disturbs other logins; the
// per-connection attempt cap holds.
//
// Already covered elsewhere: the exact reply to each failure per protocol (BAD / -ERR / 501,
// 504, AUTHORIZATIONFAILED), "=" as the empty response, LOGIN prompts and SASL-IR:
// unit/*-machine.test.ts, unit/sasl.test.ts; fuzz-parsers.test.ts checks strict base64 and
// PLAIN decoding for arbitrary input.
import { beforeAll, describe, expect, it } from 'vitest';
import { b64 } from '../helpers/codec.js';
import { greeted, LOGIN_OK, loginOnce, type Proto, proxyConfig } from '../helpers/hostile.js';
import { until } from '../helpers/until.js';
import type { TestProxy } from '../helpers/proxy.js';
import { dovecotForFile } from '../helpers/rig.js';

const rig = dovecotForFile({ users: [{ user: 'alice', pass: 'alice-pass' }, { user: 'bob', pass: 'bob-pass' }, { user: 'mallory', pass: 'mallory-pass' }] });
let proxy: TestProxy;

beforeAll(async () => {
  proxy = await rig.proxy(proxyConfig(rig.dovecot));
});

const GOOD = b64('\0alice\0alice-pass');
/** Valid credentials with one character Node's lenient decoder would skip: accepting it
 *  would log alice in from an invalid token. */
const REPAIRABLE = `${GOOD.slice(0, 8)}!${GOOD.slice(8)}`;
const MALFORMED = [REPAIRABLE, `${GOOD.slice(0, 8)} ${GOOD.slice(8)}`, `${GOOD}=`, b64('alice\0alice-pass'), b64('\0alice\0alice-pass\0'), b64('\0\0alice-pass'), b64('bob\0alice\0alice-pass')];

/** One malformed exchange per line, then a good login: only the good one may reach Dovecot. */
const SCRIPTS: Record<Proto, { bad: (token: string) => string; extra: string; good: string; end: RegExp }> = {
  imap: {
    bad: (t) => `x AUTHENTICATE PLAIN ${t}\r\n`,
    extra: 'y AUTHENTICATE EXTERNAL =\r\ny AUTHENTICATE CRAM-MD5\r\ny AUTHENTICATE PLAIN\r\n*\r\ny AUTHENTICATE XOAUTH2 dXNlcj1hbGljZQ==\r\n',
    good: `a AUTHENTICATE PLAIN ${GOOD}\r\n`,
    end: /^a OK /m,
  },
  pop3: {
    bad: (t) => `AUTH PLAIN ${t}\r\n`,
    extra: 'AUTH EXTERNAL =\r\nAUTH CRAM-MD5\r\nAUTH PLAIN\r\n*\r\nAUTH XOAUTH2 dXNlcj1hbGljZQ==\r\n',
    good: `AUTH PLAIN ${GOOD}\r\n`,
    end: /^\+OK Logged in/m,
  },
  smtp: {
    bad: (t) => `AUTH PLAIN ${t}\r\n`,
    extra: 'AUTH EXTERNAL =\r\nAUTH CRAM-MD5\r\nAUTH PLAIN\r\n*\r\nAUTH XOAUTH2 dXNlcj1hbGljZQ==\r\n',
    good: `AUTH PLAIN ${GOOD}\r\n`,
    end: /^235 /m,
  },
};

describe('malformed SASL never reaches the backend or the log', () => {
  it.each(['imap', 'pop3', 'smtp'] as Proto[])('%s: base64 Node would repair, wrong NUL counts, authzid, "*", EXTERNAL, CRAM-MD5, XOAUTH2', async (proto) => {
    const ip = `127.0.42.${1 + ['imap', 'pop3', 'smtp'].indexOf(proto)}`;
    // A budget big enough for the whole barrage: this test is about where the bytes go.
    const p = await rig.proxy({ ...proxyConfig(rig.dovecot), limits: { rules: [], maxBadCommands: 50, maxAuthAttempts: 50 } });
    try {
      const before = await rig.dovecot.logMark();
      const s = SCRIPTS[proto];
      const c = await greeted(proto, p.port(`${proto}-plain`), { localAddress: ip });
      c.write(`${proto === 'smtp' ? 'EHLO c\r\n' : ''}${MALFORMED.map(s.bad).join('')}${s.extra}${s.good}`);
      const text = await c.waitFor(s.end);
      c.close();
      expect(text.match(s.end)).toHaveLength(1);
      // Only the good login was tried: one auth.attempt line, one login at Dovecot, no failures.
      expect(p.log.lines.filter((l) => l.event === 'auth.attempt')).toEqual([expect.objectContaining({ outcome: 'ok', user: 'alice', ip })]);
      await until(() => /-login: (?:Info: )?Login: user=<alice>/.test(rig.dovecot.readLog().slice(before)), 'Dovecot to log the login');
      const added = rig.dovecot.readLog().slice(before);
      expect(added.match(/-login: (?:Info: )?Login: user=<alice>/g)).toHaveLength(1);
      expect(added).not.toMatch(/auth failed|Password mismatch|unknown user|bob/i);
    } finally {
      await p.stop();
    }
  });
});

describe('no stale SASL state', () => {
  const cases: [Proto, string, string, RegExp][] = [
    [
      'imap',
      `a AUTHENTICATE LOGIN\r\n${b64('mallory')}\r\n*\r\nb AUTHENTICATE LOGIN ${b64('bob')}\r\n${b64('wrong-1')}\r\n`,
      `c AUTHENTICATE PLAIN\r\n${GOOD}\r\nd NOOP\r\n`,
      /^d OK /m,
    ],
    [
      'pop3',
      `USER mallory\r\nAUTH LOGIN\r\n${b64('mallory')}\r\n*\r\nPASS mallory-pass\r\nAUTH LOGIN ${b64('bob')}\r\n${b64('wrong-1')}\r\n`,
      `AUTH PLAIN\r\n${GOOD}\r\n`,
      /^\+OK Logged in/m,
    ],
    [
      'smtp',
      `EHLO c\r\nAUTH LOGIN\r\n${b64('mallory')}\r\n*\r\nAUTH LOGIN ${b64('bob')}\r\n${b64('wrong-1')}\r\n`,
      `AUTH PLAIN\r\n${GOOD}\r\n`,
      /^235 /m,
    ],
  ];
  it.each(cases)('%s: a cancelled LOGIN and a rejected LOGIN, then PLAIN: the backend sees exactly bob, then alice', async (proto, failing, good, end) => {
    const ip = `127.0.42.${10 + ['imap', 'pop3', 'smtp'].indexOf(proto)}`;
    const before = await rig.dovecot.logMark();
    const c = await greeted(proto, proxy.port(`${proto}-plain`), { localAddress: ip });
    c.write(failing);
    // Wait for the backend's rejection of bob before going on, as a real client would.
    await c.waitFor({ imap: /^b NO /m, pop3: /^-ERR \[AUTH\]/m, smtp: /^535 /m }[proto]);
    c.write(good);
    await c.waitFor(end);
    c.close();
    const attempts = proxy.log.lines.filter((l) => l.event === 'auth.attempt' && l.ip === ip);
    expect(attempts.map((l) => [l.user, l.mechanism, l.outcome])).toEqual([['bob', 'LOGIN', 'fail'], ['alice', 'PLAIN', 'ok']]);
    await until(() => /Login: user=<alice>/.test(rig.dovecot.readLog().slice(before)), 'Dovecot to log the login');
    const added = rig.dovecot.readLog().slice(before);
    expect(added).not.toMatch(/mallory/);
  });
});

describe('one client\'s garbage does not disturb anyone else (cf. Dovecot CVE-2025-59028)', () => {
  it('while 12 clients spray invalid SASL on every protocol, 24 interleaved logins all succeed', async () => {
    let stop = false;
    const sprayers = Array.from({ length: 12 }, async (_, i) => {
      const proto = (['imap', 'pop3', 'smtp'] as Proto[])[i % 3]!;
      const junk = { imap: 'x AUTHENTICATE PLAIN !!!!\r\nx AUTHENTICATE PLAIN\r\n%%%%\r\n', pop3: 'AUTH PLAIN !!!!\r\nAUTH PLAIN\r\n%%%%\r\n', smtp: 'AUTH PLAIN !!!!\r\nAUTH PLAIN\r\n%%%%\r\n' }[proto];
      let rounds = 0;
      while (!stop) {
        const c = await greeted(proto, proxy.port(`${proto}-plain`), { localAddress: `127.0.42.${30 + i}` });
        c.write(`${proto === 'smtp' ? 'EHLO c\r\n' : ''}${junk.repeat(6)}`);
        await c.waitClosed().catch(() => undefined); // the error budget closes it
        c.close();
        rounds++;
      }
      return rounds;
    });
    const results: string[] = [];
    for (let i = 0; i < 24; i++) {
      const proto = (['imap', 'pop3', 'smtp'] as Proto[])[i % 3]!;
      results.push(await loginOnce(proto, proxy.port(`${proto}-plain`), i % 2 ? 'alice' : 'bob', i % 2 ? 'alice-pass' : 'bob-pass', { localAddress: '127.0.42.50' }));
    }
    stop = true;
    const rounds = await Promise.all(sprayers);
    expect(rounds.every((r) => r > 0)).toBe(true);
    results.forEach((r, i) => expect(r).toMatch(LOGIN_OK[(['imap', 'pop3', 'smtp'] as Proto[])[i % 3]!]));
  });
});

describe('attempts per connection', () => {
  const cases: [Proto, (n: number) => string, RegExp][] = [
    ['imap', (n) => `a${n} LOGIN bob wrong-${n}\r\n`, /^\* BYE Too many failed logins\.\r\n$/m],
    ['pop3', (n) => `USER bob\r\nPASS wrong-${n}\r\n`, /^-ERR Too many failed logins; closing connection\.\r\n$/m],
    ['smtp', (n) => `AUTH PLAIN ${b64(`\0bob\0wrong-${n}`)}\r\n`, /^421 4\.7\.0 mx\.test Too many failed logins/m],
  ];
  it.concurrent.each(cases)('%s: the third rejected login closes the connection; pipelined attempts after it never reach Dovecot', async (proto, attempt, bye) => {
    const ip = `127.0.42.${60 + ['imap', 'pop3', 'smtp'].indexOf(proto)}`;
    const c = await greeted(proto, proxy.port(`${proto}-plain`), { localAddress: ip });
    c.write(`${proto === 'smtp' ? 'EHLO c\r\n' : ''}${[1, 2, 3, 4, 5].map(attempt).join('')}`);
    expect(await c.waitClosed()).toMatch(bye);
    expect(proxy.log.lines.filter((l) => l.event === 'auth.attempt' && l.ip === ip).map((l) => l.outcome)).toEqual(['fail', 'fail', 'fail']);
  });
});
