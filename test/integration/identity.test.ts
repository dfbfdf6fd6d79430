// Client identity through mailgate against a real Dovecot: its own log shows each client's
// address (rip=) for IMAP, POP3 and SMTP logins forwarded with ID/XCLIENT or a PROXY header;
// client-supplied identity is never believed; PROXY headers in from trusted balancers only.
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { freePorts, waitForPort } from '../helpers/ports.js';
import type { TestProxy } from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile } from '../helpers/rig.js';

let proxy: TestProxy;
const ha = { imap: 0, pop3: 0, smtp: 0, imaps: 0 };
const PROTOCOLS = ['imap', 'pop3', 'smtp'] as const;
type Proto = (typeof PROTOCOLS)[number];
const LB = '127.0.61.1';

beforeAll(async () => {
  [ha.imap, ha.pop3, ha.smtp, ha.imaps] = (await freePorts(4)) as [number, number, number, number];
});
// Extra Dovecot listeners that expect a PROXY header (its "haproxy" support) from loopback,
// on the ports taken above.
const rig = dovecotForFile(() => ({
  sink: true,
  extraConf: `
haproxy_trusted_networks = 127.0.0.0/8
service imap-login {
  inet_listener imap-haproxy {
    port = ${ha.imap}
    haproxy = yes
  }
  inet_listener imaps-haproxy {
    port = ${ha.imaps}
    haproxy = yes
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3-haproxy {
    port = ${ha.pop3}
    haproxy = yes
  }
}
service submission-login {
  inet_listener submission-haproxy {
    port = ${ha.smtp}
    haproxy = yes
  }
}
`,
}));

beforeAll(async () => {
  const { dovecot } = rig;
  await Promise.all(Object.values(ha).map((p) => waitForPort(p)));
  const plainPort = { imap: dovecot.ports.imap, pop3: dovecot.ports.pop3, smtp: dovecot.ports.submission };
  const listener = (name: string, protocol: Proto, backend: string, extra: Record<string, unknown> = {}) => ({
    name, protocol, listen: '127.0.0.1:0', tls: 'none', backend, hostname: 'mx.test', ...extra,
  });
  proxy = await rig.proxy({
    listeners: [
      ...PROTOCOLS.flatMap((p) => [
        listener(`${p}-plain`, p, p),
        listener(`${p}-fwd`, p, `${p}-fwd`),
        listener(`${p}-v1`, p, `${p}-v1`),
        listener(`${p}-v2`, p, `${p}-v2`),
        listener(`${p}-in`, p, `${p}-fwd`, { proxyProtocol: true }),
      ]),
      listener('imaps-in', 'imap', 'imap-fwd', { tls: 'implicit', proxyProtocol: true }),
      listener('imap-starttls', 'imap', 'imap', { tls: 'starttls' }),
      listener('imap-v2-tls', 'imap', 'imap-v2-tls'),
    ],
    tls: { cert: dovecot.cert.certPath, key: dovecot.cert.keyPath },
    backends: Object.fromEntries([
      ...PROTOCOLS.flatMap((p) => [
        [p, { host: '127.0.0.1', port: plainPort[p] }],
        [`${p}-fwd`, { host: '127.0.0.1', port: plainPort[p], forwardClientInfo: true }],
        [`${p}-v1`, { host: '127.0.0.1', port: ha[p], proxyProtocol: 'v1' }],
        [`${p}-v2`, { host: '127.0.0.1', port: ha[p], proxyProtocol: 'v2' }],
      ]),
      ['imap-v2-tls', { host: '127.0.0.1', port: ha.imaps, proxyProtocol: 'v2', tls: 'implicit', ca: dovecot.cert.certPath, servername: 'localhost' }],
    ]),
    limits: { trustedProxies: ['127.0.61.0/24'] },
  });
});

/** Dovecot writes its log asynchronously: wait (bounded) for a line to appear. */
async function dovecotLog(pattern: RegExp): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const log = rig.dovecot.readLog();
    if (pattern.test(log)) return log;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`dovecot log never matched ${pattern}:\n${rig.dovecot.readLog().slice(-3000)}`);
}

const SERVICE: Record<Proto, string> = { imap: 'imap-login', pop3: 'pop3-login', smtp: 'submission-login' };
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** Dovecot's own login line for alice from `ip`. */
const loginLine = (p: Proto, ip: string) => new RegExp(`${SERVICE[p]}: Info: Login: user=<alice>[^\\n]*\\brip=${esc(ip)},`);

