// Pre-auth session bounds and concurrency, against a real Dovecot: absolute deadlines, the
// bad-command budget, oversize lines, parallel logins against a limit, usernames with
// control characters in logs.
import { describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { dovecotForFile } from '../helpers/rig.js';
import { RawClient } from '../helpers/raw-client.js';

const rig = dovecotForFile();

async function proxyWith(limits: Record<string, unknown> = {}, timeouts: Record<string, unknown> = {}): Promise<TestProxy> {
  return rig.proxy({
    listeners: [
      { name: 'plain', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap' },
      { name: 'imaps', protocol: 'imap', listen: '127.0.0.1:0', tls: 'implicit', backend: 'imap' },
    ],
    tls: { cert: rig.dovecot.cert.certPath, key: rig.dovecot.cert.keyPath },
    backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap } },
    limits: { rules: [], ...limits },
    timeouts,
  });
}

async function connected(p: TestProxy, listener = 'plain', localAddress?: string): Promise<RawClient> {
  const c = await RawClient.connect(p.port(listener), localAddress ? { localAddress } : {});
  await c.waitFor(/\r\n/);
  return c;
}

describe('pre-auth bounds', () => {
  it('the pre-auth deadline is absolute: trickling bytes does not extend it', async () => {
    const p = await proxyWith({}, { preauth: '600ms' });
    const c = await connected(p);
    let i = 0;
    const trickle = setInterval(() => !c.closed && c.write(i++ % 2 ? 'a NOOP\r\n' : 'b'), 100);
    const text = await c.waitClosed();
    clearInterval(trickle);
    expect(text).toMatch(/\* BYE Disconnected for inactivity\.\r\n$/);
  });

  it('a TLS handshake that never starts is cut off by the handshake deadline', async () => {
    const p = await proxyWith({}, { tlsHandshake: '300ms' });
    const c = await RawClient.connect(p.port('imaps'));
    expect(await c.waitClosed()).toBe('');
  });

  it('after maxBadCommands bad commands, even pipelined in one packet, BYE and close', async () => {
    const p = await proxyWith({ maxBadCommands: 3 });
    const c = await connected(p);
    c.write('a FOO\r\nb BAR\r\nc BAZ\r\nd NOOP\r\ne NOOP\r\n');
    const text = await c.waitClosed();
    expect(text.match(/^[abc] BAD /gm)).toHaveLength(3);
    expect(text).toMatch(/\* BYE Too many invalid commands\.\r\n$/);
    expect(text).not.toMatch(/^[de] /m);
  });

  it('an oversize line gets an error and the connection closes without buffering the rest', async () => {
    const p = await proxyWith();
    const c = await connected(p);
    c.write(`a LOGIN ${'x'.repeat(20_000)}`);
    const text = await c.waitClosed();
    expect(text).toMatch(/BAD|BYE/);
    expect(text).not.toMatch(/^a OK/m);
  });

  it('a user name with control characters is refused, never sent on, and logged escaped', async () => {
    const p = await proxyWith();
    const c = await connected(p);
    c.write('a LOGIN {10+}\r\nal\x1b[31mice pw\r\n');
    const text = await c.waitFor(/^a (NO|BAD)/m);
    expect(text).not.toMatch(/^a OK/m);
    c.close();
    const line = p.log.raw.find((l) => l.includes('"outcome":"invalid"'));
    expect(line).toBeDefined();
    expect(line).not.toContain('\x1b');
    expect(line).toContain('\\\\x1b');
    expect(rig.dovecot.readLog()).not.toContain('\x1b');
  });
});

describe('concurrency', () => {
  it('50 parallel attempts against limit 5 let exactly 5 through', async () => {
    const p = await proxyWith({ rules: [{ name: 'ip-logins', key: 'ip', count: 'attempts', limit: 5, window: '1h' }] });
    const results = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const c = await connected(p, 'plain', '127.0.6.1');
        c.write(`t${i} LOGIN alice alice-pass\r\n`);
        const text = await c.waitFor(new RegExp(`t${i} (OK|NO)`));
        c.close();
        return /^t\d+ OK/m.test(text) ? 'ok' : /UNAVAILABLE/.test(text) ? 'limited' : 'other';
      }),
    );
    expect(results.filter((r) => r === 'ok')).toHaveLength(5);
    expect(results.filter((r) => r === 'limited')).toHaveLength(45);
  });

  it('20 parallel wrong passwords cannot overshoot a failures limit of 3', async () => {
    const p = await proxyWith({ rules: [{ name: 'ip-failures', key: 'ip', count: 'failures', limit: 3, window: '10m' }] });
    const mark = await rig.dovecot.logMark();
    const results = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const c = await connected(p, 'plain', '127.0.6.2');
        c.write(`f${i} LOGIN bob not-bobs-password\r\n`);
        const text = await c.waitFor(new RegExp(`f${i} NO`));
        c.close();
        return /AUTHENTICATIONFAILED/.test(text) ? 'fail' : /UNAVAILABLE/.test(text) ? 'limited' : 'other';
      }),
    );
    expect(results.filter((r) => r === 'fail')).toHaveLength(3);
    expect(results.filter((r) => r === 'limited')).toHaveLength(17);
    // Dovecot itself saw exactly three guesses.
    expect((await rig.dovecot.settledLog(mark)).match(/Password mismatch/g)).toHaveLength(3);
  });
});
