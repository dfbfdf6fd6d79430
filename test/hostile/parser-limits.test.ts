// Hostile: line, literal and parser limits over real sockets, for IMAP, POP3 and SMTP:
// endless lines and SASL responses close the connection without being buffered, absurd and
// oversize literal lengths are refused without "+", literal bytes never run as commands,
// nesting is bounded, and the error budget holds when every bad command arrives in one packet.
//
// Already covered elsewhere: exact bounds (a line of exactly N octets passes, N+1 fails),
// one-chunk versus byte-by-byte parsing of each case, digit caps and command totals:
// unit/imap-parser.test.ts, unit/pop3-machine.test.ts, unit/smtp-machine.test.ts; the IMAP
// budget and an IMAP oversize line over a socket: integration/imap-session.test.ts. The
// fuzz-*.test.ts files check the buffer bounds for arbitrary input.
import { describe, expect, it } from 'vitest';
import { SASL_MAX_TOKEN_BYTES } from '../../src/bounds.js';
import { greeted, type Proto, proxyConfig } from '../helpers/hostile.js';
import { dovecotWithProxy } from '../helpers/rig.js';
import type { RawClient } from '../helpers/raw-client.js';

const rig = dovecotWithProxy();

/** Keeps sending `chunk` until the rig.proxy closes the connection (at most `max` chunks): a
 *  rig.proxy that buffered instead of closing would never close and the test would fail. */
async function floodUntilClosed(c: RawClient, chunk: Buffer, max = 256): Promise<number> {
  let sent = 0;
  for (let i = 0; i < max && !c.closed; i++) {
    await new Promise<void>((r) => c.socket.write(chunk, () => r()));
    sent += chunk.length;
  }
  await c.waitClosed();
  return sent;
}

describe('an endless line', () => {
  const cases: [Proto, string, RegExp][] = [
    ['imap', 'a LOGIN ', /^\* BAD Line too long\r\n\* BYE /m],
    ['pop3', 'USER ', /^-ERR Line too long\.\r\n$/],
    ['smtp', 'EHLO ', /^500 5\.5\.2 Line too long\r\n421 4\.7\.0 /m],
  ];
  it.each(cases)('%s: error reply and close, never buffered (a 16 MiB flood is cut off)', async (proto, start, reply) => {
    const c = await greeted(proto, rig.proxy.port(`${proto}-plain`), { localAddress: '127.0.41.1' });
    c.write(start);
    await floodUntilClosed(c, Buffer.alloc(64 * 1024, 0x78));
    expect(c.received).toMatch(reply);
  });
});

describe('an oversize SASL response', () => {
  const cases: [Proto, string, RegExp, RegExp][] = [
    // Each protocol reads an answer to a SASL challenge up to SASL_MAX_TOKEN_BYTES.
    ['imap', 'a AUTHENTICATE PLAIN\r\n', /^\+ \r\n/, /^\* BAD Line too long\r\n\* BYE /m],
    ['pop3', 'AUTH PLAIN\r\n', /^\+ \r\n/, /^-ERR Line too long\.\r\n$/m],
    ['smtp', 'EHLO c\r\nAUTH PLAIN\r\n', /^334 \r\n/m, /^500 5\.5\.2 Line too long\r\n421 /m],
  ];
  it.each(cases)('%s: a response over the SASL bound closes; no login is attempted', async (proto, auth, challenge, reply) => {
    const c = await greeted(proto, rig.proxy.port(`${proto}-plain`), { localAddress: '127.0.41.2' });
    c.write(auth);
    await c.waitFor(challenge);
    c.clear();
    // Well past the bound (SMTP reads AUTH lines up to the token bound plus the command
    // prefix, and answers a token just over the bound with 501 without closing).
    c.write(`${'QUFB'.repeat(SASL_MAX_TOKEN_BYTES / 4 + 256)}\r\n`);
    expect(await c.waitClosed()).toMatch(reply);
    expect(rig.proxy.log.lines.filter((l) => l.event === 'auth.attempt' && l.ip === '127.0.41.2')).toEqual([]);
  });
});