const GREETING: Record<Proto, RegExp> = { imap: /^\* OK [^\r]*\r\n/, pop3: /^\+OK [^\r]*\r\n/, smtp: /^220 [^\r]*\r\n/ };

/** The protocol's login as a client sends it, after whatever came before (cleared); resolves
 *  with what the login itself got back. */
async function login(c: RawClient, p: Proto): Promise<string> {
  c.clear();
  if (p === 'imap') {
    c.write('a LOGIN alice alice-pass\r\n');
    return c.waitFor(/^a (OK|NO|BAD) [^\r]*\r\n/m);
  }
  if (p === 'pop3') {
    c.write('USER alice\r\n');
    await c.waitFor(/^(\+OK|-ERR)[^\r]*\r\n/);
    c.clear();
    c.write('PASS alice-pass\r\n');
    return c.waitFor(/^(\+OK|-ERR)[^\r]*\r\n/);
  }
  c.write('EHLO client.test\r\n');
  await c.waitFor(/^250 [^\r]*\r\n/m);
  c.clear();
  c.write(`AUTH PLAIN ${Buffer.from('\0alice\0alice-pass').toString('base64')}\r\n`);
  return c.waitFor(/^\d{3} [^\r]*\r\n/m);
}
const LOGGED_IN: Record<Proto, RegExp> = { imap: /^a OK /m, pop3: /^\+OK Logged in/, smtp: /^235 / };

async function connect(listener: string, localAddress: string): Promise<RawClient> {
  const c = await RawClient.connect(proxy.port(listener), { localAddress });
  return c;
}

describe('client identity out: Dovecot logs the client, not mailgate', () => {
  it.each(PROTOCOLS.map((p, i) => [p, `127.0.60.${5 + i}`] as const))('%s with forwardClientInfo (ID / XCLIENT)', async (p, ip) => {
    const c = await connect(`${p}-fwd`, ip);
    await c.waitFor(GREETING[p]);
    expect(await login(c, p)).toMatch(LOGGED_IN[p]);
    c.close();
    const log = await dovecotLog(loginLine(p, ip));
    // The session id mailgate logged is the one Dovecot logs (ID x-session-id, XCLIENT SESSION).
    const attempt = proxy.log.lines.find((l) => l.event === 'auth.attempt' && l.ip === ip);
    expect(attempt).toMatchObject({ outcome: 'ok', listener: `${p}-fwd` });
    if (p !== 'pop3') expect(log).toMatch(new RegExp(`rip=${esc(ip)},[^\\n]*session=<${attempt!.session as string}>`));
  });

  it.each(PROTOCOLS.flatMap((p, i) => (['v1', 'v2'] as const).map((v, j) => [p, v, `127.0.60.${10 + i * 2 + j}`] as const)))(
    '%s with a PROXY %s header',
    async (p, v, ip) => {
      const c = await connect(`${p}-${v}`, ip);
      await c.waitFor(GREETING[p]);
      expect(await login(c, p)).toMatch(LOGGED_IN[p]);
      c.close();
      await dovecotLog(loginLine(p, ip));
    },
  );

  it('a PROXY header to an implicit-TLS backend goes before the handshake', async () => {
    const c = await connect('imap-v2-tls', '127.0.60.16');
    await c.waitFor(GREETING.imap);
    expect(await login(c, 'imap')).toMatch(LOGGED_IN.imap);
    c.close();
    expect(await dovecotLog(loginLine('imap', '127.0.60.16'))).toMatch(/rip=127\.0\.60\.16, [^\n]*\bTLS\b/);
  });

  it('without either, Dovecot sees mailgate (the baseline the two ways above change)', async () => {
    const c = await connect('imap-plain', '127.0.60.30');
    await c.waitFor(GREETING.imap);
    c.write('z ID ("name" "baseline-client")\r\n');
    await c.waitFor(/z OK /);
    expect(await login(c, 'imap')).toMatch(LOGGED_IN.imap);
    c.close();
    const log = await dovecotLog(/imap-login: Info: Login: user=<alice>[^\n]*rip=127\.0\.0\.1,/);
    expect(log).not.toMatch(/rip=127\.0\.60\.30\b/);
  });
});

