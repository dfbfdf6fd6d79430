// Odd addresses in PROXY headers from a trusted balancer, against a real Dovecot: each one is
// refused (the connection closed without a word, proxy.refused with the reason, nothing of it
// in mailgate's log) or reaches Dovecot as the normalised client address, by ID, XCLIENT and
// PROXY out alike; no login is ever logged as mailgate's own address (127.0.0.1 here).
// Ordinary headers: proxy-protocol-in.test.ts; the rules: src/server/proxy-header.ts.
import { describe, expect, it } from 'vitest';
import { GREETING, identityRig, LOGGED_IN, login, loginLine, PROTOCOLS, type Proto } from '../helpers/identity.js';
import { sslTlv, v2Header } from '../helpers/proxy-bytes.js';

const id = identityRig();
const { connect, dovecotLog } = id;

/** A balancer of its own per connection (all in limits.trustedProxies 127.0.61.0/24), so each
 *  refusal is found by its `proxy`. */
let nextBalancer = 100;
const balancer = () => `127.0.61.${nextBalancer++}`;

/** The client addresses that logged in, as Dovecot must log them. */
const loggedIn: string[] = [];

describe('PROXY header addresses: refused before anything else', () => {
  const v1 = (addresses: string) => Buffer.from(`PROXY ${addresses} 40000 143\r\n`, 'latin1');
  const v2 = (src: string, dst: string) => v2Header(src, 40000, dst, 143);
  it.each([
    ['v1 fe80::1%eth0 (the reported one)', v1('TCP6 fe80::1%eth0 2001:db8::1'), /^v1 source: an address with a zone id/],
    ['v1 IPv4-mapped loopback with a zone id', v1('TCP6 ::ffff:127.0.0.1%lo 2001:db8::1'), /^v1 source: an address with a zone id/],
    ['v1 127.0.0.1', v1('TCP4 127.0.0.1 192.0.2.1'), /^v1 source: a loopback address/],
    ['v1 ::1', v1('TCP6 ::1 2001:db8::1'), /^v1 source: a loopback address/],
    ['v1 ::ffff:127.0.0.1', v1('TCP6 ::ffff:127.0.0.1 2001:db8::1'), /^v1 source: a loopback address/],
    ['v1 ::127.0.0.1 (IPv4-compatible)', v1('TCP6 ::127.0.0.1 2001:db8::1'), /^v1 source: an IPv4-compatible/],
    ['v1 127.1', v1('TCP4 127.1 192.0.2.1'), /^v1 addresses do not match their family$/],
    ['v1 0.0.0.0', v1('TCP4 0.0.0.0 192.0.2.1'), /^v1 source: an unspecified address/],
    ['v1 ::', v1('TCP6 :: 2001:db8::1'), /^v1 source: an unspecified address/],
    ['v1 255.255.255.255', v1('TCP4 255.255.255.255 192.0.2.1'), /^v1 source: a broadcast address/],
    ['v1 224.0.0.1', v1('TCP4 224.0.0.1 192.0.2.1'), /^v1 source: a multicast address/],
    ['v1 ff02::1', v1('TCP6 ff02::1 2001:db8::1'), /^v1 source: a multicast address/],
    ['v1 a loopback destination', v1('TCP4 203.0.113.50 127.0.0.1'), /^v1 destination: a loopback address/],
    ['v2 127.0.0.1', v2('127.0.0.1', '192.0.2.1'), /^v2 source: a loopback address/],
    ['v2 ::ffff:127.0.0.1', v2('::ffff:127.0.0.1', '2001:db8::1'), /^v2 source: a loopback address/],
    ['v2 ::7f00:1 (IPv4-compatible)', v2('::7f00:1', '2001:db8::1'), /^v2 source: an IPv4-compatible/],
    ['v2 0.0.0.0', v2('0.0.0.0', '192.0.2.1'), /^v2 source: an unspecified address/],
    ['v2 ff02::1', v2('ff02::1', '2001:db8::1'), /^v2 source: a multicast address/],
  ])('%s', async (_what, header, reason) => {
    const lb = balancer();
    const c = await connect('imap-in', lb);
    // A login right behind the header, in the same segment: it must never run.
    c.write(Buffer.concat([header, Buffer.from('a LOGIN alice alice-pass\r\n')]));
    expect(await c.waitClosed()).toBe('');
    expect(id.proxy.log.lines.find((l) => l.event === 'proxy.refused' && l.proxy === lb)).toMatchObject({ reason: expect.stringMatching(reason) });
    expect(id.proxy.log.lines.filter((l) => l.proxy === lb && l.event === 'auth.attempt')).toEqual([]);
  });

  it.each(PROTOCOLS)('%s: a zone id is refused for every protocol, and never logged', async (p) => {
    const lb = balancer();
    const c = await connect(`${p}-in`, lb);
    c.write(`PROXY TCP6 fe80::1%eth0 2001:db8::1 40000 143\r\n`);
    expect(await c.waitClosed()).toBe('');
    expect(id.proxy.log.lines.find((l) => l.event === 'proxy.refused' && l.proxy === lb)).toMatchObject({ reason: expect.stringMatching(/zone id/) });
    expect(id.proxy.log.raw.join('\n')).not.toMatch(/%eth0|%lo\b/);
  });
});

