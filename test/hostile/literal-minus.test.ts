// Hostile: LITERAL- (RFC 7888 §4) over real sockets, in front of a real Dovecot 2.3 set to
// offer LITERAL- only (imap_literal_minus = yes). mailgate then advertises LITERAL- and holds
// clients to its 4096-octet cap on non-synchronizing literals: a larger {n+} gets BAD [TOOBIG],
// BYE [TOOBIG] and the close (the bytes sent with it never run, as Dovecot itself answers with
// BYE), while literals within the cap and synchronizing ones go on working, logins included.
//
// Already covered elsewhere: the parser and machine cases one chunk and byte by byte
// (unit/imap-parser.test.ts, unit/imap-machine.test.ts), LITERAL+ backends (parser-limits).
import { beforeAll, describe, expect, it } from 'vitest';
import { IMAP_LITERAL_MINUS_MAX_BYTES as MAX } from '../../src/bounds.js';
import { greeted, proxyConfig } from '../helpers/hostile.js';
import type { TestProxy } from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile } from '../helpers/rig.js';

const rig = dovecotForFile({ extraConf: 'imap_literal_minus = yes\n' });
let proxy: TestProxy;
beforeAll(async () => {
  proxy = await rig.proxy(proxyConfig(rig.dovecot));
});

/** A client of mailgate's plaintext IMAP listener from its own address. */
async function client(n: number): Promise<RawClient> {
  return greeted('imap', proxy.port('imap-plain'), { localAddress: `127.0.76.${n}` });
}

/** Bytes a client sends unasked after {n+}: commands that must never run. */
const payload = (n: number) => 'b LOGOUT\r\nc LOGIN alice alice-pass\r\n'.repeat(Math.ceil(n / 10)).slice(0, n);

describe('LITERAL- in front of a Dovecot that offers only LITERAL-', () => {
  it('Dovecot offers LITERAL- and not LITERAL+, and mailgate advertises the same', async () => {
    const direct = await RawClient.connect(rig.dovecot.ports.imap);
    const theirs = await direct.waitFor(/^\* OK .*\r\n/);
    direct.close();
    expect(theirs).toMatch(/ LITERAL- /);
    expect(theirs).not.toMatch(/LITERAL\+/);
    const c = await RawClient.connect(proxy.port('imap-plain'), { localAddress: '127.0.76.1' });
    const ours = await c.waitFor(/^\* OK .*\r\n/);
    c.close();
    expect(ours).toMatch(/ LITERAL- /);
    expect(ours).not.toMatch(/LITERAL\+/);
  });

  it(`a {${MAX + 1}+} gets BAD [TOOBIG], BYE [TOOBIG] and the close; the bytes sent with it never run; Dovecot answers BYE too`, async () => {
    const bytes = `a LOGIN {5+}\r\nalice {${MAX + 1}+}\r\n${payload(MAX + 1)}\r\nd NOOP\r\n`;
    const c = await client(2);
    c.write(bytes);
    const text = await c.waitClosed();
    expect(text).toBe(`a BAD [TOOBIG] Non-synchronizing literal over ${MAX} octets\r\n* BYE [TOOBIG] Literal too big; closing.\r\n`);
    expect(proxy.log.lines.filter((l) => l.event === 'auth.attempt' && l.ip === '127.0.76.2')).toEqual([]);
    // The same bytes straight to Dovecot: an untagged BYE and the close, nothing run either.
    const direct = await RawClient.connect(rig.dovecot.ports.imap);
    await direct.waitFor(/^\* OK .*\r\n/);
    direct.clear();
    direct.write(bytes);
    const theirs = await direct.waitClosed();
    expect(theirs).toMatch(/^\* BYE /m);
    expect(theirs).not.toMatch(/^[a-d] (?:OK|NO)|Logging out/m);
  });

  it(`a {${MAX}+} within the cap is read and the session goes on in step`, async () => {
    const c = await client(3);
    c.write(`a ID ("name" {${MAX}+}\r\n${payload(MAX)})\r\nb NOOP\r\n`);
    expect(await c.waitFor(/^b OK /m)).toMatch(/^\* ID NIL\r\na OK [^\r]*\r\nb OK /);
    c.close();
  });

  it('a login with non-synchronizing literals reaches Dovecot (LITERAL- there too) and succeeds', async () => {
    const c = await client(4);
    c.write('a LOGIN {5+}\r\nalice {10+}\r\nalice-pass\r\n');
    await c.waitFor(/^a OK /m);
    c.close();
  });

  it(`a synchronizing {${MAX + 1}} is still asked for with "+" and read`, async () => {
    const c = await client(5);
    c.write(`a ID ("name" {${MAX + 1}}\r\n`);
    await c.waitFor(/^\+ /m);
    c.write(`${payload(MAX + 1)})\r\nb NOOP\r\n`);
    expect(await c.waitFor(/^b OK /m)).toMatch(/\* ID NIL\r\na OK [^\r]*\r\nb OK /);
    c.close();
  });
});