describe('client-supplied identity is never believed', () => {
  it.each([
    ['imap', '127.0.60.40', 'z ID ("x-originating-ip" "6.6.6.6" "x-originating-port" "1" "x-session-id" "spoofed6")\r\nPROXY TCP4 6.6.6.6 127.0.0.1 1 143\r\n', /^\* ID NIL\r\nz OK [^\r]*\r\nPROXY BAD [^\r]*\r\n$/],
    ['pop3', '127.0.60.41', 'XCLIENT ADDR=6.6.6.6 PORT=1\r\nXOIP 6.6.6.6\r\nPROXY TCP4 6.6.6.6 127.0.0.1 1 110\r\n', /^(-ERR Unknown command\.\r\n){3}$/],
    ['smtp', '127.0.60.42', 'XCLIENT ADDR=6.6.6.6 PORT=1\r\nXFORWARD ADDR=6.6.6.6\r\nPROXY TCP4 6.6.6.6 127.0.0.1 1 587\r\n', /^(500 5\.5\.2 Command not recognized\r\n){3}$/],
  ] as const)('%s: ID x-*, XCLIENT, XOIP, XFORWARD and PROXY lines from the client change nothing', async (p, ip, spoof, answers) => {
    const c = await connect(`${p}-fwd`, ip);
    await c.waitFor(GREETING[p]);
    c.clear();
    c.write(spoof);
    await c.waitFor(answers);
    expect(await login(c, p)).toMatch(LOGGED_IN[p]);
    c.close();
    const log = await dovecotLog(loginLine(p, ip));
    expect(log).not.toContain('6.6.6.6');
    expect(log).not.toContain('spoofed6');
    expect(proxy.log.raw.join('\n')).not.toContain('6.6.6.6');
  });
});

/** The PROXY v2 header for a TCP client (what a balancer sends). */
function v2Header(src: string, srcPort: number, dst: string, dstPort: number): Buffer {
  const six = net.isIPv6(src);
  const addr = (a: string) => (six ? Buffer.from(ipv6Bytes(a)) : Buffer.from(a.split('.').map(Number)));
  const body = Buffer.concat([addr(src), addr(dst), Buffer.from([srcPort >> 8, srcPort & 0xff, dstPort >> 8, dstPort & 0xff])]);
  return Buffer.concat([Buffer.from('0d0a0d0a000d0a515549540a', 'hex'), Buffer.from([0x21, six ? 0x21 : 0x11, 0, body.length]), body]);
}
function ipv6Bytes(a: string): number[] {
  const [head, tail] = a.split('::') as [string, string | undefined];
  const words = (s: string | undefined) => (s ? s.split(':').map((w) => parseInt(w, 16)) : []);
  const h = words(head);
  const t = words(tail);
  return [...h, ...Array(8 - h.length - t.length).fill(0), ...t].flatMap((w) => [w >> 8, w & 0xff]);
}