describe('PROXY header addresses: normalised, and Dovecot logs the client', () => {
  /** [what, the header for host number n, the address Dovecot must log for it]. */
  const CASES: [string, (n: number) => Buffer, (n: number) => string][] = [
    // Both ends mapped, as a dual-stack balancer reports an IPv4 connection. (A mapped source
    // beside a true IPv6 destination goes out in a PROXY header IPv4-mapped again, since a
    // header has one family: client-info's unit test.)
    ['v1 IPv4-mapped IPv6', (n) => Buffer.from(`PROXY TCP6 ::ffff:203.0.113.${n} ::ffff:192.0.2.1 40000 143\r\n`), (n) => `203.0.113.${n}`],
    ['v1 link-local IPv6 written out, upper case', (n) => Buffer.from(`PROXY TCP6 FE80:0:0:0:0:0:0:${n.toString(16).toUpperCase()} 2001:db8::1 40000 143\r\n`), (n) => `fe80::${n.toString(16)}`],
    ['v2 IPv4-mapped IPv6 bytes', (n) => v2Header(`::ffff:198.51.100.${n}`, 40000, '192.0.2.1', 143), (n) => `198.51.100.${n}`],
    ['v2 with an SSL TLV naming a client certificate whose verify failed', (n) => v2Header(`203.0.113.${n}`, 40000, '192.0.2.1', 143, sslTlv(1, 'alice')), (n) => `203.0.113.${n}`],
  ];
  /** Every way the client is told: ID (imap-in), XCLIENT (pop3-in, smtp-in), PROXY v2 out. */
  const WAYS: [string, Proto][] = [...PROTOCOLS.map((p): [string, Proto] => [`${p}-in`, p]), ['imap-in-v2', 'imap']];
  let n = 60;
  it.each(CASES.flatMap(([what, header, ip]) => WAYS.map(([listener, p]) => [what, listener, p, header, ip] as const)))('%s via %s', async (_what, listener, p, header, ip) => {
    const host = n++;
    const c = await connect(listener, balancer());
    c.write(header(host));
    await c.waitFor(GREETING[p]);
    expect(await login(c, p)).toMatch(LOGGED_IN[p]);
    c.close();
    loggedIn.push(ip(host));
    await dovecotLog(loginLine(p, ip(host)));
    expect(id.proxy.log.lines.find((l) => l.event === 'auth.attempt' && l.ip === ip(host))).toMatchObject({ outcome: 'ok', listener });
  });
});

describe('PROXY header addresses: what Dovecot saw', () => {
  // Last in the file (vitest runs a file's tests in order): every login Dovecot logged is one
  // of the clients above, none as mailgate (127.0.0.1), none as anything a refused header named.
  it('every login is logged as its client, none as mailgate', () => {
    const logins = [...id.rig.dovecot.readLog().matchAll(/Login: user=<alice>[^\n]*\brip=([^,]+),/g)].map((m) => m[1]);
    expect(logins.sort()).toEqual([...loggedIn].sort());
    expect(logins).not.toContain('127.0.0.1');
  });
});