describe('IMAP literals', () => {
  async function imap(ip: string): Promise<RawClient> {
    return greeted('imap', rig.proxy.port('imap-plain'), { localAddress: ip });
  }

  it('absurd and oversize synchronizing literals are refused without "+", and the session goes on', async () => {
    const c = await imap('127.0.41.10');
    c.write('a LOGIN {99999999999999999999}\r\nb LOGIN {4294967297}\r\nc ID ({8193}\r\nd NOOP\r\n');
    const text = await c.waitFor(/^d OK /m);
    expect(text).not.toMatch(/^\+/m);
    expect(text).toMatch(/^a BAD [^\r]*\r\nb BAD [^\r]*\r\nc BAD [^\r]*\r\nd OK /m);
    c.close();
  });

  it('an oversize non-synchronizing literal closes: its bytes are never parsed', async () => {
    const c = await imap('127.0.41.11');
    c.write(`a ID ({8193+}\r\nb LOGOUT\r\n${'x'.repeat(200)}\r\n`);
    const text = await c.waitClosed();
    expect(text).toMatch(/^a BAD Literal too big\r\n\* BYE /);
    expect(text).not.toMatch(/Logging out|^b /m);
  });

  it('literal data is never run as a command (nginx-tests: a03 FOOBAR {10+} with a LOGOUT inside)', async () => {
    const c = await imap('127.0.41.12');
    c.write('a03 FOOBAR {10+}\r\nb LOGOUT\r\n\r\nc NOOP\r\n');
    const text = await c.waitFor(/^c OK /m);
    expect(text).toMatch(/^a03 BAD [^\r]*\r\nc OK /);
    c.write('a04 FOOBAR {10}\r\n');
    await c.waitFor(/^\+ /m);
    c.write('b LOGOUT\r\n\r\nd NOOP\r\n');
    expect(await c.waitFor(/^d OK /m)).not.toMatch(/BYE|Logging out/);
    c.close();
  });

  it('a LOGIN with synchronizing literals reaches Dovecot byte for byte', async () => {
    const c = await imap('127.0.41.13');
    c.write('a LOGIN {5}\r\n');
    await c.waitFor(/^\+ /m);
    c.write('alice {10}\r\n');
    await c.waitFor(/^\+ [^\r]*\r\n\+ /m);
    c.write('alice-pass\r\n');
    await c.waitFor(/^a OK /m);
    c.close();
  });

  it('nesting past the bound is BAD, and the session goes on', async () => {
    const c = await imap('127.0.41.14');
    c.write(`a ID ${'('.repeat(64)}${')'.repeat(64)}\r\nb ID ("name" "x")\r\n`);
    expect(await c.waitFor(/^b OK /m)).toMatch(/^a BAD [^\r]*\r\n\* ID NIL\r\nb OK /);
    c.close();
  });
});

describe('error budget over the wire', () => {
  const cases: [Proto, string, RegExp, RegExp][] = [
    ['pop3', 'FOO\r\n', /^-ERR Unknown command\.\r\n/gm, /-ERR Too many invalid commands; closing connection\.\r\n$/],
    ['smtp', 'FOO\r\n', /^500 5\.5\.2 /gm, /^421 4\.7\.0 mx\.test Too many errors; closing connection\r\n$/m],
  ];
  it.each(cases)('%s: ten bad commands in one packet, then goodbye and close; later ones are never answered', async (proto, bad, each, bye) => {
    const c = await greeted(proto, rig.proxy.port(`${proto}-plain`), { localAddress: '127.0.41.20' });
    c.write(`${bad.repeat(15)}QUIT\r\n`);
    const text = await c.waitClosed();
    expect(text.match(each)).toHaveLength(10);
    expect(text).toMatch(bye);
    expect(text).not.toMatch(/^(\+OK|221)/m);
  });
});
