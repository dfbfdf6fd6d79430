// Graceful shutdown in process, against a real Dovecot: clients that have not logged in get
// the protocol's goodbye at once, a logged-in session keeps working through the grace period
// and shutdown completes when it ends; past the grace period it is cut.
import { describe, expect, it } from 'vitest';
import type { TestProxy } from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile } from '../helpers/rig.js';

const rig = dovecotForFile();

async function proxy(): Promise<TestProxy> {
  return rig.proxy({
    listeners: [
      { name: 'imap', protocol: 'imap', listen: '127.0.0.1:0', tls: 'none', backend: 'imap' },
      { name: 'pop3', protocol: 'pop3', listen: '127.0.0.1:0', tls: 'none', backend: 'pop3' },
    ],
    backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap }, pop3: { host: '127.0.0.1', port: rig.dovecot.ports.pop3 } },
  });
}

describe('shutdown', () => {
  it('goodbye before login at once; a spliced session finishes within the grace period', async () => {
    const p = await proxy();
    const spliced = await RawClient.connect(p.port('imap'));
    await spliced.waitFor(/\r\n/);
    spliced.write('a LOGIN alice alice-pass\r\n');
    await spliced.waitFor(/a OK/);
    const waiting = await RawClient.connect(p.port('pop3'));
    await waiting.waitFor(/^\+OK/m);

    let done = false;
    const stopping = p.shutdown(60_000).then(() => (done = true));
    expect(await waiting.waitClosed()).toMatch(/-ERR \[SYS\/TEMP\] [^\r]*\r\n$/);
    spliced.write('b NOOP\r\n');
    await spliced.waitFor(/b OK/);
    expect(done).toBe(false);
    spliced.write('c LOGOUT\r\n');
    await spliced.waitClosed();
    await stopping;
    expect(p.log.lines.some((l) => l.event === 'proxy.stop')).toBe(true);
  });

  it('cuts spliced sessions still open after the grace period', async () => {
    const p = await proxy();
    const spliced = await RawClient.connect(p.port('imap'));
    await spliced.waitFor(/\r\n/);
    spliced.write('a LOGIN alice alice-pass\r\n');
    await spliced.waitFor(/a OK/);
    await p.shutdown(100);
    await spliced.waitClosed();
    expect(p.log.lines.some((l) => l.event === 'proxy.shutdown')).toBe(true);
  });
});