describe('PROXY protocol in', () => {
  it('v1 from a trusted balancer: the header source is the client for logs, limits and Dovecot', async () => {
    const c = await connect('imap-in', LB);
    // Header and the first command in one segment: the bytes after the header are the protocol's.
    c.write('PROXY TCP4 203.0.113.9 192.0.2.1 40001 143\r\nc CAPABILITY\r\n');
    await c.waitFor(/c OK /);
    expect(c.received).toMatch(/^\* OK \[CAPABILITY [^\r]*\r\n\* CAPABILITY [^\r]*\r\nc OK /);
    expect(await login(c, 'imap')).toMatch(LOGGED_IN.imap);
    c.close();
    await dovecotLog(loginLine('imap', '203.0.113.9'));
    const attempt = proxy.log.lines.find((l) => l.event === 'auth.attempt' && l.ip === '203.0.113.9');
    expect(attempt).toMatchObject({ outcome: 'ok', port: 40001, proxy: LB, proxyHeader: 'v1', listener: 'imap-in' });
  });

  it.each([['pop3', '2001:db8::9'], ['smtp', '198.51.100.9']] as const)('v2 on %s: client %s reaches Dovecot', async (p, src) => {
    const c = await connect(`${p}-in`, '127.0.61.2');
    c.write(v2Header(src, 40002, '192.0.2.1', 110));
    await c.waitFor(GREETING[p]);
    expect(await login(c, p)).toMatch(LOGGED_IN[p]);
    c.close();
    await dovecotLog(loginLine(p, src));
    expect(proxy.log.lines.find((l) => l.event === 'auth.attempt' && l.ip === src)).toMatchObject({ proxyHeader: 'v2', proxy: '127.0.61.2' });
  });

  it('implicit TLS: the header comes first, then the handshake (both in one segment)', async () => {
    const header = Buffer.from('PROXY TCP4 203.0.113.10 192.0.2.1 40003 993\r\n');
    const plain = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: proxy.port('imaps-in'), localAddress: LB }, () => resolve(s));
      s.once('error', reject);
    });
    // A stream that glues the header to the ClientHello, as a balancer's first write may.
    let first = true;
    const glued = new Duplex({
      read() {
        plain.resume();
      },
      write(chunk: Buffer, _enc, cb) {
        plain.write(first ? Buffer.concat([header, chunk]) : chunk, cb);
        first = false;
      },
      final(cb) {
        plain.end();
        cb();
      },
    });
    plain.on('data', (d: Buffer) => glued.push(d) || plain.pause());
    plain.on('end', () => glued.push(null));
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ socket: glued, rejectUnauthorized: false }, () => resolve(s));
      s.once('error', reject);
    });
    const c = RawClient.wrap(secure);
    await c.waitFor(GREETING.imap);
    expect(await login(c, 'imap')).toMatch(LOGGED_IN.imap);
    c.close();
    plain.destroy();
    await dovecotLog(loginLine('imap', '203.0.113.10'));
  });

  it('a LOCAL header (a health check) leaves the balancer as the client', async () => {
    const c = await connect('imap-in', '127.0.61.3');
    c.write(Buffer.from('0d0a0d0a000d0a515549540a20000000', 'hex'));
    await c.waitFor(GREETING.imap);
    c.write('a LOGOUT\r\n');
    await c.waitClosed();
    const open = proxy.log.lines.find((l) => l.event === 'session.open' && l.proxy === '127.0.61.3');
    expect(proxy.log.lines.find((l) => l.event === 'session.close' && l.session === open?.session)).toMatchObject({ ip: '127.0.61.3', proxyHeader: 'local' });
  });

  it('from an address not in trustedProxies the connection is closed without a word, header or not', async () => {
    for (const data of ['PROXY TCP4 203.0.113.11 192.0.2.1 1 143\r\n', '']) {
      const c = await connect('imap-in', '127.0.60.50');
      if (data) c.write(data);
      expect(await c.waitClosed()).toBe('');
    }
    expect(proxy.log.lines.filter((l) => l.event === 'proxy.refused' && l.proxy === '127.0.60.50')).toHaveLength(2);
    expect(proxy.log.raw.join('\n')).not.toContain('203.0.113.11');
  });

  it('from a trusted balancer, anything but a valid header closes the connection without a word', async () => {
    for (const data of ['a CAPABILITY\r\n', 'PROXY TCP4 999.1.1.1 192.0.2.1 1 143\r\n', `PROXY UNKNOWN ${'x'.repeat(120)}`, '\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\xff']) {
      const c = await connect('imap-in', '127.0.61.4');
      c.write(Buffer.from(data, 'latin1'));
      expect(await c.waitClosed()).toBe('');
    }
    expect(proxy.log.lines.filter((l) => l.event === 'proxy.refused' && l.proxy === '127.0.61.4')).toHaveLength(4);
  });

  it('a listener without proxyProtocol answers a PROXY line as a bad command and keeps the socket address', async () => {
    const c = await connect('imap-plain', '127.0.60.51');
    c.write('PROXY TCP4 203.0.113.12 192.0.2.1 1 143\r\n');
    await c.waitFor(/^\* OK [^\r]*\r\nPROXY BAD [^\r]*\r\n$/);
    expect(await login(c, 'imap')).toMatch(LOGGED_IN.imap);
    c.close();
    expect(proxy.log.lines.find((l) => l.event === 'auth.attempt' && l.listener === 'imap-plain' && l.ip === '127.0.60.51')).toBeDefined();
    expect(proxy.log.raw.join('\n')).not.toContain('203.0.113.12');
  });
});

