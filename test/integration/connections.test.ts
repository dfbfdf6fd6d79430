// Connection limits and connect-time refusal against a real Dovecot: per client IP, in total
// (the oldest pre-auth connection makes room, a logged-in one never does), a blocked IP
// turned away in each protocol's words before anything is read, and limits.deniedNetworks.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { startTestProxy, type TestProxy } from '../helpers/proxy.js';
import { dovecotForFile } from '../helpers/rig.js';
import { RawClient } from '../helpers/raw-client.js';

const rig = dovecotForFile();

/** IMAP, POP3 and SMTP listeners in front of the file's Dovecot, with these limits. */
function config(limits: Record<string, unknown>) {
  return {
    listeners: [
      { name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap' },
      { name: 'pop3', protocol: 'pop3', listen: '127.0.0.1:0', tls: 'none', backend: 'pop3' },
      { name: 'smtp', protocol: 'smtp', listen: '127.0.0.1:0', tls: 'none', backend: 'smtp', hostname: 'mx.test' },
    ],
    backends: {
      imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap },
      pop3: { host: '127.0.0.1', port: rig.dovecot.ports.pop3 },
      smtp: { host: '127.0.0.1', port: rig.dovecot.ports.submission },
    },
    limits,
  };
}

async function proxyWith(limits: Record<string, unknown>): Promise<TestProxy> {
  return rig.proxy(config(limits));
}

describe('limits.connections', () => {
  it('perIp: one more connection from that IP is told the server is busy; other IPs are not', async () => {
    const p = await proxyWith({ connections: { perIp: 2, total: 100 } });
    const held = [await RawClient.connect(p.port('imap'), { localAddress: '127.0.70.1' }), await RawClient.connect(p.port('pop3'), { localAddress: '127.0.70.1' })];
    for (const c of held) await c.waitFor(/\r\n/);
    const third = await RawClient.connect(p.port('imap'), { localAddress: '127.0.70.1' });
    expect(await third.waitClosed()).toBe('* BYE [UNAVAILABLE] Too many connections; try again later.\r\n');
    const other = await RawClient.connect(p.port('imap'), { localAddress: '127.0.70.2' });
    expect(await other.waitFor(/\r\n/)).toMatch(/^\* OK /);
    held[0]!.close();
    await held[0]!.waitClosed();
    // The slot is free again once a connection ends.
    let again = '';
    for (let i = 0; i < 50 && !again.startsWith('* OK'); i++) {
      const c = await RawClient.connect(p.port('imap'), { localAddress: '127.0.70.1' });
      again = await c.waitFor(/\r\n/).catch(() => c.received);
      c.close();
    }
    expect(again).toMatch(/^\* OK /);
    for (const c of [held[1]!, other]) c.close();
  });

  it('total: the oldest connection not logged in makes room; a logged-in session is never dropped', async () => {
    const p = await proxyWith({ connections: { perIp: 100, total: 3 } });
    const spliced = await RawClient.connect(p.port('imap'), { localAddress: '127.0.71.1' });
    await spliced.waitFor(/\r\n/);
    spliced.write('a LOGIN alice alice-pass\r\n');
    await spliced.waitFor(/a OK/);
    const oldest = await RawClient.connect(p.port('pop3'), { localAddress: '127.0.71.2' });
    await oldest.waitFor(/\r\n/);
    const newer = await RawClient.connect(p.port('smtp'), { localAddress: '127.0.71.3' });
    await newer.waitFor(/\r\n/);
    const incoming = await RawClient.connect(p.port('imap'), { localAddress: '127.0.71.4' });
    expect(await incoming.waitFor(/\r\n/)).toMatch(/^\* OK /);
    expect(await oldest.waitClosed()).toMatch(/-ERR \[SYS\/TEMP\] Too many connections; try again later\.\r\n$/);
    spliced.write('b NOOP\r\n');
    await spliced.waitFor(/b OK/);
    newer.write('NOOP\r\n');
    await newer.waitFor(/^250 /m);
    for (const c of [spliced, newer, incoming]) c.close();
  });
});

describe('a blocked IP is refused at connect', () => {
  it('in each protocol\'s words, with the time to wait, before anything is read', async () => {
    const p = await proxyWith({ rules: [{ name: 'ip-logins', key: 'ip', count: 'attempts', limit: 1, window: '1h', block: '10m' }] });
    const c = await RawClient.connect(p.port('imap'), { localAddress: '127.0.72.1' });
    await c.waitFor(/\r\n/);
    c.write('a LOGIN alice alice-pass\r\n');
    await c.waitFor(/a OK/);
    c.close();
    const greetings: string[] = [];
    for (const name of ['imap', 'pop3', 'smtp']) {
      const r = await RawClient.connect(p.port(name), { localAddress: '127.0.72.1' });
      greetings.push(await r.waitClosed());
    }
    expect(greetings[0]).toMatch(/^\* BYE \[UNAVAILABLE\] Too many login attempts; try again in (59\d|600) seconds\.\r\n$/);
    expect(greetings[1]).toMatch(/^-ERR \[SYS\/TEMP\] Too many login attempts; try again in (59\d|600) seconds\.\r\n$/);
    expect(greetings[2]).toMatch(/^421 4\.7\.0 mx\.test Too many login attempts; try again in (59\d|600) seconds\r\n$/);
    const metrics = await p.metrics.registry.metrics();
    expect(metrics).toMatch(/^mailgate_connections_refused_total\{listener="pop3",reason="blocked"\} 1$/m);
    const fresh = await RawClient.connect(p.port('imap'), { localAddress: '127.0.72.2' });
    expect(await fresh.waitFor(/\r\n/)).toMatch(/^\* OK /);
    fresh.close();
  });
});

describe('limits.deniedNetworks', () => {
  it("turns a denied network away at connect with each protocol's permanent refusal; others and, after a reload without it, the same client get in", async () => {
    // A trusted network inside the denied one is still denied.
    const cfg = (denied: string[]) => config({ deniedNetworks: denied, trustedNetworks: ['127.0.73.0/28'] });
    const p = await rig.proxy(cfg(['127.0.73.0/24']));
    const goodbyes: Record<string, string> = { imap: '* BYE Access denied.\r\n', pop3: '-ERR [SYS/PERM] Access denied.\r\n', smtp: '554 5.7.1 mx.test Access denied\r\n' };
    for (const [proto, bye] of Object.entries(goodbyes)) {
      const denied = await RawClient.connect(p.port(proto), { localAddress: '127.0.73.5' });
      expect(await denied.waitClosed()).toBe(bye);
      const other = await RawClient.connect(p.port(proto), { localAddress: '127.0.74.5' });
      expect(await other.waitFor(/\r\n/)).toMatch(/^(\* OK|\+OK|220) /);
      other.close();
    }
    expect(p.log.lines.filter((l) => l.event === 'session.refused').map((l) => l.reason)).toEqual(Array(3).fill('limits.deniedNetworks'));
    expect(await p.metrics.registry.metrics()).toMatch(/^mailgate_connections_refused_total\{listener="imap",reason="denied"\} 1$/m);

    const port = p.port('imap');
    await p.reload(parseConfig(cfg([]))); // the listeners are unchanged, so they stay bound
    expect(p.port('imap')).toBe(port);
    const back = await RawClient.connect(p.port('imap'), { localAddress: '127.0.73.5' });
    expect(await back.waitFor(/\r\n/)).toMatch(/^\* OK /);
    back.close();
  });
});
