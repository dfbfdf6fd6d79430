// IPv6 clients: a listener on [::1], a login through to Dovecot, the client logged and counted
// by its /64 (limits.ipv6Prefix), the limit refusing with the protocol's temporary failure.
import net from 'node:net';
import { beforeAll, describe, expect, it } from 'vitest';
import type { TestProxy } from '../helpers/proxy.js';
import { RawClient } from '../helpers/raw-client.js';
import { dovecotForFile } from '../helpers/rig.js';

const rig = dovecotForFile();
let proxy: TestProxy;

beforeAll(async () => {
  proxy = await rig.proxy({
    listeners: [{ name: 'imap6', protocol: 'imap', listen: '[::1]:0', tls: 'none', backend: 'imap' }],
    backends: { imap: { host: '127.0.0.1', port: rig.dovecot.ports.imap } },
    limits: { rules: [{ name: 'ip-logins', key: 'ip', count: 'attempts', limit: 3, window: '1h' }] },
    admin: { listen: '127.0.0.1:0' },
  });
});

async function login(): Promise<string> {
  const c = await RawClient.connect(proxy.port('imap6'), { host: '::1' });
  await c.waitFor(/^\* OK /m);
  c.write('a LOGIN alice alice-pass\r\n');
  const text = await c.waitFor(/^a (OK|NO|BAD) /m);
  c.close();
  return text;
}

describe('an IPv6 listener', () => {
  it('binds [::1], logs the client as ::1, counts it per /64 and refuses the fourth login', async () => {
    expect(net.isIPv6(proxy.addresses.imap6!.host)).toBe(true);
    const texts = [await login(), await login(), await login(), await login()];
    expect(texts.slice(0, 3).every((t) => /^a OK /m.test(t))).toBe(true);
    expect(texts[3]).toMatch(/^a NO \[UNAVAILABLE\] /m);
    const attempts = proxy.log.lines.filter((l) => l.event === 'auth.attempt');
    expect(attempts.map((l) => [l.ip, l.outcome])).toEqual([['::1', 'ok'], ['::1', 'ok'], ['::1', 'ok'], ['::1', 'limited']]);
    // Another address of the same /64 shares the counter; one in another /64 does not.
    expect(await ipLogins('::7')).toMatchObject({ value: 3, remaining: 0 });
    expect(await ipLogins('2001:db8::1')).toMatchObject({ value: 0, remaining: 3 });
  });
});

/** The ip-logins counter for an address, as the admin API reports it. */
async function ipLogins(ip: string): Promise<Record<string, unknown>> {
  const { host, port } = proxy.admin!;
  const res = await fetch(`http://${host}:${port}/api/v1/limits?ip=${encodeURIComponent(ip)}`);
  const body = (await res.json()) as { limits: Record<string, unknown>[] };
  return body.limits.find((l) => l.rule === 'ip-logins')!;
}
