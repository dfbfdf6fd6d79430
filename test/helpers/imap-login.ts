// One plaintext IMAP LOGIN through a test proxy from a chosen source address, and what came of
// it as the limits see it: ok, fail (the backend said no) or limited (mailgate refused, at
// login or at connect with the protocol's goodbye).
import type { TestProxy } from './proxy.js';
import { RawClient } from './raw-client.js';

let n = 0;

export type LoginVerdict = 'ok' | 'fail' | 'limited';

export async function imapLogin(p: TestProxy, ip: string, user: string, pass: string): Promise<LoginVerdict> {
  const tag = `l${++n}`;
  const c = await RawClient.connect(p.port('imap'), { localAddress: ip });
  await c.waitFor(/\r\n/);
  c.write(`${tag} LOGIN ${user} ${pass}\r\n`);
  // A blocked IP is turned away at connect with the protocol's goodbye: that is 'limited' too.
  const text = await c.waitFor(new RegExp(`^(${tag} (OK|NO)|\\* BYE)`, 'm'));
  c.close();
  return new RegExp(`^${tag} OK`, 'm').test(text) ? 'ok' : /UNAVAILABLE\] Too many/.test(text) ? 'limited' : 'fail';
}

/** The same through a PROXY-protocol listener on `port`: the header says the client is `ip`
 *  (any address, e.g. a public test network a database maps; the balancer is loopback). */
export async function proxiedImapLogin(port: number, ip: string, user: string, pass: string): Promise<LoginVerdict> {
  const c = await RawClient.connect(port);
  try {
    c.write(`PROXY TCP4 ${ip} 10.1.1.1 40000 143\r\n`);
    const greeting = await c.waitFor(/\r\n/);
    if (/UNAVAILABLE|BYE/.test(greeting)) return 'limited';
    c.write(`a LOGIN ${user} ${pass}\r\n`);
    const reply = await c.waitFor(/^a (OK|NO|BAD) [^\r]*\r\n/m);
    return /^a OK/m.test(reply) ? 'ok' : /UNAVAILABLE/.test(reply) ? 'limited' : 'fail';
  } finally {
    c.close();
  }
}
