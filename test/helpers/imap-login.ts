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