describe('PROXY protocol in: limits and the deadline', () => {
  let limited: TestProxy;
  beforeAll(async () => {
    limited = await rig.proxy({
      listeners: [{ name: 'imap-in', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap', proxyProtocol: true }],
      backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap } },
      limits: { trustedProxies: ['127.0.61.0/24'], rules: [{ name: 'ip-logins', key: 'ip', count: 'attempts', limit: 1, window: '1h' }] },
      timeouts: { preauth: '2s' },
    });
  });

  const via = async (src: string) => {
    const c = await RawClient.connect(limited.port('imap-in'), { localAddress: '127.0.61.5' });
    c.write(`PROXY TCP4 ${src} 192.0.2.1 40000 143\r\n`);
    await c.waitFor(GREETING.imap);
    const got = await login(c, 'imap');
    c.close();
    return got;
  };

  it('limits key on the header source, not on the balancer', async () => {
    expect(await via('198.51.100.1')).toMatch(LOGGED_IN.imap);
    expect(await via('198.51.100.1')).toMatch(/a NO \[UNAVAILABLE\] Too many login attempts/);
    expect(await via('198.51.100.2')).toMatch(LOGGED_IN.imap);
    expect(limited.log.lines.find((l) => l.event === 'auth.attempt' && l.outcome === 'limited')).toMatchObject({ ip: '198.51.100.1', proxy: '127.0.61.5', rule: 'ip-logins' });
  });

  it('the pre-auth deadline covers a balancer that never finishes its header', async () => {
    const c = await RawClient.connect(limited.port('imap-in'), { localAddress: '127.0.61.6' });
    c.write('PROXY TCP4 198.51.100.3');
    expect(await c.waitClosed(10_000)).toBe('');
  });
});

describe('pre-login capabilities match Dovecot', () => {
  const OWNED_IMAP = /^(STARTTLS|LOGINDISABLED|AUTH=.*)$/i;
  const capsOf = (text: string) => (/\* CAPABILITY ([^\r]*)\r\n/.exec(text)?.[1] ?? '').split(' ').filter(Boolean);

  async function imapCaps(port: number, ip: string, starttls = false): Promise<string[]> {
    const c = await RawClient.connect(port, { localAddress: ip });
    await c.waitFor(GREETING.imap);
    if (starttls) {
      c.write('s STARTTLS\r\n');
      await c.waitFor(/s OK /);
      await c.startTls();
    }
    c.write('a CAPABILITY\r\n');
    const caps = capsOf(await c.waitFor(/a OK /));
    c.close();
    return caps;
  }

  it('IMAP: the same list as Dovecot minus what mailgate owns, before and after STARTTLS, through PROXY-out too', async () => {
    const own = (caps: string[]) => caps.filter((c) => !OWNED_IMAP.test(c)).sort();
    const dovecotCaps = await imapCaps(rig.dovecot.ports.imap, '127.0.60.60');
    expect(dovecotCaps).toEqual(expect.arrayContaining(['IMAP4rev1', 'LITERAL+', 'IDLE', 'ENABLE']));
    for (const [listener, starttls] of [['imap-plain', false], ['imap-starttls', false], ['imap-starttls', true], ['imap-v1', false], ['imap-v2', false]] as const) {
      const mine = await imapCaps(proxy.port(listener), '127.0.60.61', starttls);
      expect(own(mine), `${listener}${starttls ? ' after STARTTLS' : ''}`).toEqual(own(dovecotCaps));
    }
  });

  it('POP3: the same CAPA as Dovecot minus STLS, USER, SASL (ours), through PROXY-out too', async () => {
    const capa = async (port: number) => {
      const c = await RawClient.connect(port, { localAddress: '127.0.60.62' });
      await c.waitFor(GREETING.pop3);
      c.clear();
      c.write('CAPA\r\n');
      const lines = (await c.waitFor(/\r\n\.\r\n/)).split('\r\n').slice(1, -2);
      c.close();
      return lines.filter((l) => !/^(STLS|USER|SASL\b.*)$/.test(l)).sort();
    };
    const dovecotCapa = await capa(rig.dovecot.ports.pop3);
    expect(dovecotCapa).toEqual(expect.arrayContaining(['TOP', 'UIDL', 'PIPELINING']));
    for (const listener of ['pop3-plain', 'pop3-v1', 'pop3-v2']) expect(await capa(proxy.port(listener)), listener).toEqual(dovecotCapa);
  });
});
