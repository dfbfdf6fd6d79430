// PROXY protocol in (v1 and v2, before TLS on implicit listeners), against a real Dovecot:
// the header's source is the client for logs, limits and Dovecot; only trusted balancers may
// send one, and anything else from them closes the connection; the pre-auth deadline covers
// a header that never ends. Odd addresses in headers: proxy-header-addresses.test.ts.
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { GREETING, identityRig, LB, LOGGED_IN, login, loginLine } from '../helpers/identity.js';
import type { TestProxy } from '../helpers/proxy.js';
import { v2Header } from '../helpers/proxy-bytes.js';
import { RawClient } from '../helpers/raw-client.js';

const id = identityRig();
const { connect, dovecotLog } = id;

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
    const attempt = id.proxy.log.lines.find((l) => l.event === 'auth.attempt' && l.ip === '203.0.113.9');
    expect(attempt).toMatchObject({ outcome: 'ok', port: 40001, proxy: LB, proxyHeader: 'v1', listener: 'imap-in' });
  });

  it.each([['pop3', '2001:db8::9'], ['smtp', '198.51.100.9']] as const)('v2 on %s: client %s reaches Dovecot', async (p, src) => {
    const c = await connect(`${p}-in`, '127.0.61.2');
    c.write(v2Header(src, 40002, '192.0.2.1', 110));
    await c.waitFor(GREETING[p]);
    expect(await login(c, p)).toMatch(LOGGED_IN[p]);
    c.close();
    await dovecotLog(loginLine(p, src));
    expect(id.proxy.log.lines.find((l) => l.event === 'auth.attempt' && l.ip === src)).toMatchObject({ proxyHeader: 'v2', proxy: '127.0.61.2' });
  });

  it('implicit TLS: the header comes first, then the handshake (both in one segment)', async () => {
    const header = Buffer.from('PROXY TCP4 203.0.113.10 192.0.2.1 40003 993\r\n');
    const plain = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port: id.proxy.port('imaps-in'), localAddress: LB }, () => resolve(s));
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
    const open = id.proxy.log.lines.find((l) => l.event === 'session.open' && l.proxy === '127.0.61.3');
    expect(id.proxy.log.lines.find((l) => l.event === 'session.close' && l.session === open?.session)).toMatchObject({ ip: '127.0.61.3', proxyHeader: 'local' });
  });

  it('from an address not in trustedProxies the connection is closed without a word, header or not', async () => {
    for (const data of ['PROXY TCP4 203.0.113.11 192.0.2.1 1 143\r\n', '']) {
      const c = await connect('imap-in', '127.0.60.50');
      if (data) c.write(data);
      expect(await c.waitClosed()).toBe('');
    }
    expect(id.proxy.log.lines.filter((l) => l.event === 'proxy.refused' && l.proxy === '127.0.60.50')).toHaveLength(2);
    expect(id.proxy.log.raw.join('\n')).not.toContain('203.0.113.11');
  });

  it('from a trusted balancer, anything but a valid header closes the connection without a word', async () => {
    for (const data of ['a CAPABILITY\r\n', 'PROXY TCP4 999.1.1.1 192.0.2.1 1 143\r\n', `PROXY UNKNOWN ${'x'.repeat(120)}`, '\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\xff']) {
      const c = await connect('imap-in', '127.0.61.4');
      c.write(Buffer.from(data, 'latin1'));
      expect(await c.waitClosed()).toBe('');
    }
    expect(id.proxy.log.lines.filter((l) => l.event === 'proxy.refused' && l.proxy === '127.0.61.4')).toHaveLength(4);
  });

  it('a listener without proxyProtocol answers a PROXY line as a bad command and keeps the socket address', async () => {
    const c = await connect('imap-plain', '127.0.60.51');
    c.write('PROXY TCP4 203.0.113.12 192.0.2.1 1 143\r\n');
    await c.waitFor(/^\* OK [^\r]*\r\nPROXY BAD [^\r]*\r\n$/);
    expect(await login(c, 'imap')).toMatch(LOGGED_IN.imap);
    c.close();
    expect(id.proxy.log.lines.find((l) => l.event === 'auth.attempt' && l.listener === 'imap-plain' && l.ip === '127.0.60.51')).toBeDefined();
    expect(id.proxy.log.raw.join('\n')).not.toContain('203.0.113.12');
  });
});

describe('PROXY protocol in: limits and the deadline', () => {
  let limited: TestProxy;
  beforeAll(async () => {
    limited = await id.rig.proxy({
      listeners: [{ name: 'imap-in', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap', proxyProtocol: true }],
      backends: { imap: { host: '127.0.0.1', port: id.rig.dovecot.ports.imap } },
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
